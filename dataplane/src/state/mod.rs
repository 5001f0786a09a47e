//! Socket.IO state of one node: namespaces, sockets, rooms, acks, recovery — the layer
//! above the engine (`Hub` is an `EngineHandler`).
//!
//! Invariants:
//! - a socket is in `Namespace::sockets` exactly while its CONNECT has been answered and it
//!   has not disconnected; the CONNECT reply is queued only after the socket is registered,
//!   so it can receive events the moment the client sees the reply;
//! - room state is per node and queryable (`Namespace::rooms_summary`), which is what the
//!   cluster layer gossips;
//! - nothing here knows HTTP or WebSocket; the engine hands in messages and drains frames.

pub mod app;
mod connect;
pub mod drain;
mod inbound;
mod internal;
mod namespace;
pub mod ops;
mod packet;
mod permissions;
pub mod recovery;
mod socket;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use bytes::Bytes;
use dashmap::DashMap;
use parking_lot::Mutex;
use smallvec::SmallVec;
use socketio_hub_config::HubConfig;

pub use app::{BoxFut, ConnectDecision, ConnectRequest, Dispatch, EventCall, PacketRouter, Upstream};
pub use connect::PreparedConnect;
pub use internal::{InternalNamespace, SocketObserver};
pub use namespace::{Broadcast, Namespace, Selector, LINK_ACK_ID_BASE};
pub use ops::{AppBinding, Claimed, Op, OpReply, SocketInfo};
pub use packet::{Args, ArgsError, Outgoing};
pub use socket::{AckSink, Socket};

use crate::auth::AccessKeys;
use crate::engine::{CloseReason, Conn, Delivery, Engine, EngineHandler};
use crate::metrics::Metrics;

/// A binary packet whose header arrived and whose attachments are still coming.
pub(crate) struct PartialBinary {
    text: String,
    attachments: Vec<Bytes>,
    expected: usize,
}

/// The Socket.IO state of one Engine.IO session (kept in `Conn::ext`).
#[derive(Default)]
pub(crate) struct SioConn {
    /// Sockets (one per namespace) multiplexed on the session.
    sockets: Mutex<SmallVec<[Arc<Socket>; 1]>>,
    /// A binary packet waiting for its attachments.
    partial: Mutex<Option<PartialBinary>>,
}

/// The Socket.IO state of `conn` (set when the session opened).
pub(crate) fn sio(conn: &Conn) -> &SioConn {
    // `Hub::on_open` sets it before any message can arrive for the session.
    conn.ext::<SioConn>().expect("Socket.IO state set at session open")
}

impl SioConn {
    /// Every socket of the session.
    pub(crate) fn sockets(&self) -> Vec<Arc<Socket>> {
        self.sockets.lock().to_vec()
    }

    /// The socket of namespace `nsp`, if joined.
    pub(crate) fn socket(&self, nsp: &str) -> Option<Arc<Socket>> {
        self.sockets.lock().iter().find(|s| &*s.ns.name == nsp).cloned()
    }
}

