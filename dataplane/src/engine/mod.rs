//! Engine.IO v4 on its own: sessions, heartbeats, and the bounded outbound queue, with the
//! layer above plugged in through `EngineHandler`.
//!
//! The Socket.IO hub (`state::Hub`) is one handler; `examples/engine_echo.rs` is another,
//! which is how the engine is tested without Socket.IO.
//!
//! Invariants: a session is closed exactly once, and `EngineHandler::on_close` runs exactly
//! once per session after it left the session table; the engine calls the handler
//! synchronously and never while holding a session lock.

pub mod echo;
pub(crate) mod heartbeat;
mod session;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use dashmap::DashMap;
use socketio_hub_config::{CorsConfig, EngineConfig, HubConfig};
use socketio_hub_protocol::engine::Packet;
use tokio_util::sync::CancellationToken;

pub use heartbeat::spawn_sweeper;
pub use session::{CloseReason, Conn, ConnHandshake, Delivery, Drained, QueueLimits, TransportKind};

use crate::ids::{NodeTag, Sid};
use crate::metrics::Metrics;

/// The layer above the engine: what to do with messages and closes.
pub trait EngineHandler: Send + Sync + 'static {
    /// A session opened (its OPEN packet is about to be sent).
    fn on_open(&self, conn: &Arc<Conn>) {
        let _ = conn;
    }
    /// A text message (the data of a `4` packet).
    fn on_message(&self, conn: &Arc<Conn>, text: &str);
    /// A binary message.
    fn on_binary(&self, conn: &Arc<Conn>, data: Bytes);
    /// The session closed (once per session).
    fn on_close(&self, conn: &Arc<Conn>, reason: CloseReason);
}

/// What the engine needs from the configuration.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// HTTP path (`/socket.io/`, `/engine.io/`).
    pub path: String,
    /// Engine.IO settings.
    pub engine: EngineConfig,
    /// CORS.
    pub cors: CorsConfig,
    /// Close sessions the layer above has not marked `attached` within this time.
    pub attach_timeout_ms: Option<u64>,
}

impl EngineSettings {
    /// The settings of a Socket.IO hub.
    pub fn for_hub(c: &HubConfig) -> Self {
        EngineSettings {
            path: c.path.clone(),
            engine: c.engine.clone(),
            cors: {
                let mut cors = c.cors.clone();
                if c.admin_ui.enabled {
                    cors.admin_origins = c.admin_ui.allowed_origins.clone();
                }
                cors
            },
            attach_timeout_ms: Some(c.socketio.connect_timeout_ms),
        }
    }
}

/// Why a new session was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// `engine.max_sessions` reached.
    #[error("this node is at its session limit")]
    Full,
    /// The node is draining.
    #[error("this node is shutting down")]
    ShuttingDown,
    /// The node is fenced: cut off from the majority of its cluster.
    #[error("this node is cut off from its cluster")]
    Fenced,
    /// A per-IP abuse limit (`crate::limits`).
    #[error("{0}")]
    Limited(crate::limits::LimitHit),
}

/// The Engine.IO server of one node.
pub struct Engine {
    /// Settings.
    pub settings: EngineSettings,
    /// Live sessions.
    pub sessions: DashMap<Sid, Arc<Conn>>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Cancelled when the node starts shutting down.
    pub shutdown: CancellationToken,
    /// Draining: new sessions are refused (`begin_shutdown`).
    draining: AtomicBool,
    /// Fenced: cut off from the majority of the cluster, new sessions are refused
    /// (`set_fenced`).
    fenced: AtomicBool,
    /// This node's tag (in every session id).
    pub tag: NodeTag,
    handler: OnceLock<Arc<dyn EngineHandler>>,
    limits: OnceLock<Arc<crate::limits::Limits>>,
    epoch: tokio::time::Instant,
    deadlines: heartbeat::Deadlines,
}

