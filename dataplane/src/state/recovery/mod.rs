//! Connection state recovery, cluster-wide: a client whose node went away (disconnected,
//! drained, SIGKILLed) reconnects to any node and gets its socket id, rooms and every logged
//! packet it missed, in order, none twice (`socket.recovered` on the client).
//!
//! Two parts per namespace:
//! - `stream` — the log. Every node logs every logged broadcast of the cluster (a recovery
//!   namespace's reliable broadcasts go to every node, stamped by their emitter), and a
//!   client's offset is a version vector (`offset`), so any node can replay what a client of
//!   any other node missed;
//! - `sessions` — what a socket needs to come back: its id and rooms, kept by its own node when
//!   it disconnects, and by `replicas` other nodes while it is connected (sent over the mesh
//!   by the cluster layer), so a node's death loses no session.
//!
//! Invariants: a session is restored at most once (taking it removes it; a peer that claims it
//! takes it from every holder); saved sessions expire after `max_age_ms` (replicas of a live
//! socket start that window when their origin node leaves the cluster or says the socket
//! left); at most `max_sessions` sessions are held per namespace (more are refused, counted);
//! a replay that would need a packet this node does not hold is refused, never partial.

pub mod offset;
mod stream;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

pub use offset::{Stamp, Vector};
pub use stream::{Incomplete, Stream, SETTLE_MS};

use super::packet::Outgoing;
use crate::ids::{NodeTag, Room, SocketId};

/// A session that can be restored: its id and rooms, and where its replay starts. What it
/// missed is read by `with_replay` when the socket is registered, so nothing logged between
/// the check and the registration is lost.
pub struct Restored {
    /// The socket's previous id.
    pub id: SocketId,
    /// Its rooms.
    pub rooms: Vec<Room>,
    offset: Vector,
    disconnected_at: u64,
}

/// Why a recovery attempt restored nothing (a metric label each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Miss {
    /// No node held a session under that id: already restored, never known, or evicted.
    Unknown,
    /// Held, but disconnected longer ago than `max_disconnection_ms`.
    Expired,
    /// The client's offset is not one this hub hands out.
    BadOffset,
    /// This node's log does not hold every packet after the client's offset (evicted, or
    /// emitted before this node joined): replaying would skip packets.
    Truncated,
}

impl Miss {
    /// Every reason, for metrics that start each series at 0.
    pub const ALL: [Miss; 4] = [Miss::Unknown, Miss::Expired, Miss::BadOffset, Miss::Truncated];

    /// Low-cardinality metric label.
    pub fn label(self) -> &'static str {
        match self {
            Miss::Unknown => "unknown",
            Miss::Expired => "expired",
            Miss::BadOffset => "bad_offset",
            Miss::Truncated => "truncated",
        }
    }
}

/// A session as kept for recovery: the socket's id and rooms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Socket id.
    pub id: SocketId,
    /// Rooms (without the id room).
    pub rooms: Vec<Room>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    /// Disconnected at `at` (ms on this node's clock).
    Saved { at: u64 },
    /// A replica of a socket connected to node `origin`.
    Live { origin: NodeTag },
}

/// Recovery state of one namespace.
pub struct Recovery {
    max_age_ms: u64,
    max_sessions: usize,
    stream: Mutex<Stream>,
    sessions: Mutex<HashMap<String, (Session, Held)>>,
    last_sweep: AtomicU64,
    /// Sessions refused because `max_sessions` were held (metrics).
    pub refused: AtomicU64,
    clock: tokio::time::Instant,
    /// The cluster: which emitters are still members (none on a single node).
    peers: Option<Arc<dyn super::Peers>>,
}

