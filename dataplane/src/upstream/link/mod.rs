//! Default mode: application servers dial in over a WebSocket "server link" and run their own
//! Socket.IO server (the Node SDK gives socket.io a virtual engine); the hub routes each
//! client's raw Socket.IO packets to the one application server its session is bound to, and
//! writes what that server answers back to the client. Protocol: `docs/link-protocol.md`.
//!
//! Cluster-wide: a session is bound to an application server linked to *any* node. When the
//! server is linked to another node, the session's messages cross the mesh to that node
//! (`Msg::ToApp`), which writes them on the link, and the server's answers for the session come
//! back the same way (`Msg::FromApp`) — so an application that can reach one address (a
//! Service) serves clients on every node, and sessions are balanced over every live server of
//! the cluster (nodes gossip their servers and how many sessions each holds). Operations on
//! many sockets (broadcasts, socketsJoin, fetchSockets…) go through the cluster-wide
//! operations layer (`crate::ops`), exactly like REST's; `serverSideEmit` reaches the servers
//! linked to every node (`servers.rs`).
//!
//! The hub stays the authority for sessions (heartbeats, upgrades, never crossing the link)
//! and for rooms: it registers a socket when the application answers its CONNECT.
//!
//! Invariants:
//! - a session is bound to at most one live application server, anywhere in the cluster;
//!   only that server's packets reach it (a late packet from a server it moved away from —
//!   local or relayed — is ignored);
//! - messages of one link are applied in the order they were sent (one reader task per link,
//!   synchronous application, and one ordered mesh stream per pair of nodes for what crosses
//!   nodes), so `socket.join(room)` then `io.to(room).emit()` reaches the socket even when the
//!   join was not awaited and the socket is on another node;
//! - what the hub queues for one application server is bounded (`MAX_QUEUED`; mesh queues are
//!   bounded too); past it client packets are dropped and counted, and a CONNECT is refused,
//!   never buffered without bound;
//! - when a server goes away — its link closes, or the node holding its link dies — its
//!   sessions stay connected and are re-bound to a live server anywhere (their sockets are
//!   re-announced with `rebind`, same ids and rooms), or wait for one.

mod endpoint;
mod metrics;
mod relay;
mod servers;
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
use crate::auth::AccessKeys;
use crate::cluster::{Cluster, Msg, NodeId, Relay};
use crate::engine::{CloseReason, Conn};
use crate::ids::{Room, Sid};
use crate::metrics::Metrics;
use crate::ops::Ops;
use crate::state::{sio, AppBinding, Args, Hub, PacketRouter, PreparedConnect, Socket, LINK_ACK_ID_BASE};

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
    /// Its queue (or the mesh queue towards its node) is full.
    Saturated,
    /// Its link is gone.
    Gone,
}

