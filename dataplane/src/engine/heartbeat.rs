//! Heartbeats and the connect timeout, on exact deadlines, with one task for all sessions.
//!
//! Every session has one live entry in a min-heap keyed by the hub clock (ms): the next moment
//! something is due for it (its ping, its pong deadline, or its connect deadline). One task
//! sleeps until the earliest entry, sends the pings that are due, closes the sessions whose
//! pong or attach is late, and re-files each session at its next moment. A pong that moves a
//! session's next moment earlier files a second entry; the older one is recognised as stale
//! (its time is not the session's `wake_at`) and dropped when it comes up.
//!
//! Invariants:
//! - a ping due at `t` gives the client until exactly `t + ping_timeout` (the deadline does not
//!   depend on when the task ran; the one extension is the reference server's: the first other
//!   packet while the pong is awaited restarts the timeout), and `Engine::expire_overdue`
//!   applies the same deadline to a request that arrives first, so no answer depends on
//!   scheduling latency;
//! - an idle session costs one heap entry (16 bytes) and no timer or task of its own;
//! - a session has at most two entries in the heap (its live one, and one stale after a pong).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::Engine;
use super::{CloseReason, Conn, Delivery};
use crate::frame::Frame;

/// What is due for one session at time `now`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Beat {
    Nothing,
    SendPing,
    Close(CloseReason),
}

impl Conn {
    /// Decide what is due at `now`; a ping sent here is owed a pong by `ping_due + ping_timeout`.
    pub(crate) fn beat(&self, now: u64, ping_timeout: u64, connect_deadline: Option<u64>) -> Beat {
        if let Some(reason) = self.overdue(now, ping_timeout, connect_deadline) {
            return Beat::Close(reason);
        }
        if self.pong_deadline.load(Ordering::Relaxed) != 0 {
            return Beat::Nothing;
        }
        let due = self.ping_due.load(Ordering::Relaxed);
        if now >= due {
            self.pong_grace_used.store(false, Ordering::Relaxed);
            self.pong_deadline.store(due + ping_timeout, Ordering::Relaxed);
            return Beat::SendPing;
        }
        Beat::Nothing
    }

    /// The client sent a packet other than a pong. Like the reference server (engine.io 6.6),
    /// the first such packet while a pong is awaited restarts the pong's timeout once: a pong
    /// may be queued behind a large upload.
    pub(crate) fn on_traffic(&self, now: u64, ping_timeout: u64) {
        if self.pong_deadline.load(Ordering::Relaxed) != 0
            && !self.pong_grace_used.swap(true, Ordering::Relaxed)
        {
            self.pong_deadline.store(now + ping_timeout, Ordering::Relaxed);
        }
    }

    /// Whether a deadline has passed at `now`: the pong one (counted from when the ping was
    /// due, sent or not) or the connect one.
    pub(crate) fn overdue(
        &self,
        now: u64,
        ping_timeout: u64,
        connect_deadline: Option<u64>,
    ) -> Option<CloseReason> {
        if let Some(deadline) = connect_deadline {
            if now >= deadline && !self.attached.load(Ordering::Relaxed) {
                return Some(CloseReason::ConnectTimeout);
            }
        }
        let pong = match self.pong_deadline.load(Ordering::Relaxed) {
            0 => self.ping_due.load(Ordering::Relaxed) + ping_timeout,
            d => d,
        };
        (now >= pong).then_some(CloseReason::PingTimeout)
    }

    /// The next moment anything is due for this session.
    pub(crate) fn next_due(&self, connect_deadline: Option<u64>) -> u64 {
        let heartbeat = match self.pong_deadline.load(Ordering::Relaxed) {
            0 => self.ping_due.load(Ordering::Relaxed),
            d => d,
        };
        match connect_deadline {
            Some(d) if !self.attached.load(Ordering::Relaxed) => heartbeat.min(d),
            _ => heartbeat,
        }
    }
}

/// One heap entry: wake `conn` at `at` (ms of the hub clock).
struct Entry {
    at: u64,
    conn: Weak<Conn>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.at.cmp(&other.at)
    }
}

