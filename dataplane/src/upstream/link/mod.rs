//! Default mode: application servers dial in over a WebSocket "server link" and run their own
//! Socket.IO server (the Node SDK gives socket.io a virtual engine); the hub routes each
//! client's raw Socket.IO packets to the one application server its session is bound to, and
//! writes what that server answers back to the client. Protocol: `docs/link-protocol.md`.
//!
//! The hub stays the authority for sessions (heartbeats, upgrades, never crossing the link)
//! and for rooms: it registers a socket when the application answers its CONNECT, and
//! broadcasts, room operations, `fetchSockets` and `serverSideEmit` are link messages it
//! carries out.
//!
//! Invariants:
//! - a session is bound to at most one live application server; only that server's packets
//!   reach it (a late packet from a server it was moved away from is ignored);
//! - messages of one link are applied in the order they were sent (one reader task per link,
//!   synchronous application), so `socket.join(room)` then `io.to(room).emit()` reaches the
//!   socket even when the join was not awaited;
//! - what the hub queues for one application server is bounded (`MAX_QUEUED`); past it client
//!   packets are dropped and counted, and a CONNECT is refused, never buffered without bound;
//! - when a server goes away its sessions stay connected and are re-bound (their sockets are
//!   re-announced with `rebind`), or wait for a server to come back.

mod endpoint;
mod metrics;
pub mod wire;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dashmap::DashMap;
use parking_lot::Mutex;
use serde_json::Value;
use socketio_hub_protocol::socket::{Packet, PacketType};
use tokio::sync::{mpsc, oneshot};

pub use endpoint::route;

use self::metrics::LinkMetrics;
use super::{BoxFut, ConnectDecision, ConnectRequest, EventCall, PacketRouter, Upstream};
use crate::auth::AccessKeys;
use crate::engine::{CloseReason, Conn};
use crate::ids::{Room, Sid};
use crate::metrics::Metrics;
use crate::state::{sio, Args, Hub, PreparedConnect, Socket, LINK_ACK_ID_BASE};

/// Most messages queued for one application server before client packets are dropped.
pub const MAX_QUEUED: usize = 8192;
/// Most messages held for a session while no application server is connected.
const MAX_BUFFERED: usize = 256;

/// A message for an application server: JSON text, then its binary attachments.
pub(crate) struct Out {
    text: String,
    bins: Vec<Bytes>,
}

impl Out {
    fn json(text: String) -> Self {
        Out { text, bins: Vec::new() }
    }
}

/// Why a message could not be queued for an application server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SendError {
    /// Its queue is full (a slow application server).
    Saturated,
    /// Its link is gone.
    Gone,
}

/// One connected application server.
pub(crate) struct Instance {
    id: u64,
    name: String,
    tx: mpsc::Sender<Out>,
    bound: AtomicUsize,
    alive: AtomicBool,
    metrics: Arc<LinkMetrics>,
}

impl Instance {
    fn send(&self, out: Out) -> Result<(), SendError> {
        self.try_send(out).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SendError::Saturated,
            mpsc::error::TrySendError::Closed(_) => SendError::Gone,
        })
    }

    /// Queue `out`, handing it back when it cannot be queued.
    fn try_send(&self, out: Out) -> Result<(), mpsc::error::TrySendError<Out>> {
        self.tx.try_send(out)?;
        self.metrics.in_flight.inc();
        Ok(())
    }
}

/// A namespace connect forwarded to the application, awaiting its CONNECT or CONNECT_ERROR.
struct Pending {
    prep: PreparedConnect,
    /// Rooms joined (by middlewares) before the answer.
    rooms: Vec<Room>,
    sent_at: Instant,
}

#[derive(Default)]
struct SessionState {
    instance: Option<Arc<Instance>>,
    /// Client packets held while no application server is bound.
    buffered: VecDeque<Out>,
    pending: HashMap<String, Pending>,
    closed: bool,
}

/// The link side of one client session.
pub(crate) struct LinkSession {
    conn: Arc<Conn>,
    state: Mutex<SessionState>,
}