impl Engine {
    /// A new engine; call `set_handler` before serving.
    pub fn new(settings: EngineSettings, tag: NodeTag, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Engine {
            settings,
            sessions: DashMap::new(),
            metrics,
            shutdown: CancellationToken::new(),
            draining: AtomicBool::new(false),
            fenced: AtomicBool::new(false),
            tag,
            handler: OnceLock::new(),
            limits: OnceLock::new(),
            epoch: tokio::time::Instant::now(),
            deadlines: heartbeat::Deadlines::default(),
        })
    }

    /// Plug in the layer above (once).
    pub fn set_handler(&self, handler: Arc<dyn EngineHandler>) {
        if self.handler.set(handler).is_err() {
            tracing::error!("engine handler set twice; keeping the first");
        }
    }

    /// Plug in the abuse limits (once, before serving; without them nothing is limited).
    pub fn set_limits(&self, limits: Arc<crate::limits::Limits>) {
        if self.limits.set(limits).is_err() {
            tracing::error!("engine limits set twice; keeping the first");
        }
    }

    /// The abuse limits, when set.
    pub fn limits(&self) -> Option<&Arc<crate::limits::Limits>> {
        self.limits.get()
    }

    fn handler(&self) -> &Arc<dyn EngineHandler> {
        // `start` sets the handler before the listener is served; nothing calls in earlier.
        self.handler.get().expect("engine handler set before serving")
    }

    /// Milliseconds since the engine started (tokio clock, so tests can pause time).
    pub fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// The instant of hub-clock time `ms`.
    fn instant_of(&self, ms: u64) -> tokio::time::Instant {
        self.epoch + std::time::Duration::from_millis(ms)
    }

    /// When `conn` must be attached by, if the layer above asks for attaching.
    fn connect_deadline(&self, conn: &Conn) -> Option<u64> {
        self.settings.attach_timeout_ms.map(|t| conn.opened_at + t)
    }

    /// Close `conn` if one of its deadlines has passed (a request arriving just after a
    /// deadline sees the session gone, whenever the deadline task runs). Returns whether it
    /// is closed.
    pub fn expire_overdue(&self, conn: &Arc<Conn>) -> bool {
        let ping_timeout = self.settings.engine.ping_timeout_ms;
        if let Some(reason) = conn.overdue(self.now_ms(), ping_timeout, self.connect_deadline(conn)) {
            self.close(conn, reason);
        }
        conn.closed().is_some()
    }

    /// Entries in the deadline heap (one per session, plus stale ones awaiting removal).
    pub fn deadline_entries(&self) -> usize {
        self.deadlines.len()
    }

    /// Open a new session.
    pub fn open_session(
        &self,
        transport: TransportKind,
        handshake: ConnHandshake,
    ) -> Result<Arc<Conn>, Refusal> {
        if self.draining.load(Ordering::Relaxed) || self.shutdown.is_cancelled() {
            return Err(Refusal::ShuttingDown);
        }
        if self.fenced.load(Ordering::Relaxed) {
            return Err(Refusal::Fenced);
        }
        let e = &self.settings.engine;
        if self.sessions.len() >= e.max_sessions {
            return Err(Refusal::Full);
        }
        // Last check: nothing below fails, so an admitted session is always released by `close`.
        if let Some(l) = self.limits.get() {
            l.admit_session(&handshake, self.now_ms()).map_err(Refusal::Limited)?;
        }
        let limits = QueueLimits { max_frames: e.max_queued_frames, max_bytes: e.max_queued_bytes };
        let conn = Arc::new(Conn::new(
            Sid::new(self.tag),
            Arc::new(handshake),
            transport,
            limits,
            self.now_ms(),
            e.ping_interval_ms,
        ));
        let at = conn.next_due(self.connect_deadline(&conn));
        conn.wake_at.store(at, Ordering::Release);
        self.deadlines.file(&conn, at);
        self.sessions.insert(conn.sid.clone(), conn.clone());
        self.metrics.sessions_opened.with_label_values(&[transport.as_str()]).inc();
        self.metrics.connections.with_label_values(&[transport.as_str()]).inc();
        self.handler().on_open(&conn);
        Ok(conn)
    }

    /// Close a session; the first caller runs the cleanup, later calls do nothing.
    pub fn close(&self, conn: &Arc<Conn>, reason: CloseReason) {
        if !conn.mark_closed(reason) {
            return;
        }
        self.sessions.remove(&conn.sid);
        if let Some(l) = self.limits.get() {
            l.release_session(&conn.handshake);
        }
        self.metrics.connections.with_label_values(&[conn.transport().as_str()]).dec();
        self.metrics.sessions_closed.with_label_values(&[reason.label()]).inc();
        tracing::debug!(sid = %conn.sid, reason = reason.label(), "session closed");
        self.handler().on_close(conn, reason);
    }

    /// Handle one Engine.IO packet from a client (probe and upgrade packets are the
    /// transport's business and never reach here).
    pub fn on_packet(&self, conn: &Arc<Conn>, packet: Packet<'_>) {
        self.metrics.packets_in.inc();
        if let Some(l) = self.limits.get() {
            if !l.inbound_ok(&conn.inbound, &packet, self.now_ms()) {
                return self.close(conn, CloseReason::RateLimited);
            }
        }
        if !matches!(packet, Packet::Pong(_)) {
            conn.on_traffic(self.now_ms(), self.settings.engine.ping_timeout_ms);
        }
        match packet {
            Packet::Pong(_) => {
                if let Some(at) = conn.on_pong(self.now_ms(), self.settings.engine.ping_interval_ms) {
                    self.deadlines.file(conn, at);
                }
            }
            Packet::Close => self.close(conn, CloseReason::TransportClose),
            Packet::Message(text) => {
                self.metrics.bytes_in.inc_by(text.len() as u64);
                self.handler().on_message(conn, text)
            }
            Packet::Binary(data) => {
                self.metrics.bytes_in.inc_by(data.len() as u64);
                self.handler().on_binary(conn, Bytes::from(data.into_owned()))
            }
            // A v4 client never pings outside an upgrade probe; tolerate it like the reference server.
            Packet::Ping(_) | Packet::Noop | Packet::Upgrade => {}
            Packet::Open(_) => {
                self.metrics.bad_input.with_label_values(&["engine"]).inc();
                self.close(conn, CloseReason::ParseError)
            }
        }
    }

    /// Move a session from the polling gauge to the WebSocket one.
    pub fn count_upgrade(&self) {
        self.metrics.connections.with_label_values(&["polling"]).dec();
        self.metrics.connections.with_label_values(&["websocket"]).inc();
        self.metrics.upgrades.inc();
    }

    /// Start draining: refuse new sessions; existing ones keep being served (polling requests,
    /// heartbeats) until they are closed or `stop` is called.
    pub fn begin_shutdown(&self) {
        self.draining.store(true, Ordering::Relaxed);
        self.metrics.draining.set(1);
    }

    /// Whether new sessions are refused because the node is draining or stopped.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed) || self.shutdown.is_cancelled()
    }

    /// Refuse new sessions while `fenced` (the node is cut off from its cluster's majority).
    pub fn set_fenced(&self, fenced: bool) {
        self.fenced.store(fenced, Ordering::Relaxed);
    }

    /// Whether the node is fenced.
    pub fn is_fenced(&self) -> bool {
        self.fenced.load(Ordering::Relaxed)
    }

    /// Stop: the listener, the heartbeat task and the admin server end.
    pub fn stop(&self) {
        self.draining.store(true, Ordering::Relaxed);
        self.metrics.draining.set(1);
        self.shutdown.cancel();
    }

    /// Close every session.
    pub fn close_all(&self, reason: CloseReason) {
        let conns: Vec<_> = self.sessions.iter().map(|e| e.value().clone()).collect();
        for conn in conns {
            self.close(&conn, reason);
        }
    }

    /// Mark a session as attached (it did what the connect timeout asks).
    pub fn attach(&self, conn: &Conn) {
        conn.attached.store(true, Ordering::Relaxed);
    }
}