/// One application server connected to this node.
pub(crate) struct Instance {
    id: u64,
    name: String,
    tx: mpsc::Sender<Out>,
    /// Sessions bound to it, from every node.
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

/// The application server a session is bound to.
#[derive(Clone)]
enum Bound {
    /// Linked to this node.
    Local(Arc<Instance>),
    /// Linked to another node: instance `instance` of node `node`.
    Remote { node: NodeId, instance: u64 },
}

/// Who sent an application message, to check it against a session's binding.
#[derive(Debug, Clone, PartialEq, Eq)]
enum AppRef {
    /// Instance of this node.
    Local(u64),
    /// Instance of another node (its message came over the mesh).
    Remote(NodeId, u64),
}

impl Bound {
    fn app_ref(&self) -> AppRef {
        match self {
            Bound::Local(i) => AppRef::Local(i.id),
            Bound::Remote { node, instance } => AppRef::Remote(node.clone(), *instance),
        }
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
    bound: Option<Bound>,
    /// Client packets held while no application server is bound.
    buffered: VecDeque<Out>,
    pending: HashMap<String, Pending>,
    closed: bool,
}

/// The link side of one client session held by this node.
pub(crate) struct LinkSession {
    conn: Arc<Conn>,
    state: Mutex<SessionState>,
}

/// A session of another node bound to an application server linked here.
struct Relayed {
    inst: Arc<Instance>,
    node: NodeId,
}

#[derive(Default)]
struct Routing {
    instances: Vec<Arc<Instance>>,
    waiting: Vec<Arc<LinkSession>>,
    /// Sessions of this node bound to each remote server (balancing ahead of gossip).
    remote_bound: HashMap<(NodeId, u64), u64>,
    /// Remote servers their node said are gone, while its gossip still lists them (never
    /// picked: a binding to them would bounce straight back).
    gone: std::collections::HashSet<(NodeId, u64)>,
}

/// A request the hub made to an application server.
enum HubRequest {
    /// Answers to a `serverSideEmit` are relayed to the server that emitted it (`multi`: one
    /// id for many answering servers of other nodes, removed by its timer, not by an answer).
    SsEmit { origin: Weak<Instance>, origin_req: u64, multi: bool },
    /// Answers to a `serverSideEmit` from another node go back to that node.
    SsEmitRemote { node: NodeId, req: u64 },
    /// `socket.data` of sockets bound to that server (for another server's `fetchSockets`).
    Data(oneshot::Sender<Value>),
}

pub(crate) struct Registry {
    hub: OnceLock<Weak<Hub>>,
    ops: OnceLock<Ops>,
    cluster: OnceLock<Arc<Cluster>>,
    keys: AccessKeys,
    metrics: Arc<LinkMetrics>,
    node: String,
    routing: Mutex<Routing>,
    sessions: DashMap<Sid, Arc<LinkSession>>,
    relayed: DashMap<Sid, Relayed>,
    next_instance: AtomicU64,
    next_req: AtomicU64,
    requests: Arc<DashMap<u64, HubRequest>>,
    wait_for_app: Duration,
    max_attachments: usize,
}

/// The server-link dispatch mode (cheap to clone).
#[derive(Clone)]
pub struct Link {
    reg: Arc<Registry>,
}

impl Link {
    /// A link dispatcher: clients wait up to `connect_timeout` for an application server.
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
                ops: OnceLock::new(),
                cluster: OnceLock::new(),
                keys,
                metrics: Arc::new(LinkMetrics::new(&metrics.registry)),
                node: node.to_string(),
                routing: Mutex::new(Routing::default()),
                sessions: DashMap::new(),
                relayed: DashMap::new(),
                next_instance: AtomicU64::new(1),
                next_req: AtomicU64::new(1),
                requests: Arc::new(DashMap::new()),
                // Answer before the engine's own connect timeout closes the session.
                wait_for_app: connect_timeout * 9 / 10,
                max_attachments,
            }),
        }
    }

    /// Give the link its node (once, right after the hub and the cluster started): the
    /// operations layer it acts through, and the cluster it relays over.
    pub fn attach(&self, ops: &Ops) {
        let _ = self.reg.hub.set(Arc::downgrade(&ops.hub));
        let _ = self.reg.ops.set(ops.clone());
        if let Some(c) = &ops.cluster {
            let _ = self.reg.cluster.set(c.clone());
            c.set_apps(self.reg.clone());
        }
    }

    /// Connected application servers (of this node).
    pub fn instances(&self) -> usize {
        self.reg.routing.lock().instances.len()
    }

    /// The dispatch mode for the hub.
    pub fn router(&self) -> Arc<dyn PacketRouter> {
        Arc::new(self.clone())
    }
}

impl Registry {
    fn hub(&self) -> Option<Arc<Hub>> {
        self.hub.get().and_then(Weak::upgrade)
    }

    fn next_req(&self) -> u64 {
        self.next_req.fetch_add(1, Ordering::Relaxed)
    }

    /// This node as the gossip knows it (empty on a single node).
    fn me(&self) -> String {
        self.cluster.get().map(|c| c.me.to_string()).unwrap_or_default()
    }

    fn instance(routing: &Routing, id: u64) -> Option<Arc<Instance>> {
        routing.instances.iter().find(|i| i.id == id && i.alive.load(Ordering::Relaxed)).cloned()
    }