#[derive(Default)]
struct Routing {
    instances: Vec<Arc<Instance>>,
    waiting: Vec<Arc<LinkSession>>,
}

/// A request the hub made to an application server.
enum HubRequest {
    /// Answers to a `serverSideEmit` are relayed to the server that emitted it.
    SsEmit { origin: Weak<Instance>, origin_req: u64 },
    /// `socket.data` of sockets bound to that server (for another server's `fetchSockets`).
    Data(oneshot::Sender<Value>),
}

pub(crate) struct Registry {
    hub: OnceLock<Weak<Hub>>,
    keys: AccessKeys,
    metrics: Arc<LinkMetrics>,
    node: String,
    routing: Mutex<Routing>,
    sessions: DashMap<Sid, Arc<LinkSession>>,
    next_instance: AtomicU64,
    next_req: AtomicU64,
    requests: DashMap<u64, HubRequest>,
    wait_for_app: Duration,
    max_attachments: usize,
}

/// The server-link upstream (cheap to clone).
#[derive(Clone)]
pub struct Link {
    reg: Arc<Registry>,
}

impl Link {
    /// A link upstream: clients wait up to `connect_timeout` for an application server.
    pub fn new(
        keys: AccessKeys,
        metrics: &Metrics,
        node: &str,
        connect_timeout: Duration,
        max_attachments: usize,
    ) -> Self {
        Link {
            reg: Arc::new(Registry {
                hub: OnceLock::new(),
                keys,
                metrics: Arc::new(LinkMetrics::new(&metrics.registry)),
                node: node.to_string(),
                routing: Mutex::new(Routing::default()),
                sessions: DashMap::new(),
                next_instance: AtomicU64::new(1),
                next_req: AtomicU64::new(1),
                requests: DashMap::new(),
                // Answer before the engine's own connect timeout closes the session.
                wait_for_app: connect_timeout * 9 / 10,
                max_attachments,
            }),
        }
    }

    /// Give the link its hub (once, right after the hub is built).
    pub fn attach(&self, hub: &Arc<Hub>) {
        let _ = self.reg.hub.set(Arc::downgrade(hub));
    }

    /// Connected application servers.
    pub fn instances(&self) -> usize {
        self.reg.routing.lock().instances.len()
    }
}

impl Registry {
    fn hub(&self) -> Option<Arc<Hub>> {
        self.hub.get().and_then(Weak::upgrade)
    }

    fn next_req(&self) -> u64 {
        self.next_req.fetch_add(1, Ordering::Relaxed)
    }

    /// The least loaded live server.
    fn pick(routing: &Routing) -> Option<Arc<Instance>> {
        routing
            .instances
            .iter()
            .filter(|i| i.alive.load(Ordering::Relaxed))
            .min_by_key(|i| i.bound.load(Ordering::Relaxed))
            .cloned()
    }

    /// The link state of `conn`, created (and bound, or put to wait) on first use.
    fn session(&self, conn: &Arc<Conn>) -> Arc<LinkSession> {
        if let Some(s) = self.sessions.get(&conn.sid) {
            return s.clone();
        }
        let mut routing = self.routing.lock();
        let session = match self.sessions.entry(conn.sid.clone()) {
            dashmap::Entry::Occupied(e) => return e.get().clone(),
            dashmap::Entry::Vacant(v) => v
                .insert(Arc::new(LinkSession {
                    conn: conn.clone(),
                    state: Mutex::new(SessionState::default()),
                }))
                .clone(),
        };
        match Self::pick(&routing) {
            Some(inst) => self.bind(&session, &mut session.state.lock(), inst),
            None => routing.waiting.push(session.clone()),
        }
        session
    }