impl Recovery {
    /// Recovery for node `me`, which started at `epoch` (its log holds every stream since
    /// then, not only since this namespace was first used): packets and sessions kept for
    /// `max_age_ms`, at most `max_packets` packets and `max_sessions` sessions.
    pub fn new(
        me: NodeTag,
        epoch: tokio::time::Instant,
        max_age_ms: u64,
        max_packets: usize,
        max_sessions: usize,
    ) -> Self {
        let clock = epoch;
        Recovery {
            peers: None,
            max_age_ms,
            max_sessions,
            stream: Mutex::new(Stream::new(me, max_packets, max_age_ms, 0)),
            sessions: Mutex::new(HashMap::new()),
            last_sweep: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            clock,
        }
    }

    /// In a cluster: ask `peers` which emitters are still members.
    pub fn with_peers(mut self, peers: Option<Arc<dyn super::Peers>>) -> Self {
        self.peers = peers;
        self
    }

    fn live(&self) -> impl Fn(NodeTag) -> bool + '_ {
        move |tag| self.peers.as_ref().is_some_and(|p| p.is_live(tag))
    }

    fn now(&self) -> u64 {
        self.clock.elapsed().as_millis() as u64
    }

    /// Run `f` on the log, locked, with the current time: a broadcast is stamped, forwarded,
    /// logged and queued to local sockets inside one call, so every socket of this node sees
    /// the packets in the order their offsets describe.
    pub fn with_stream<R>(&self, f: impl FnOnce(&mut Stream, u64) -> R) -> R {
        let now = self.now();
        f(&mut self.stream.lock(), now)
    }

    /// Packets and bytes the log holds (metrics).
    pub fn log_size(&self) -> (usize, usize) {
        let s = self.stream.lock();
        (s.len(), s.bytes())
    }

    /// Sessions held, saved or replicated (metrics).
    pub fn sessions_held(&self) -> usize {
        self.sessions.lock().len()
    }

    fn hold(&self, pid: &str, session: Session, held: Held) -> bool {
        let now = self.now();
        let mut sessions = self.sessions.lock();
        let due = now.saturating_sub(self.last_sweep.load(Ordering::Relaxed)) >= 1000;
        if due || sessions.len() >= self.max_sessions {
            self.last_sweep.store(now, Ordering::Relaxed);
            let max_age = self.max_age_ms;
            sessions.retain(|_, (_, h)| match h {
                Held::Saved { at } => now.saturating_sub(*at) <= max_age,
                Held::Live { .. } => true,
            });
        }
        if sessions.len() >= self.max_sessions && !sessions.contains_key(pid) {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        sessions.insert(pid.to_string(), (session, held));
        true
    }

    /// Remember a socket of this node that disconnected for a recoverable reason.
    pub fn save(&self, pid: &str, id: SocketId, rooms: Vec<Room>) -> bool {
        let at = self.now();
        self.hold(pid, Session { id, rooms }, Held::Saved { at })
    }

    /// Hold a replica of a socket connected to node `origin` (its latest id and rooms).
    pub fn replicate(&self, pid: &str, session: Session, origin: NodeTag) -> bool {
        self.hold(pid, session, Held::Live { origin })
    }

    /// The replicated socket `pid` left its node: keep it for the window, or forget it.
    /// Only a replica of `origin`'s socket is touched: after a recovery moved the socket, its
    /// old node's late word about it must not end the replica its new node saved.
    pub fn replica_gone(&self, pid: &str, keep: bool, origin: NodeTag) {
        let mut sessions = self.sessions.lock();
        let ours = matches!(sessions.get(pid), Some((_, Held::Live { origin: o })) if *o == origin);
        if !ours {
            return;
        }
        if keep {
            if let Some((_, held)) = sessions.get_mut(pid) {
                *held = Held::Saved { at: self.now() };
            }
        } else {
            sessions.remove(pid);
        }
    }

    /// Node `origin` left the cluster: its sockets' window starts now.
    pub fn origin_down(&self, origin: NodeTag) {
        let at = self.now();
        for (_, held) in self.sessions.lock().values_mut() {
            if *held == (Held::Live { origin }) {
                *held = Held::Saved { at };
            }
        }
    }

    /// The node was fenced (cut off from its cluster's majority): its clients recover on the
    /// majority side, so every session held here (saved or replica) and the log are stale.
    /// Forget them, so no claim can restore a session twice or with its old rooms.
    pub fn fence(&self) {
        let now = self.now();
        self.sessions.lock().clear();
        self.stream.lock().restart(now);
    }

    /// The node rejoined its cluster after a fence: its log restarts its settle time.
    pub fn rejoined(&self) {
        let now = self.now();
        self.stream.lock().restart_clock(now);
    }

    /// Take the session `pid` if held and within its window, with how long ago it
    /// disconnected (0 for a replica of a socket its node still reports connected).
    pub fn take(&self, pid: &str) -> Option<(Session, u64)> {
        self.take_or_miss(pid).ok()
    }

    fn take_or_miss(&self, pid: &str) -> Result<(Session, u64), Miss> {
        let now = self.now();
        let (session, held) = self.sessions.lock().remove(pid).ok_or(Miss::Unknown)?;
        match held {
            Held::Saved { at } if now.saturating_sub(at) > self.max_age_ms => Err(Miss::Expired),
            Held::Saved { at } => Ok((session, now.saturating_sub(at))),
            Held::Live { .. } => Ok((session, 0)),
        }
    }

    /// Hold a session a peer handed over (claimed for a client that reconnected here), which
    /// disconnected `age_ms` ago.
    pub fn install(&self, pid: &str, session: Session, age_ms: u64) {
        let at = self.now().saturating_sub(age_ms);
        self.hold(pid, session, Held::Saved { at });
    }

    /// The node whose connected socket session `pid` replicates, when this node holds such a
    /// replica.
    pub fn live_origin(&self, pid: &str) -> Option<NodeTag> {
        match self.sessions.lock().get(pid) {
            Some((_, Held::Live { origin })) => Some(*origin),
            _ => None,
        }
    }

    /// Whether this node holds session `pid`.
    pub fn holds(&self, pid: &str) -> bool {
        self.sessions.lock().contains_key(pid)
    }

    /// Take the session `pid` whose last packet carried `offset` for restoring, or say why
    /// not: unknown, expired, a bad offset, or a replay that would be incomplete now.
    pub fn restore(&self, pid: &str, offset: Option<&str>) -> Result<Restored, Miss> {
        let (session, age) = self.take_or_miss(pid)?;
        // A client that never received a logged packet sends no offset.
        let offset = Vector::parse(offset.unwrap_or("")).ok_or(Miss::BadOffset)?;
        let now = self.now();
        let disconnected_at = now.saturating_sub(age);
        self.stream
            .lock()
            .replay(&offset, &session.id, &session.rooms, disconnected_at, now, self.live())
            .map_err(|why| {
                tracing::debug!(pid, ?why, offset = %offset.text(), age, "recovery refused: replay incomplete");
                Miss::Truncated
            })?;
        Ok(Restored { id: session.id, rooms: session.rooms, offset, disconnected_at })
    }

    /// Run `f` with what `r` missed (in order), the log locked: `f` registers the socket and
    /// queues the packets, and no logged broadcast comes between them. Incomplete only when
    /// the log evicted what it needed since `restore` checked.
    pub fn with_replay<R>(&self, r: &Restored, f: impl FnOnce(Result<Vec<Outgoing>, Incomplete>) -> R) -> R {
        let now = self.now();
        let mut stream = self.stream.lock();
        let missed = stream.replay(&r.offset, &r.id, &r.rooms, r.disconnected_at, now, self.live());
        f(missed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Frame;
    use crate::state::namespace::Selector;

    fn frames(s: &str) -> Outgoing {
        let mut o = Outgoing::new();
        o.push(Frame::text(s.as_bytes()));
        o
    }

    fn emit(r: &Recovery, sel: Selector, text: &str) -> String {
        r.with_stream(|st, now| {
            let stamp = st.own_stamp();
            assert!(st.apply(stamp, now));
            let offset = st.vector().text();
            st.log(stamp, sel, frames(text), now);
            offset
        })
    }

    #[tokio::test(start_paused = true)]
    async fn replays_only_what_the_socket_missed() {
        let r = Recovery::new(NodeTag(7), tokio::time::Instant::now(), 1000, 100, 100);
        let id = SocketId::new(NodeTag(1));
        let room: Room = "a".into();
        let o1 = emit(&r, Selector::default(), "one");
        assert!(r.save("pid1", id.clone(), vec![room.clone()]));
        emit(&r, Selector::rooms(vec![room.clone()]), "two");
        emit(&r, Selector::rooms(vec!["b".into()]), "three");
        let restored = r.restore("pid1", Some(&o1)).unwrap();
        assert_eq!(restored.id, id);
        // Logged after the check: still replayed.
        emit(&r, Selector::rooms(vec![room.clone()]), "four");
        assert_eq!(r.with_replay(&restored, |m| m.unwrap()), vec![frames("two"), frames("four")]);
        assert_eq!(r.restore("pid1", Some(&o1)).err(), Some(Miss::Unknown), "a session is restored once");
    }

    #[tokio::test(start_paused = true)]
    async fn expires() {
        let r = Recovery::new(NodeTag(7), tokio::time::Instant::now(), 1000, 100, 100);
        r.save("p", SocketId::new(NodeTag(1)), vec![]);
        tokio::time::advance(std::time::Duration::from_millis(1500)).await;
        assert_eq!(r.restore("p", None).err(), Some(Miss::Expired));
    }

    #[tokio::test(start_paused = true)]
    async fn replicas_start_their_window_when_the_origin_goes() {
        let r = Recovery::new(NodeTag(7), tokio::time::Instant::now(), 1000, 100, 100);
        let s = Session { id: SocketId::new(NodeTag(1)), rooms: vec!["a".into()] };
        assert!(r.replicate("p", s.clone(), NodeTag(1)));
        tokio::time::advance(std::time::Duration::from_millis(5000)).await;
        assert!(r.holds("p"), "a live replica does not expire");
        r.origin_down(NodeTag(1));
        tokio::time::advance(std::time::Duration::from_millis(400)).await;
        assert_eq!(r.take("p"), Some((s.clone(), 400)));
        r.replicate("q", s.clone(), NodeTag(1));
        r.replica_gone("q", false, NodeTag(2));
        assert!(r.holds("q"), "another node's word about a socket that moved changes nothing");
        r.replica_gone("q", false, NodeTag(1));
        assert!(!r.holds("q"), "a socket that left for good is forgotten");
        r.replicate("k", s, NodeTag(1));
        r.replica_gone("k", true, NodeTag(1));
        tokio::time::advance(std::time::Duration::from_millis(1001)).await;
        assert!(r.take("k").is_none(), "kept for the window only");
    }

    #[tokio::test(start_paused = true)]
    async fn holds_at_most_max_sessions() {
        let r = Recovery::new(NodeTag(7), tokio::time::Instant::now(), 1000, 100, 2);
        let s = |n| Session { id: SocketId::new(NodeTag(n)), rooms: vec![] };
        assert!(r.replicate("a", s(1), NodeTag(1)));
        assert!(r.replicate("b", s(2), NodeTag(1)));
        assert!(!r.replicate("c", s(3), NodeTag(1)));
        assert_eq!(r.refused.load(Ordering::Relaxed), 1);
        assert!(r.replicate("a", s(4), NodeTag(1)), "an update of a held session is not refused");
    }

    #[tokio::test(start_paused = true)]
    async fn a_malformed_offset_is_not_recovered() {
        let r = Recovery::new(NodeTag(7), tokio::time::Instant::now(), 1000, 100, 100);
        r.save("p", SocketId::new(NodeTag(1)), vec![]);
        assert_eq!(r.restore("p", Some("12")).err(), Some(Miss::BadOffset));
    }
}