/// The other nodes of a cluster, as the Socket.IO layer sees them (implemented by
/// `cluster::Cluster`; unset on a single node, where emits stay local at no extra cost).
pub trait Peers: Send + Sync + 'static {
    /// Forward an emit made on this node to the nodes that have sockets it targets.
    fn forward_emit(&self, ns: &str, sel: &Selector, event: &str, args: &Args, delivery: Delivery);
    /// Rooms of `ns` just gained their first member here: tell the other nodes at once, so an
    /// emit to them that this join caused (an ack, then another server's broadcast) routes here.
    fn rooms_created(&self, ns: &str, rooms: Vec<String>);
    /// Send a logged broadcast made here (recovery on), stamped `stamp`, to every peer: every
    /// node keeps the whole log, so any node can recover any client.
    fn forward_logged(&self, ns: &str, sel: &Selector, event: &str, args: &Args, stamp: recovery::Stamp);
    /// Socket `pid` of `ns` (connected here) has this id and these rooms now: update its
    /// replicas on other nodes.
    fn save_session(&self, ns: &str, pid: &str, session: &recovery::Session);
    /// Socket `pid` of `ns` left this node: its replicas keep it for the recovery window
    /// (`keep`) or forget it.
    fn session_gone(&self, ns: &str, pid: &str, keep: bool);
    /// Claim recovery session `pid` of `ns` from the peers: its state and how long ago it
    /// disconnected, if a peer held it (every holder forgets it).
    fn claim_session(self: Arc<Self>, ns: String, pid: String) -> BoxFut<Option<(recovery::Session, u64)>>;
    /// Whether the node minting `tag` is this node or a live peer.
    fn is_live(&self, tag: crate::ids::NodeTag) -> bool;
    /// Socket `pid` of `ns`, replicated here from peer `origin`, is being restored here: tell
    /// `origin` to let its socket go (its transport is dead, not yet timed out there). No wait.
    fn release_session(&self, ns: &str, pid: &str, origin: crate::ids::NodeTag);
}

/// One hub node.
pub struct Hub {
    /// Configuration (validated).
    pub config: Arc<HubConfig>,
    /// The Engine.IO layer underneath.
    pub engine: Arc<Engine>,
    /// Namespaces that have (or had) sockets.
    pub namespaces: DashMap<Arc<str>, Arc<Namespace>>,
    /// How client packets reach application logic.
    pub dispatch: Dispatch,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Access keys (REST, webhook signatures, client tokens).
    pub keys: AccessKeys,
    /// Whether `/readyz` reports ready.
    pub ready: AtomicBool,
    /// The cluster, when this node has peers (cluster: set once at start).
    pub peers: OnceLock<Arc<dyn Peers>>,
    /// When this node started (recovery logs count from here).
    pub started: tokio::time::Instant,
    /// The namespace the hub serves itself (the Admin UI's), set once at start.
    pub internal: OnceLock<Arc<dyn InternalNamespace>>,
    /// Sees every other socket's life (Admin UI development mode), set once at start.
    pub observer: OnceLock<Arc<dyn SocketObserver>>,
    /// Bumped by every fence and unfence (`drain`), so a late task of an old one does nothing.
    fence_epoch: AtomicU64,

    me: Weak<Hub>,
}

impl Hub {
    /// A hub on top of `engine`; registers itself as the engine's handler.
    pub fn new(
        config: Arc<HubConfig>,
        engine: Arc<Engine>,
        dispatch: Dispatch,
        metrics: Arc<Metrics>,
        keys: AccessKeys,
    ) -> Arc<Self> {
        let hub = Arc::new_cyclic(|me| Hub {
            config,
            engine: engine.clone(),
            namespaces: DashMap::new(),
            dispatch,
            metrics,
            keys,
            ready: AtomicBool::new(false),
            peers: OnceLock::new(),
            started: tokio::time::Instant::now(),
            internal: OnceLock::new(),
            observer: OnceLock::new(),
            fence_epoch: AtomicU64::new(0),

            me: me.clone(),
        });
        engine.set_handler(hub.clone());
        hub
    }

    fn arc(&self) -> Arc<Hub> {
        // `me` points at the Arc that owns `self`, which is alive while `&self` is.
        self.me.upgrade().expect("hub alive while borrowed")
    }

    /// Close a session (and with it every socket on it).
    pub fn close_conn(&self, conn: &Arc<Conn>, reason: CloseReason) {
        self.engine.close(conn, reason);
    }