    /// Bind `session` to `inst` and tell it everything it needs: the session, its connected
    /// sockets (as rebinds), connects still awaiting an answer, then packets held meanwhile.
    fn bind(&self, session: &LinkSession, state: &mut SessionState, inst: Arc<Instance>) {
        if state.closed {
            return;
        }
        let conn = &session.conn;
        let hs = &conn.handshake;
        let open = serde_json::json!({
            "t": "open",
            "sid": conn.sid.as_str(),
            "transport": conn.transport().as_str(),
            "handshake": {
                "headers": hs.headers,
                "query": hs.query,
                "address": hs.address.ip().to_string(),
                "time": hs.time,
                "issued": hs.issued,
                "url": hs.url,
            },
        });
        let mut msgs = vec![Out::json(open.to_string())];
        let sockets: Vec<Arc<Socket>> = conn.ext.get().map(|_| sio(conn).sockets()).unwrap_or_default();
        for s in &sockets {
            let rooms = s.rooms();
            msgs.push(Out::json(
                wire::ConnectOut {
                    sid: conn.sid.as_str(),
                    nsp: &s.ns.name,
                    id: s.id.as_str(),
                    auth: &s.auth,
                    claims: s.claims.as_deref(),
                    rooms: rooms.iter().skip(1).map(String::as_str).collect(),
                    rebind: true,
                }
                .json(),
            ));
        }
        for p in state.pending.values_mut() {
            p.sent_at = Instant::now();
            msgs.push(Out::json(connect_json(conn, &p.prep)));
        }
        msgs.extend(state.buffered.drain(..));
        inst.bound.fetch_add(1, Ordering::Relaxed);
        self.metrics.bound_sessions.inc();
        if !sockets.is_empty() {
            self.metrics.rebinds.inc();
        }
        state.instance = Some(inst.clone());
        for m in msgs {
            // A fresh binding starts with an empty share of the queue; if even that overflows,
            // the server is hopelessly behind and its link reader will be torn down by pings.
            if inst.send(m).is_err() {
                self.metrics.dropped.with_label_values(&["saturated"]).inc();
            }
        }
    }

    /// Queue a message of `session` for its server, or hold it while it has none.
    fn send(&self, session: &LinkSession, out: Out) -> Result<(), SendError> {
        let mut state = session.state.lock();
        if state.closed {
            return Ok(());
        }
        match &state.instance {
            Some(inst) => match inst.try_send(out) {
                Ok(()) => Ok(()),
                Err(mpsc::error::TrySendError::Full(_)) => {
                    self.metrics.dropped.with_label_values(&["saturated"]).inc();
                    Err(SendError::Saturated)
                }
                Err(mpsc::error::TrySendError::Closed(out)) => {
                    // The link just died: hold the message for the server we will be re-bound to.
                    hold(&mut state, out, &self.metrics);
                    Ok(())
                }
            },
            None => {
                hold(&mut state, out, &self.metrics);
                Ok(())
            }
        }
    }

    /// A new application server: bind every waiting session.
    fn add_instance(&self, inst: Arc<Instance>) {
        let mut routing = self.routing.lock();
        routing.instances.push(inst);
        self.metrics.links.set(routing.instances.len() as i64);
        let waiting = std::mem::take(&mut routing.waiting);
        for session in waiting {
            if let Some(target) = Self::pick(&routing) {
                self.bind(&session, &mut session.state.lock(), target);
            }
        }
    }

    /// An application server went away: re-bind its sessions to the others (or make them wait).
    fn remove_instance(&self, inst: &Arc<Instance>) {
        inst.alive.store(false, Ordering::Relaxed);
        let mut routing = self.routing.lock();
        routing.instances.retain(|i| !Arc::ptr_eq(i, inst));
        self.metrics.links.set(routing.instances.len() as i64);
        let orphans: Vec<Arc<LinkSession>> = self
            .sessions
            .iter()
            .filter(|e| e.value().state.lock().instance.as_ref().is_some_and(|i| Arc::ptr_eq(i, inst)))
            .map(|e| e.value().clone())
            .collect();
        self.requests.retain(|_, r| match r {
            HubRequest::SsEmit { origin, .. } => origin.upgrade().is_some_and(|o| !Arc::ptr_eq(&o, inst)),
            HubRequest::Data(_) => true,
        });
        tracing::info!(instance = inst.id, name = %inst.name, sessions = orphans.len(), "application server left");
        for session in orphans {
            let mut state = session.state.lock();
            if !state.instance.as_ref().is_some_and(|i| Arc::ptr_eq(i, inst)) {
                continue;
            }
            state.instance = None;
            self.metrics.bound_sessions.dec();
            match Self::pick(&routing) {
                Some(target) => self.bind(&session, &mut state, target),
                None => {
                    drop(state);
                    routing.waiting.push(session);
                }
            }
        }
    }

