//! Socket.IO state of one node: sessions, namespaces, sockets, rooms, acks, recovery.
//!
//! `Hub` is the node: it owns the session table and the namespaces, and is the one place
//! where a session's end turns into socket disconnects and upstream notifications.
//!
//! Invariants:
//! - a socket is in `Namespace::sockets` exactly while its CONNECT has been answered and it
//!   has not disconnected; the CONNECT reply is queued only after the socket is registered,
//!   so it can receive events the moment the client sees the reply;
//! - room state is per node and queryable (`Namespace::rooms_summary`), which is what the
//!   cluster layer gossips;
//! - nothing here knows HTTP or WebSocket; transports hand in decoded Engine.IO packets.

mod connect;
mod inbound;
mod namespace;
mod packet;
mod permissions;
mod recovery;
mod socket;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use socketio_hub_config::HubConfig;
use tokio_util::sync::CancellationToken;

pub use namespace::{Namespace, Selector};
pub use packet::{Args, Outgoing};
pub use socket::{AckSink, Socket};

use crate::auth::AccessKeys;
use crate::ids::{NodeTag, Sid};
use crate::metrics::Metrics;
use crate::session::{CloseReason, Conn, ConnHandshake, QueueLimits, TransportKind};
use crate::upstream::Upstream;

/// Why a new session was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// `engine.max_sessions` reached.
    #[error("this node is at its session limit")]
    Full,
    /// The node is draining.
    #[error("this node is shutting down")]
    ShuttingDown,
}

/// One hub node.
pub struct Hub {
    /// Configuration (validated).
    pub config: Arc<HubConfig>,
    /// This node's id tag.
    pub tag: NodeTag,
    /// Live Engine.IO sessions.
    pub sessions: DashMap<Sid, Arc<Conn>>,
    /// Namespaces that have (or had) sockets.
    pub namespaces: DashMap<Arc<str>, Arc<Namespace>>,
    /// Where application logic lives.
    pub upstream: Arc<dyn Upstream>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Access keys (REST, server links, webhooks signatures, client tokens).
    pub keys: AccessKeys,
    /// Cancelled when the node starts shutting down.
    pub shutdown: CancellationToken,
    /// Whether `/readyz` reports ready.
    pub ready: AtomicBool,
    epoch: tokio::time::Instant,
}

impl Hub {
    /// A hub with the given parts. `tag` names this node in the ids it mints.
    pub fn new(
        config: Arc<HubConfig>,
        tag: NodeTag,
        upstream: Arc<dyn Upstream>,
        metrics: Arc<Metrics>,
        keys: AccessKeys,
    ) -> Arc<Self> {
        Arc::new(Hub {
            config,
            tag,
            sessions: DashMap::new(),
            namespaces: DashMap::new(),
            upstream,
            metrics,
            keys,
            shutdown: CancellationToken::new(),
            ready: AtomicBool::new(false),
            epoch: tokio::time::Instant::now(),
        })
    }

    /// Milliseconds since the hub started (tokio clock, so tests can pause time).
    pub fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Open a new Engine.IO session.
    pub fn open_session(
        &self,
        transport: TransportKind,
        handshake: ConnHandshake,
    ) -> Result<Arc<Conn>, Refusal> {
        if self.shutdown.is_cancelled() {
            return Err(Refusal::ShuttingDown);
        }
        if self.sessions.len() >= self.config.engine.max_sessions {
            return Err(Refusal::Full);
        }
        let e = &self.config.engine;
        let limits = QueueLimits { max_frames: e.max_queued_frames, max_bytes: e.max_queued_bytes };
        let conn = Arc::new(Conn::new(
            Sid::new(self.tag),
            Arc::new(handshake),
            transport,
            limits,
            self.now_ms(),
            e.ping_interval_ms,
        ));
        self.sessions.insert(conn.sid.clone(), conn.clone());
        self.metrics.sessions_opened.with_label_values(&[transport.as_str()]).inc();
        self.metrics.connections.with_label_values(&[transport.as_str()]).inc();
        Ok(conn)
    }

    /// Close a session for `reason`; the first caller runs the cleanup, later calls do nothing.
    pub fn close_conn(&self, conn: &Arc<Conn>, reason: CloseReason) {
        if !conn.mark_closed(reason) {
            return;
        }
        self.sessions.remove(&conn.sid);
        let transport = conn.transport();
        self.metrics.connections.with_label_values(&[transport.as_str()]).dec();
        self.metrics.sessions_closed.with_label_values(&[reason.label()]).inc();
        let sockets: Vec<_> = conn.sockets.lock().drain(..).collect();
        for socket in sockets {
            self.remove_socket(&socket, reason.as_str(), true);
        }
        tracing::debug!(sid = %conn.sid, reason = reason.label(), "session closed");
    }

    /// Move a session from one transport gauge to another (after an upgrade).
    pub fn count_upgrade(&self) {
        self.metrics.connections.with_label_values(&["polling"]).dec();
        self.metrics.connections.with_label_values(&["websocket"]).inc();
        self.metrics.upgrades.inc();
    }

    /// The namespace `name`, created on first use.
    pub fn namespace(&self, name: &str) -> Arc<Namespace> {
        if let Some(ns) = self.namespaces.get(name) {
            return ns.clone();
        }
        self.namespaces
            .entry(Arc::from(name))
            .or_insert_with(|| Arc::new(Namespace::new(name, &self.config)))
            .clone()
    }

    /// An existing namespace.
    pub fn existing_namespace(&self, name: &str) -> Option<Arc<Namespace>> {
        self.namespaces.get(name).map(|n| n.clone())
    }

    /// Whether clients may join namespace `name`.
    pub fn namespace_allowed(&self, name: &str) -> bool {
        self.config.socketio.namespaces.iter().any(|p| socketio_hub_config::pattern_matches(p, name))
    }

    /// Begin draining: refuse new sessions and report not ready.
    pub fn begin_shutdown(&self) {
        self.ready.store(false, Ordering::SeqCst);
        self.shutdown.cancel();
    }

    /// Close every session (after the drain grace period).
    pub fn close_all(&self, reason: CloseReason) {
        let conns: Vec<_> = self.sessions.iter().map(|e| e.value().clone()).collect();
        for conn in conns {
            self.close_conn(&conn, reason);
        }
    }
}