    /// The namespace `name`, created on first use.
    /// `None` when creating it would pass `limits.namespaces` (counted; the Admin UI's own
    /// namespace is exempt).
    pub fn namespace(&self, name: &str) -> Option<Arc<Namespace>> {
        if let Some(ns) = self.namespaces.get(name) {
            return Some(ns.clone());
        }
        let max = self.config.limits.namespaces;
        let exempt = usize::from(self.internal.get().is_some());
        if max > 0 && self.namespaces.len() >= max + exempt && !self.is_internal(name) {
            let hit = crate::limits::LimitHit::Namespaces(max);
            self.metrics.limit_refusals.with_label_values(&[hit.label()]).inc();
            return None;
        }
        let ns = self
            .namespaces
            .entry(Arc::from(name))
            .or_insert_with(|| {
                let rooms = self.engine.limits().map(|l| l.rooms()).unwrap_or_default();
                let ns = Namespace::new(
                    name,
                    &self.config,
                    (self.engine.tag, self.started),
                    self.peers.get().cloned(),
                )
                .with_room_limit(rooms);
                Arc::new(match self.is_internal(name) {
                    true => ns.internal(),
                    false => ns.with_observer(self.observer.get().cloned()),
                })
            })
            .clone();
        Some(ns)
    }

    /// An existing namespace.
    pub fn existing_namespace(&self, name: &str) -> Option<Arc<Namespace>> {
        self.namespaces.get(name).map(|n| n.clone())
    }

    /// Whether clients may join namespace `name`.
    pub fn namespace_allowed(&self, name: &str) -> bool {
        self.config.socketio.namespaces.iter().any(|p| socketio_hub_config::pattern_matches(p, name))
    }

    /// The upstream, when the hub runs the Socket.IO logic itself (not in link mode).
    pub fn upstream(&self) -> Option<&Arc<dyn Upstream>> {
        match &self.dispatch {
            Dispatch::App(u) => Some(u),
            Dispatch::Link(_) => None,
        }
    }

    /// The scrape-time counts of the live tables (`/metrics`).
    pub fn metrics_snapshot(&self) -> crate::metrics::Snapshot {
        crate::metrics::Snapshot {
            sessions: self.engine.sessions.len(),
            rooms: self.namespaces.iter().map(|ns| ns.room_count()).sum(),
            deadline_entries: self.engine.deadline_entries(),
        }
    }

    /// Set the recovery memory gauges from every namespace's log and sessions (at scrape).
    pub fn refresh_recovery_gauges(&self) {
        let (mut packets, mut bytes, mut sessions) = (0, 0, 0);
        for ns in self.namespaces.iter() {
            if let Some(rec) = &ns.recovery {
                let (p, b) = rec.log_size();
                packets += p;
                bytes += b;
                sessions += rec.sessions_held();
            }
        }
        self.metrics.recovery_log_packets.set(packets as i64);
        self.metrics.recovery_log_bytes.set(bytes as i64);
        self.metrics.recovery_sessions.set(sessions as i64);
    }

    /// Begin draining: refuse new sessions and report not ready.
    pub fn begin_shutdown(&self) {
        self.ready.store(false, Ordering::SeqCst);
        self.engine.begin_shutdown();
    }
}

impl EngineHandler for Hub {
    fn on_open(&self, conn: &Arc<Conn>) {
        // A fresh session's slot is empty, so this cannot fail.
        let _ = conn.ext.set(Box::new(SioConn::default()));
    }

    fn on_message(&self, conn: &Arc<Conn>, text: &str) {
        self.arc().on_socketio_text(conn, text);
    }

    fn on_binary(&self, conn: &Arc<Conn>, data: Bytes) {
        self.arc().on_socketio_binary(conn, data);
    }

    fn on_close(&self, conn: &Arc<Conn>, reason: CloseReason) {
        let sockets: Vec<_> = sio(conn).sockets.lock().drain(..).collect();
        for socket in sockets {
            self.remove_socket(&socket, reason.as_str(), true);
        }
        // Link mode: the application server holding this session learns that it ended.
        if let Dispatch::Link(router) = &self.dispatch {
            router.session_closed(conn, reason);
        }
    }
}