    /// The session of `sid` when it is bound to `inst`.
    fn session_of(&self, sid: &str, inst: &Arc<Instance>) -> Option<Arc<LinkSession>> {
        let sid = Sid::parse(sid)?;
        let session = self.sessions.get(&sid)?.clone();
        let bound = session.state.lock().instance.as_ref().is_some_and(|i| Arc::ptr_eq(i, inst));
        bound.then_some(session)
    }

    /// Send to the server `socket`'s session is bound to.
    fn notify(&self, socket: &Socket, text: String) {
        if let Some(session) = self.sessions.get(&socket.conn.sid).map(|s| s.clone()) {
            let _ = self.send(&session, Out::json(text));
        }
    }

    /// A client CONNECT: the hub's checks, then the application decides.
    fn client_connect(&self, hub: &Arc<Hub>, conn: &Arc<Conn>, packet: &Packet<'_>) {
        let auth = match packet.connect_auth() {
            Ok(a) => a.unwrap_or_default(),
            Err(e) => return hub.protocol_error(conn, &e.to_string()),
        };
        let session = self.session(conn);
        if session.state.lock().pending.contains_key(packet.nsp) {
            return;
        }
        let Some(prep) = hub.prepare_connect(conn, packet.nsp.to_string(), auth) else { return };
        let (nsp, id) = (prep.nsp.clone(), prep.id.clone());
        let text = connect_json(conn, &prep);
        {
            let mut state = session.state.lock();
            if state.closed {
                return;
            }
            let bound = state.instance.clone();
            state.pending.insert(nsp.clone(), Pending { prep, rooms: Vec::new(), sent_at: Instant::now() });
            if let Some(inst) = bound {
                if inst.send(Out::json(text)).is_err() {
                    state.pending.remove(&nsp);
                    drop(state);
                    self.metrics.dropped.with_label_values(&["saturated"]).inc();
                    let data = serde_json::json!({ "reason": "app_server_saturated" });
                    return hub.reject(
                        conn,
                        &nsp,
                        "app_server_saturated",
                        "application server overloaded",
                        Some(&data),
                    );
                }
            }
        }
        // No answer in time (no server connected, or it never answered): a clear CONNECT_ERROR
        // before the engine's own connect timeout closes the session.
        let (wait, session, hub) = (self.wait_for_app, session.clone(), hub.clone());
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            let mut state = session.state.lock();
            if state.pending.get(&nsp).is_none_or(|p| p.prep.id != id) {
                return;
            }
            state.pending.remove(&nsp);
            let (label, message) = match state.instance {
                None => ("no_app_server", "no application server is connected to the hub"),
                Some(_) => ("app_server_timeout", "the application server did not answer in time"),
            };
            drop(state);
            let data = serde_json::json!({ "reason": label });
            hub.reject(&session.conn, &nsp, label, message, Some(&data));
        });
    }
}

fn hold(state: &mut SessionState, out: Out, metrics: &LinkMetrics) {
    if state.buffered.len() >= MAX_BUFFERED {
        metrics.dropped.with_label_values(&["no_app_server"]).inc();
    } else {
        state.buffered.push_back(out);
    }
}

fn connect_json(conn: &Conn, prep: &PreparedConnect) -> String {
    wire::ConnectOut {
        sid: conn.sid.as_str(),
        nsp: &prep.nsp,
        id: prep.id.as_str(),
        auth: &prep.auth,
        claims: prep.claims.as_ref(),
        rooms: prep.restored_rooms().iter().map(|r| &**r).collect(),
        rebind: false,
    }
    .json()
}