    /// The least loaded live server of the cluster (this node's first on a tie). A remote
    /// server's load is what its node gossiped, or what this node bound to it since, if more.
    fn pick(&self, routing: &Routing) -> Option<Bound> {
        let local = routing
            .instances
            .iter()
            .filter(|i| i.alive.load(Ordering::Relaxed))
            .min_by_key(|i| i.bound.load(Ordering::Relaxed))
            .map(|i| (i.bound.load(Ordering::Relaxed) as u64, Bound::Local(i.clone())));
        let remote = self.cluster.get().and_then(|c| {
            c.peer_apps()
                .into_iter()
                .flat_map(|(node, apps)| {
                    apps.into_iter().map(move |(instance, gossiped)| (node.clone(), instance, gossiped))
                })
                .filter(|(node, instance, _)| !routing.gone.contains(&(node.clone(), *instance)))
                .map(|(node, instance, gossiped)| {
                    let mine = routing.remote_bound.get(&(node.clone(), instance)).copied().unwrap_or(0);
                    (gossiped.max(mine), Bound::Remote { node, instance })
                })
                .min_by_key(|(load, _)| *load)
        });
        match (local, remote) {
            (Some(l), Some(r)) if r.0 < l.0 => Some(r.1),
            (Some(l), _) => Some(l.1),
            (None, r) => r.map(|r| r.1),
        }
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
        match self.pick(&routing) {
            Some(target) => self.bind(&mut routing, &session, &mut session.state.lock(), target),
            None => routing.waiting.push(session.clone()),
        }
        session
    }

    /// Queue `out` for server `bound`, as a message of session `sid`.
    fn deliver(&self, bound: &Bound, sid: &Sid, relay: Relay, out: Out) -> Result<(), (SendError, Out)> {
        match bound {
            Bound::Local(inst) => inst.try_send(out).map_err(|e| match e {
                mpsc::error::TrySendError::Full(o) => (SendError::Saturated, o),
                mpsc::error::TrySendError::Closed(o) => (SendError::Gone, o),
            }),
            Bound::Remote { node, instance } => {
                let Some(c) = self.cluster.get() else { return Err((SendError::Gone, out)) };
                let msg = Msg::ToApp {
                    instance: *instance,
                    sid: sid.to_string(),
                    relay,
                    text: out.text,
                    bins: out.bins,
                };
                match c.send_msg(node, &msg) {
                    true => Ok(()),
                    // The mesh queue is full or the node is gone (the latter re-binds soon).
                    false => {
                        let Msg::ToApp { text, bins, .. } = msg else { unreachable!("built above") };
                        Err((SendError::Saturated, Out { text, bins }))
                    }
                }
            }
        }
    }

    /// Bind `session` to `target` and tell it everything it needs: the session, its connected
    /// sockets (as rebinds), connects still awaiting an answer, then packets held meanwhile.
    fn bind(&self, routing: &mut Routing, session: &LinkSession, state: &mut SessionState, target: Bound) {
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
        match &target {
            Bound::Local(inst) => {
                inst.bound.fetch_add(1, Ordering::Relaxed);
            }
            Bound::Remote { node, instance } => {
                *routing.remote_bound.entry((node.clone(), *instance)).or_default() += 1;
                self.metrics.remote_bound.inc();
            }
        }
        self.metrics.bound_sessions.inc();
        if !sockets.is_empty() {
            self.metrics.rebinds.inc();
        }
        for (i, m) in msgs.into_iter().enumerate() {
            let relay = if i == 0 { Relay::Open } else { Relay::Msg };
            // A fresh binding starts with an empty share of the queue; if even that overflows,
            // the server is hopelessly behind and its link will be torn down by pings.
            if self.deliver(&target, &conn.sid, relay, m).is_err() {
                self.metrics.dropped.with_label_values(&["saturated"]).inc();
            }
        }
        state.bound = Some(target);
    }