/// The engine's deadline heap.
#[derive(Default)]
pub(crate) struct Deadlines {
    heap: Mutex<BinaryHeap<Reverse<Entry>>>,
    /// Wakes the task when an entry lands before the one it sleeps on.
    earlier: Notify,
}

impl Deadlines {
    /// File `conn` to wake at `at` (its `wake_at` must already say `at`).
    pub(crate) fn file(&self, conn: &Arc<Conn>, at: u64) {
        let mut heap = self.heap.lock();
        let first = heap.peek().is_none_or(|Reverse(e)| at < e.at);
        heap.push(Reverse(Entry { at, conn: Arc::downgrade(conn) }));
        drop(heap);
        if first {
            self.earlier.notify_one();
        }
    }

    /// Move every entry due at `now` into `due`; returns the time of the next one.
    fn take_due(&self, now: u64, due: &mut Vec<Entry>) -> Option<u64> {
        let mut heap = self.heap.lock();
        while heap.peek().is_some_and(|Reverse(e)| e.at <= now) {
            if let Some(Reverse(e)) = heap.pop() {
                due.push(e);
            }
        }
        heap.peek().map(|Reverse(e)| e.at)
    }

    /// Entries in the heap (live and stale).
    pub(crate) fn len(&self) -> usize {
        self.heap.lock().len()
    }
}