impl Upstream for Link {
    fn connect(&self, _req: ConnectRequest) -> BoxFut<ConnectDecision> {
        // Link mode routes CONNECT packets itself (`PacketRouter`); this path is not taken.
        Box::pin(async {
            ConnectDecision::Reject { message: "internal error: link mode connect".into(), data: None }
        })
    }

    fn connected(&self, _socket: Arc<Socket>) -> BoxFut<()> {
        // The application knows: it answered the CONNECT.
        Box::pin(async {})
    }

    fn event(&self, _call: EventCall) -> BoxFut<Option<Args>> {
        // Link mode forwards events raw (`PacketRouter`); this path is not taken.
        Box::pin(async { None })
    }

    fn disconnected(&self, socket: Arc<Socket>, reason: &'static str) -> BoxFut<()> {
        // A closing session is reported once, by `session_closed`; other removals (the client
        // left the namespace, REST or another server disconnected it) per socket.
        if socket.conn.closed().is_none() {
            let text = serde_json::json!({
                "t": "disconnect",
                "sid": socket.conn.sid.as_str(),
                "nsp": &*socket.ns.name,
                "id": socket.id.as_str(),
                "reason": reason,
            });
            self.reg.notify(&socket, text.to_string());
        }
        Box::pin(async {})
    }

    fn packet_router(&self) -> Option<&dyn PacketRouter> {
        Some(self)
    }
}

impl PacketRouter for Link {
    fn client_packet(
        &self,
        hub: &Arc<Hub>,
        conn: &Arc<Conn>,
        text: &str,
        packet: &Packet<'_>,
        attachments: Vec<Bytes>,
    ) {
        let reg = &self.reg;
        match packet.kind {
            PacketType::Connect => reg.client_connect(hub, conn, packet),
            PacketType::ConnectError => hub.protocol_error(conn, "client sent CONNECT_ERROR"),
            PacketType::Disconnect => {
                if let Some(s) = sio(conn).socket(packet.nsp) {
                    hub.remove_socket(&s, "client namespace disconnect", false);
                }
            }
            PacketType::Ack | PacketType::BinaryAck if packet.id.is_some_and(|id| id >= LINK_ACK_ID_BASE) => {
                // An answer to a broadcast with acks: the hub waits for it, not the application.
                let (Some(s), Some(id)) = (sio(conn).socket(packet.nsp), packet.id) else { return };
                match packet.ack_args() {
                    Ok(items) => {
                        if !s.on_ack(id, Args::from_raw(&items, attachments)) {
                            hub.metrics.events_dropped.with_label_values(&["unexpected_ack"]).inc();
                        }
                    }
                    Err(e) => hub.protocol_error(conn, &e.to_string()),
                }
            }
            _ => {
                if sio(conn).socket(packet.nsp).is_none() {
                    hub.metrics.events_dropped.with_label_values(&["unknown_namespace"]).inc();
                    return;
                }
                if matches!(packet.kind, PacketType::Event | PacketType::BinaryEvent) {
                    hub.metrics.events_in.inc();
                }
                let Some(session) = reg.sessions.get(&conn.sid).map(|s| s.clone()) else { return };
                let out = Out {
                    text: wire::packet_json(conn.sid.as_str(), text, attachments.len()),
                    bins: attachments,
                };
                let _ = reg.send(&session, out);
            }
        }
    }

    fn session_closed(&self, conn: &Arc<Conn>, reason: CloseReason) {
        let reg = &self.reg;
        let Some((_, session)) = reg.sessions.remove(&conn.sid) else { return };
        let mut state = session.state.lock();
        state.closed = true;
        state.pending.clear();
        state.buffered.clear();
        match state.instance.take() {
            Some(inst) => {
                inst.bound.fetch_sub(1, Ordering::Relaxed);
                reg.metrics.bound_sessions.dec();
                let text =
                    serde_json::json!({ "t": "close", "sid": conn.sid.as_str(), "reason": reason.as_str() });
                let _ = inst.send(Out::json(text.to_string()));
            }
            None => {
                drop(state);
                reg.routing.lock().waiting.retain(|s| !Arc::ptr_eq(s, &session));
            }
        }
    }
}
