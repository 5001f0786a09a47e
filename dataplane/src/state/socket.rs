//! A Socket.IO socket: one namespace joined by one Engine.IO session.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::{Map, Value};
use smallvec::SmallVec;
use tokio::sync::mpsc;

use super::namespace::Namespace;
use super::packet::{Args, Outgoing};
use crate::engine::{CloseReason, Conn, Delivery};
use crate::ids::{Room, SocketId};

/// Where a client's acknowledgement goes: the socket that answered and its arguments.
pub type AckSink = mpsc::UnboundedSender<(SocketId, Args)>;

type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

#[derive(Default)]
struct JobQueue {
    jobs: VecDeque<Job>,
    running: bool,
}

/// One socket.
pub struct Socket {
    /// Socket id (also its own room).
    pub id: SocketId,
    /// Its namespace.
    pub ns: Arc<Namespace>,
    /// The session carrying it.
    pub conn: Arc<Conn>,
    /// The CONNECT auth payload (recovery fields removed).
    pub auth: Map<String, Value>,
    /// Verified token claims, when the client presented a token.
    pub claims: Option<Arc<Map<String, Value>>>,
    /// Recovery session id, when recovery is on.
    pub pid: Option<Arc<str>>,
    /// Whether this socket was restored by connection state recovery.
    pub recovered: bool,
    /// Rooms joined (besides its own id room). Written only under the namespace's room lock.
    pub(super) rooms: Mutex<SmallVec<[Room; 2]>>,
    acks: Mutex<HashMap<u64, AckSink>>,
    upstream: Mutex<JobQueue>,
}

/// What `Socket::send` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// Queued.
    Queued,
    /// Dropped (volatile and not writable now, or the session is closing).
    Dropped,
}

impl Socket {
    /// Its rooms, without its own id room.
    pub fn room_list(&self) -> Vec<Room> {
        self.rooms.lock().to_vec()
    }

    pub(super) fn new(
        id: SocketId,
        ns: Arc<Namespace>,
        conn: Arc<Conn>,
        auth: Map<String, Value>,
        claims: Option<Arc<Map<String, Value>>>,
        pid: Option<Arc<str>>,
        recovered: bool,
    ) -> Self {
        Socket {
            id,
            ns,
            conn,
            auth,
            claims,
            pid,
            recovered,
            rooms: Mutex::new(SmallVec::new()),
            acks: Mutex::new(HashMap::new()),
            upstream: Mutex::new(JobQueue::default()),
        }
    }

    /// Rooms this socket is in, its own id room first.
    pub fn rooms(&self) -> Vec<String> {
        let mut all = vec![self.id.to_string()];
        all.extend(self.rooms.lock().iter().map(|r| r.to_string()));
        all
    }

    /// Queue an encoded packet. Returns the session to close when the client is too slow.
    pub fn send(&self, frames: &Outgoing, delivery: Delivery) -> Result<Sent, CloseReason> {
        match self.conn.push(frames, delivery)? {
            true => Ok(Sent::Queued),
            false => Ok(Sent::Dropped),
        }
    }

    /// Expect an ack with `id` from this client, delivered to `sink`.
    pub fn expect_ack(&self, id: u64, sink: AckSink) {
        self.acks.lock().insert(id, sink);
    }

    /// Stop expecting ack `id` (timed out).
    pub fn forget_ack(&self, id: u64) {
        self.acks.lock().remove(&id);
    }

    /// Deliver a client's ack. Returns `false` for an id nobody waits for.
    pub fn on_ack(&self, id: u64, args: Args) -> bool {
        match self.acks.lock().remove(&id) {
            Some(sink) => sink.send((self.id.clone(), args)).is_ok(),
            None => false,
        }
    }

    /// Drop every pending ack (the socket is gone; waiters see their channel close).
    pub(super) fn clear_acks(&self) {
        self.acks.lock().clear();
    }

    /// Run `job` after every job queued before it for this socket (per-socket ordering of
    /// upstream calls), without a task per idle socket.
    pub fn enqueue_upstream(self: &Arc<Self>, job: impl Future<Output = ()> + Send + 'static) {
        let mut job: Job = Box::pin(job);
        {
            let mut q = self.upstream.lock();
            if q.running {
                q.jobs.push_back(job);
                return;
            }
            q.running = true;
        }
        // Most jobs of a passive upstream are ready at once: run them inline (without the
        // lock, so a job may enqueue more), sparing a task per connect and disconnect.
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        if job.as_mut().poll(&mut cx).is_ready() {
            let mut q = self.upstream.lock();
            if q.jobs.is_empty() {
                q.running = false;
                q.jobs = VecDeque::new();
                return;
            }
        } else {
            self.upstream.lock().jobs.push_front(job);
        }
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                let next = {
                    let mut q = me.upstream.lock();
                    match q.jobs.pop_front() {
                        Some(job) => job,
                        None => {
                            q.running = false;
                            q.jobs = VecDeque::new();
                            return;
                        }
                    }
                };
                next.await;
            }
        });
    }

    /// The handshake as the application sees it (socket.io's `socket.handshake`).
    pub fn handshake_json(&self) -> Value {
        let hs = &self.conn.handshake;
        serde_json::json!({
            "headers": hs.headers,
            "query": hs.query,
            "auth": self.auth,
            "address": hs.address.ip().to_string(),
            "time": hs.time,
            "issued": hs.issued,
            "url": hs.url,
            "xdomain": hs.headers.contains_key("origin"),
            "secure": false,
            "claims": self.claims.as_deref(),
        })
    }
}