/// Start the deadline task for `engine`; it stops when the engine shuts down.
pub fn spawn_sweeper(engine: Arc<Engine>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let ping = Frame::text(b"2");
        let ping_timeout = engine.settings.engine.ping_timeout_ms;
        let mut due = Vec::new();
        let mut to_close = Vec::new();
        loop {
            let now = engine.now_ms();
            let next = engine.deadlines.take_due(now, &mut due);
            for entry in due.drain(..) {
                let Some(conn) = entry.conn.upgrade() else { continue };
                if conn.wake_at.load(Ordering::Acquire) != entry.at {
                    continue; // stale: a pong filed an earlier entry
                }
                let connect_deadline = engine.connect_deadline(&conn);
                match conn.beat(now, ping_timeout, connect_deadline) {
                    Beat::Nothing => {}
                    Beat::SendPing => {
                        if let Err(reason) = conn.push(std::slice::from_ref(&ping), Delivery::Reliable) {
                            to_close.push((conn, reason));
                            continue;
                        }
                    }
                    Beat::Close(reason) => {
                        to_close.push((conn, reason));
                        continue;
                    }
                }
                let at = conn.next_due(connect_deadline);
                // A pong may have filed an earlier entry meanwhile; then that one is live.
                if conn.wake_at.compare_exchange(entry.at, at, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                    engine.deadlines.file(&conn, at);
                }
            }
            for (conn, reason) in to_close.drain(..) {
                engine.close(&conn, reason);
            }
            if next.is_some_and(|at| at <= engine.now_ms()) {
                continue;
            }
            let sleep = async {
                match next {
                    Some(at) => tokio::time::sleep_until(engine.instant_of(at)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = sleep => {}
                _ = engine.deadlines.earlier.notified() => {}
                _ = engine.shutdown.cancelled() => return,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::net::SocketAddr;
    use std::time::Duration;

    use socketio_hub_config::{CorsConfig, EngineConfig};

    use super::*;
    use crate::engine::{echo::Echo, ConnHandshake, EngineSettings, TransportKind};
    use crate::ids::NodeTag;
    use crate::metrics::Metrics;

    fn engine(attach_timeout_ms: Option<u64>) -> Arc<Engine> {
        let settings = EngineSettings {
            path: "/engine.io/".into(),
            engine: EngineConfig { ping_interval_ms: 300, ping_timeout_ms: 200, ..EngineConfig::default() },
            cors: CorsConfig::default(),
            attach_timeout_ms,
        };
        let engine = Engine::new(settings, NodeTag(1), Arc::new(Metrics::new()));
        Echo::install(&engine);
        spawn_sweeper(engine.clone());
        engine
    }

    fn open(engine: &Engine) -> Arc<Conn> {
        let hs = ConnHandshake {
            headers: HashMap::new(),
            query: HashMap::new(),
            address: SocketAddr::from(([127, 0, 0, 1], 1)),
            time: String::new(),
            issued: 0,
            url: "/".into(),
        };
        engine.open_session(TransportKind::Polling, hs).expect("session opens")
    }

    /// Advance the paused clock to `ms` and let the deadline task run.
    async fn at(engine: &Engine, ms: u64) {
        let now = engine.now_ms();
        tokio::time::sleep(Duration::from_millis(ms - now)).await;
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
        assert_eq!(engine.now_ms(), ms);
    }

    fn queued(conn: &Conn) -> Vec<Frame> {
        conn.take_queued().into_iter().collect()
    }

    #[tokio::test(start_paused = true)]
    async fn pings_at_the_interval_and_closes_at_the_exact_deadline() {
        let engine = engine(None);
        let conn = open(&engine);
        at(&engine, 299).await;
        assert!(queued(&conn).is_empty());
        at(&engine, 300).await;
        assert_eq!(queued(&conn), [Frame::text(b"2")]);
        at(&engine, 499).await;
        assert_eq!(conn.closed(), None);
        at(&engine, 500).await;
        assert_eq!(conn.closed(), Some(CloseReason::PingTimeout));
        assert!(engine.sessions.is_empty());
        assert_eq!(engine.deadline_entries(), 0, "a closed session is not re-filed");
    }

    #[tokio::test(start_paused = true)]
    async fn a_pong_restarts_the_interval_and_leaves_at_most_one_stale_entry() {
        let engine = engine(None);
        let conn = open(&engine);
        assert_eq!(engine.deadline_entries(), 1, "one entry per idle session");
        at(&engine, 300).await;
        assert_eq!(queued(&conn), [Frame::text(b"2")]);
        at(&engine, 350).await;
        engine.on_packet(&conn, socketio_hub_protocol::engine::Packet::Pong(""));
        // The live entry is the pong deadline (500), earlier than the next ping (650): no refile.
        assert_eq!(engine.deadline_entries(), 1);
        at(&engine, 500).await;
        assert_eq!(conn.closed(), None, "answered in time");
        at(&engine, 649).await;
        assert!(queued(&conn).is_empty());
        at(&engine, 650).await;
        assert_eq!(queued(&conn), [Frame::text(b"2")]);
        assert!(engine.deadline_entries() <= 2);
        at(&engine, 850).await;
        assert_eq!(conn.closed(), Some(CloseReason::PingTimeout));
    }

    #[tokio::test(start_paused = true)]
    async fn the_connect_timeout_is_exact_and_attaching_cancels_it() {
        let engine = engine(Some(100));
        let late = open(&engine);
        let attached = open(&engine);
        engine.attach(&attached);
        at(&engine, 99).await;
        assert_eq!(late.closed(), None);
        at(&engine, 100).await;
        assert_eq!(late.closed(), Some(CloseReason::ConnectTimeout));
        assert_eq!(attached.closed(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_after_the_deadline_sees_the_session_closed_whatever_the_task_does() {
        // No deadline task at all: the check on arrival alone closes the session.
        let settings = EngineSettings {
            path: "/engine.io/".into(),
            engine: EngineConfig { ping_interval_ms: 300, ping_timeout_ms: 200, ..EngineConfig::default() },
            cors: CorsConfig::default(),
            attach_timeout_ms: None,
        };
        let engine = Engine::new(settings, NodeTag(1), Arc::new(Metrics::new()));
        Echo::install(&engine);
        let conn = open(&engine);
        tokio::time::sleep(Duration::from_millis(499)).await;
        assert!(!engine.expire_overdue(&conn));
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert!(engine.expire_overdue(&conn));
        assert_eq!(conn.closed(), Some(CloseReason::PingTimeout));
    }
}