    /// Forget `state`'s binding (its server is gone), undoing the counts.
    fn unbind(&self, routing: &mut Routing, state: &mut SessionState) -> Option<Bound> {
        let bound = state.bound.take()?;
        match &bound {
            Bound::Local(inst) => {
                inst.bound.fetch_sub(1, Ordering::Relaxed);
            }
            Bound::Remote { node, instance } => {
                let key = (node.clone(), *instance);
                if let Some(n) = routing.remote_bound.get_mut(&key) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        routing.remote_bound.remove(&key);
                    }
                }
                self.metrics.remote_bound.dec();
            }
        }
        self.metrics.bound_sessions.dec();
        Some(bound)
    }

    /// Queue a message of `session` for its server, or hold it while it has none.
    fn send(&self, session: &LinkSession, out: Out) -> Result<(), SendError> {
        let mut state = session.state.lock();
        if state.closed {
            return Ok(());
        }
        let Some(bound) = state.bound.clone() else {
            hold(&mut state, out, &self.metrics);
            return Ok(());
        };
        match self.deliver(&bound, &session.conn.sid, Relay::Msg, out) {
            Ok(()) => Ok(()),
            Err((SendError::Saturated, _)) => {
                self.metrics.dropped.with_label_values(&["saturated"]).inc();
                Err(SendError::Saturated)
            }
            Err((SendError::Gone, out)) => {
                // The link just died: hold the message for the server we will be re-bound to.
                hold(&mut state, out, &self.metrics);
                Ok(())
            }
        }
    }

    /// Re-bind every session whose server `lost` says is gone (to a live server anywhere, or
    /// to the waiting list).
    fn rebind_where(&self, lost: impl Fn(&Bound) -> bool) -> usize {
        let orphans: Vec<Arc<LinkSession>> = self
            .sessions
            .iter()
            .filter(|e| e.value().state.lock().bound.as_ref().is_some_and(&lost))
            .map(|e| e.value().clone())
            .collect();
        let mut routing = self.routing.lock();
        for session in &orphans {
            self.rebind(&mut routing, session, &lost);
        }
        orphans.len()
    }

    /// Move `session` to another server (or to the waiting list) if `lost` says its server is
    /// gone; checked under the session's lock, so a concurrent re-bind is not undone.
    fn rebind(&self, routing: &mut Routing, session: &Arc<LinkSession>, lost: impl Fn(&Bound) -> bool) {
        let mut state = session.state.lock();
        if !state.bound.as_ref().is_some_and(&lost) {
            return;
        }
        self.unbind(routing, &mut state);
        match self.pick(routing) {
            Some(target) => self.bind(routing, session, &mut state, target),
            None => {
                drop(state);
                routing.waiting.push(session.clone());
            }
        }
    }

    /// Bind every waiting session, if a server is now available anywhere.
    fn bind_waiting(&self) {
        let mut routing = self.routing.lock();
        if routing.waiting.is_empty() {
            return;
        }
        for session in std::mem::take(&mut routing.waiting) {
            match self.pick(&routing) {
                Some(target) => self.bind(&mut routing, &session, &mut session.state.lock(), target),
                None => routing.waiting.push(session),
            }
        }
    }

    /// A new application server: bind every waiting session.
    fn add_instance(&self, inst: Arc<Instance>) {
        {
            let mut routing = self.routing.lock();
            routing.instances.push(inst);
            self.metrics.links.set(routing.instances.len() as i64);
        }
        self.bind_waiting();
    }

    /// An application server went away: re-bind its sessions here to the others (or make them
    /// wait), and tell the nodes whose sessions it served.
    fn remove_instance(&self, inst: &Arc<Instance>) {
        inst.alive.store(false, Ordering::Relaxed);
        {
            let mut routing = self.routing.lock();
            routing.instances.retain(|i| !Arc::ptr_eq(i, inst));
            self.metrics.links.set(routing.instances.len() as i64);
        }
        self.requests.retain(|_, r| match r {
            HubRequest::SsEmit { origin, .. } => origin.upgrade().is_some_and(|o| !Arc::ptr_eq(&o, inst)),
            HubRequest::SsEmitRemote { .. } | HubRequest::Data(_) => true,
        });
        let mut nodes: Vec<NodeId> = Vec::new();
        self.relayed.retain(|_, r| {
            let mine = Arc::ptr_eq(&r.inst, inst);
            if mine && !nodes.contains(&r.node) {
                nodes.push(r.node.clone());
            }
            if mine {
                self.metrics.relayed.dec();
            }
            !mine
        });
        if let Some(c) = self.cluster.get() {
            for node in &nodes {
                c.send_msg(node, &Msg::AppGone { instance: inst.id });
            }
        }
        let n = self.rebind_where(|b| matches!(b, Bound::Local(i) if Arc::ptr_eq(i, inst)));
        tracing::info!(instance = inst.id, name = %inst.name, sessions = n, other_nodes = nodes.len(), "application server left");
    }

    /// The session of `sid` held here, when it is bound to `app`.
    fn session_of(&self, sid: &str, app: &AppRef) -> Option<Arc<LinkSession>> {
        let sid = Sid::parse(sid)?;
        let session = self.sessions.get(&sid)?.clone();
        let bound = session.state.lock().bound.as_ref().is_some_and(|b| b.app_ref() == *app);
        bound.then_some(session)
    }

    /// Send to the server `socket`'s session is bound to.
    fn notify(&self, socket: &Socket, text: String) {
        if let Some(session) = self.sessions.get(&socket.conn.sid).map(|s| s.clone()) {
            let _ = self.send(&session, Out::json(text));
        }
    }

    /// A client CONNECT: the hub's checks, then the application decides.
    fn client_connect(self: &Arc<Self>, hub: &Arc<Hub>, conn: &Arc<Conn>, packet: &Packet<'_>) {
        let auth = match packet.connect_auth() {
            Ok(a) => a.unwrap_or_default(),
            Err(e) => return hub.protocol_error(conn, &e.to_string()),
        };
        if !hub.may_claim(&auth) {
            return self.connect_checked(hub, conn, packet.nsp.to_string(), auth);
        }
        // Recovery from another node's session: claim it first (the client sends nothing else
        // for this namespace before the CONNECT answer).
        let (me, hub, conn, nsp) = (self.clone(), hub.clone(), conn.clone(), packet.nsp.to_string());
        tokio::spawn(async move {
            hub.claim_recovery(&nsp, &auth).await;
            me.connect_checked(&hub, &conn, nsp, auth);
        });
    }

    /// A client CONNECT after any recovery claim: the hub's checks, then the application.
    fn connect_checked(
        &self,
        hub: &Arc<Hub>,
        conn: &Arc<Conn>,
        nsp: String,
        auth: serde_json::Map<String, serde_json::Value>,
    ) {
        let session = self.session(conn);
        if session.state.lock().pending.contains_key(nsp.as_str()) {
            return;
        }
        let Some(prep) = hub.prepare_connect(conn, nsp, auth) else { return };
        let (nsp, id) = (prep.nsp.clone(), prep.id.clone());
        let text = connect_json(conn, &prep);
        {
            let mut state = session.state.lock();
            if state.closed {
                return;
            }
            let bound = state.bound.clone();
            state.pending.insert(nsp.clone(), Pending { prep, rooms: Vec::new(), sent_at: Instant::now() });
            if let Some(bound) = bound {
                if self.deliver(&bound, &conn.sid, Relay::Msg, Out::json(text)).is_err() {
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
            let (label, message) = match state.bound {
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
            PacketType::Connect => Registry::client_connect(reg, hub, conn, packet),
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
        let mut routing = reg.routing.lock();
        let mut state = session.state.lock();
        state.closed = true;
        state.pending.clear();
        state.buffered.clear();
        match reg.unbind(&mut routing, &mut state) {
            Some(bound) => {
                let text =
                    serde_json::json!({ "t": "close", "sid": conn.sid.as_str(), "reason": reason.as_str() });
                let _ = reg.deliver(&bound, &conn.sid, Relay::Close, Out::json(text.to_string()));
            }
            None => {
                drop(state);
                routing.waiting.retain(|s| !Arc::ptr_eq(s, &session));
            }
        }
    }

    fn socket_removed(&self, socket: &Arc<Socket>, reason: &'static str) {
        let text = serde_json::json!({
            "t": "disconnect",
            "sid": socket.conn.sid.as_str(),
            "nsp": &*socket.ns.name,
            "id": socket.id.as_str(),
            "reason": reason,
        });
        self.reg.notify(socket, text.to_string());
    }

    fn rooms_changed(&self, socket: &Socket, join: bool, rooms: &[Room]) {
        if rooms.is_empty() {
            return;
        }
        let field = if join { "join" } else { "leave" };
        let text = serde_json::json!({
            "t": "rooms",
            "sid": socket.conn.sid.as_str(),
            "nsp": &*socket.ns.name,
            "id": socket.id.as_str(),
            field: rooms.iter().map(|r| &**r).collect::<Vec<_>>(),
        });
        self.reg.notify(socket, text.to_string());
    }

    fn binding(&self, conn: &Conn) -> Option<AppBinding> {
        let session = self.reg.sessions.get(&conn.sid)?.clone();
        let state = session.state.lock();
        match state.bound.as_ref()? {
            Bound::Local(i) => Some(AppBinding { node: self.reg.me(), instance: i.id }),
            Bound::Remote { node, instance } => {
                Some(AppBinding { node: node.to_string(), instance: *instance })
            }
        }
    }
}
