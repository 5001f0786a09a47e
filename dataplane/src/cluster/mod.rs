//! Many hub nodes acting as one hub: gossip membership and room sets (`gossip`, over the
//! `chitchat` crate), a mesh of persistent node-to-node links (`mesh`, `codec`) carrying
//! broadcasts and remote operations, and forwarding of client requests to the node owning
//! their session (`forward`) — so no sticky sessions and no external broker.
//!
//! The pure parts are `membership` (peers, routing decisions) and `codec` (the wire format);
//! this file is the glue: it starts gossip and mesh, implements the `state::Peers` hook that
//! forwards emits, applies what peers send, and offers the cluster-wide operations the REST API
//! and server links call (`join`, `leave`, `disconnect`, `fetch_sockets`, `emit_with_acks`,
//! `server_side_emit`), which work on a single node too.
//!
//! Invariants:
//! - a broadcast is encoded once and sent only to peers whose gossiped room set intersects its
//!   rooms (every peer when it targets a whole namespace; a socket-id room goes to the node its
//!   id names); a broadcast received from a peer is emitted locally only, never re-forwarded;
//! - nothing waits on a peer without a deadline (`request_timeout`), and every send is a
//!   non-blocking push into a bounded per-peer queue;
//! - routing is eventually consistent: a room that gains its first member on a node is
//!   announced to the peers over the mesh within one publish tick (`gossip::PUBLISH_EVERY`,
//!   20 ms) and confirmed by gossip (≈ one gossip round); a dead node leaves routing within
//!   ≈ (`PHI_THRESHOLD` + 1) × `gossip_interval`.

pub mod codec;
mod forward;

pub mod gossip;
pub mod membership;
pub mod mesh;
pub mod metrics;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use socketio_hub_config::HubConfig;
use tokio::sync::{broadcast, mpsc, oneshot};

pub use codec::{Msg, Op, Reply, SocketInfo};
pub use forward::Forwarder;
pub use membership::{Membership, NodeId};
pub use metrics::ClusterMetrics;

use crate::engine::Delivery;
use crate::ids::{NodeTag, SocketId};
use crate::state::{Args, Hub, Peers, Selector};

/// Why the cluster layer could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The mesh listener could not be bound.
    #[error("mesh listen on {addr}: {source}")]
    Mesh {
        /// Address.
        addr: SocketAddr,
        /// Error.
        source: std::io::Error,
    },
    /// Gossip could not start.
    #[error(transparent)]
    Gossip(#[from] gossip::GossipError),
}

/// An event sent with `serverSideEmit` by an application server linked to another node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerEvent {
    /// Namespace.
    pub ns: String,
    /// Event name.
    pub event: String,
    /// Arguments.
    pub args: Args,
}

/// Acks collected by `emit_with_acks`.
#[derive(Debug, Default)]
pub struct AckResult {
    /// Socket ids of the clients asked for an ack, on every node that answered in time.
    pub asked: Vec<String>,
    /// The acks received before the deadline: socket id and arguments.
    pub acks: Vec<(String, Args)>,
    /// Whether every node answered and every client acked before the deadline.
    pub complete: bool,
}

impl AckResult {
    /// The clients asked that did not answer in time.
    pub fn timed_out(&self) -> Vec<&str> {
        let answered: std::collections::HashSet<&str> = self.acks.iter().map(|(s, _)| s.as_str()).collect();
        self.asked.iter().map(String::as_str).filter(|s| !answered.contains(s)).collect()
    }
}

enum Waiter {
    Reply(oneshot::Sender<Reply>),
    Acks(mpsc::UnboundedSender<AckEvent>),
}

enum AckEvent {
    Asked(Vec<String>),
    Ack(String, Args),
}

/// Settings of the cluster layer, from `ClusterConfig` with defaults applied.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Gossip round period.
    pub gossip_interval: Duration,
    /// Per-peer queue bound, in frames.
    pub queue_frames: usize,
    /// Deadline of remote operations.
    pub request_timeout: Duration,
    /// Deadline of a forwarded long-polling request.
    pub poll_timeout: Duration,
}

impl Settings {
    /// Defaults applied to `config`.
    pub fn from_config(config: &HubConfig) -> Self {
        let c = &config.cluster;
        Settings {
            gossip_interval: Duration::from_millis(c.gossip_interval_ms.unwrap_or(200)),
            queue_frames: c.mesh_queue_frames.unwrap_or(8192),
            request_timeout: Duration::from_millis(c.request_timeout_ms.unwrap_or(5000)),
            poll_timeout: Duration::from_millis(
                config.engine.ping_interval_ms + config.engine.ping_timeout_ms + 5000,
            ),
        }
    }
}

/// The cluster layer of one node.
pub struct Cluster {
    /// This node.
    pub me: NodeId,
    /// This node's tag.
    pub tag: NodeTag,
    /// Settings.
    pub settings: Settings,
    /// Metrics.
    pub metrics: Arc<ClusterMetrics>,
    hub: Weak<Hub>,
    membership: RwLock<Membership>,
    links: Mutex<HashMap<NodeId, mesh::Link>>,
    waiters: Mutex<HashMap<u64, Waiter>>,
    next_id: AtomicU64,
    server_events: broadcast::Sender<ServerEvent>,
    http: forward::HttpClient,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    gossip: Mutex<Option<Arc<chitchat::ChitchatHandle>>>,
    epoch: std::time::Instant,
}

/// Where peers reach this node: the advertised host with a bound port.
fn advertised(config: &HubConfig, bound: SocketAddr) -> SocketAddr {
    let host: Option<IpAddr> = config
        .cluster
        .advertise_host
        .as_deref()
        .and_then(|h| h.parse().ok())
        .or_else(|| (!config.listen.ip().is_unspecified()).then_some(config.listen.ip()))
        .or_else(|| (!bound.ip().is_unspecified()).then_some(bound.ip()))
        .or_else(|| std::env::var("POD_IP").ok().and_then(|ip| ip.parse().ok()));
    SocketAddr::new(host.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)), bound.port())
}

impl Cluster {
    /// Start gossip and the mesh for `hub` (whose clients listen on `client_addr`), and plug
    /// the cluster into the hub. Returns the cluster, which is also the transport's `Forward`.
    pub async fn start(
        config: &HubConfig,
        hub: &Arc<Hub>,
        name: &str,
        generation: u64,
        client_addr: SocketAddr,
    ) -> Result<Arc<Cluster>, ClusterError> {
        let settings = Settings::from_config(config);
        let c = &config.cluster;
        let mesh_listen = c.mesh_listen.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 7947)));
        let gossip_listen = c.gossip_listen.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 7946)));
        let listener = crate::transport::bind(mesh_listen)
            .map_err(|source| ClusterError::Mesh { addr: mesh_listen, source })?;
        let mesh_bound =
            listener.local_addr().map_err(|source| ClusterError::Mesh { addr: mesh_listen, source })?;
        let me = NodeId { name: Arc::from(name), generation };
        let metrics = Arc::new(ClusterMetrics::register(&hub.metrics.registry));
        let cluster = Arc::new(Cluster {
            me: me.clone(),
            tag: hub.engine.tag,
            settings: settings.clone(),
            metrics: metrics.clone(),
            hub: Arc::downgrade(hub),
            membership: RwLock::new(Membership::default()),
            links: Mutex::new(HashMap::new()),
            waiters: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            server_events: broadcast::channel(1024).0,
            http: forward::client(),
            tasks: Mutex::new(Vec::new()),
            gossip: Mutex::new(None),
            epoch: std::time::Instant::now(),
        });
        let info = gossip::SelfInfo {
            id: me.clone(),
            tag: hub.engine.tag,
            gossip: advertised(config, gossip_listen),
            mesh: advertised(config, mesh_bound),
            http: advertised(config, client_addr),
        };
        let weak = Arc::downgrade(&cluster);
        let on_frame = move |from: &NodeId, body: Bytes| {
            if let Some(c) = weak.upgrade() {
                c.on_frame(from, body);
            }
        };
        let mut tasks = vec![tokio::spawn(mesh::serve(listener, me.clone(), metrics, on_frame))];
        let handle = Arc::new(
            gossip::start(
                &info,
                gossip_listen,
                c.cluster_id.clone().unwrap_or_else(|| "socketio-hub".into()),
                c.seeds.clone(),
                settings.gossip_interval,
            )
            .await?,
        );
        tasks.push(tokio::spawn(gossip::publish(cluster.clone(), handle.clone())));
        tasks.push(tokio::spawn(gossip::watch(cluster.clone(), handle.clone())));
        *cluster.tasks.lock() = tasks;
        *cluster.gossip.lock() = Some(handle);
        let peers: Arc<dyn Peers> = cluster.clone();
        if hub.peers.set(peers).is_err() {
            tracing::error!("cluster started twice for one hub; keeping the first");
        }
        tracing::info!(node = %me, gossip = %info.gossip, mesh = %info.mesh, http = %info.http, "cluster started");
        Ok(cluster)
    }

    /// Stop gossip and the mesh (the node is going away).
    pub fn stop(&self) {
        for t in self.tasks.lock().drain(..) {
            t.abort();
        }
        if let Some(g) = self.gossip.lock().take() {
            g.abort();
        }
        self.links.lock().clear();
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn apply_membership(&self, peers: Vec<membership::Peer>) {
        let mut m = self.membership.write();
        let changes = m.apply(peers);
        m.expire_hints(self.now_ms());
        self.metrics.peers.set(m.len() as i64);
        drop(m);
        let mut links = self.links.lock();
        for change in changes {
            match change {
                membership::Change::Up(id, addr) => {
                    tracing::info!(peer = %id, %addr, "peer up");
                    let link = mesh::Link::open(
                        self.me.clone(),
                        id.clone(),
                        addr,
                        self.settings.queue_frames,
                        self.metrics.clone(),
                    );
                    links.insert(id, link);
                }
                membership::Change::Down(id) => {
                    tracing::info!(peer = %id, "peer down");
                    links.remove(&id);
                }
            }
        }
    }

    /// A copy of the current membership (admin, tests).
    pub fn membership(&self) -> Membership {
        self.membership.read().clone()
    }

    /// Subscribe to `serverSideEmit` events arriving from other nodes.
    pub fn server_events(&self) -> broadcast::Receiver<ServerEvent> {
        self.server_events.subscribe()
    }

    /// Tell every peer, over the mesh, which rooms just gained their first member here, so
    /// they route to this node before gossip carries the change.
    fn announce_rooms(&self, ns: &str, added: Vec<String>) {
        let peers: Vec<NodeId> = self.membership.read().peers().map(|p| p.id.clone()).collect();
        self.broadcast_to(&peers, &Msg::Rooms { ns: ns.to_string(), added });
    }

    /// Drop mesh room hints that gossip confirmed or that expired.
    fn expire_hints(&self) {
        let now = self.now_ms();
        self.membership.write().expire_hints(now);
    }

    fn send(&self, peer: &NodeId, frame: Bytes) -> bool {
        match self.links.lock().get(peer) {
            Some(link) => match link.send(frame) {
                mesh::Queued::Yes => true,
                mesh::Queued::Full => {
                    self.metrics.mesh_dropped.with_label_values(&["queue_full"]).inc();
                    false
                }
            },
            None => {
                self.metrics.mesh_dropped.with_label_values(&["no_link"]).inc();
                false
            }
        }
    }

    fn route(&self, ns: &str, sel: &Selector) -> Vec<NodeId> {
        self.membership.read().route(ns, &sel.rooms)
    }

    fn broadcast_to(&self, peers: &[NodeId], msg: &Msg) -> usize {
        if peers.is_empty() {
            return 0;
        }
        let frame = codec::encode(msg);
        peers.iter().filter(|p| self.send(p, frame.clone())).count()
    }

    fn fresh_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// A frame from a peer, in the order that peer sent it.
    fn on_frame(self: &Arc<Self>, from: &NodeId, body: Bytes) {
        let msg = match codec::decode(&body) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(peer = %from, error = %e, "bad mesh frame");
                self.metrics.mesh_dropped.with_label_values(&["bad_frame"]).inc();
                return;
            }
        };
        let Some(hub) = self.hub.upgrade() else { return };
        match msg {
            Msg::Broadcast { ns, sel, event, args, volatile, ack } => {
                let delivery = if volatile { Delivery::Volatile } else { Delivery::Reliable };
                self.local_broadcast(&hub, from, &ns, &sel, &event, &args, delivery, ack);
            }
            Msg::Request { id, ns, sel, op } => {
                let reply = local_op(&hub, &ns, &sel, &op);
                self.send(from, codec::encode(&Msg::Reply { id, reply }));
            }
            Msg::Reply { id, reply } => {
                if let Some(Waiter::Reply(tx)) = self.waiters.lock().remove(&id) {
                    let _ = tx.send(reply);
                }
            }
            Msg::AckCount { id, sockets } => {
                if let Some(Waiter::Acks(tx)) = self.waiters.lock().get(&id) {
                    let _ = tx.send(AckEvent::Asked(sockets));
                }
            }
            Msg::Ack { id, socket, args } => {
                if let Some(Waiter::Acks(tx)) = self.waiters.lock().get(&id) {
                    let _ = tx.send(AckEvent::Ack(socket, args));
                }
            }
            Msg::Rooms { ns, added } => {
                let now = self.now_ms();
                self.membership.write().hint(from, &ns, &added, now);
            }
            Msg::ServerEmit { ns, event, args } => {
                let _ = self.server_events.send(ServerEvent { ns, event, args });
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn local_broadcast(
        self: &Arc<Self>,
        hub: &Arc<Hub>,
        from: &NodeId,
        ns: &str,
        sel: &Selector,
        event: &str,
        args: &Args,
        delivery: Delivery,
        ack: Option<u64>,
    ) {
        let Some(namespace) = hub.existing_namespace(ns) else {
            if let Some(id) = ack {
                self.send(from, codec::encode(&Msg::AckCount { id, sockets: Vec::new() }));
            }
            return;
        };
        let Some(id) = ack else {
            hub.emit_local(&namespace, sel, event, args, delivery, None);
            return;
        };
        let (sink, mut acks) = mpsc::unbounded_channel();
        let result = hub.emit_local(&namespace, sel, event, args, delivery, Some(&sink));
        drop(sink);
        let expected = result.awaiting_ack.len();
        let asked = result.awaiting_ack.iter().map(|s| s.id.to_string()).collect();
        self.send(from, codec::encode(&Msg::AckCount { id, sockets: asked }));
        if expected == 0 {
            return;
        }
        let (me, from, timeout) = (self.clone(), from.clone(), self.settings.request_timeout);
        let ack_id = result.ack_id;
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + timeout;
            let mut got = 0;
            while got < expected {
                match tokio::time::timeout_at(deadline, acks.recv()).await {
                    Ok(Some((socket, args))) => {
                        got += 1;
                        me.send(&from, codec::encode(&Msg::Ack { id, socket: socket.to_string(), args }));
                    }
                    _ => break,
                }
            }
            if let Some(ack_id) = ack_id {
                for s in &result.awaiting_ack {
                    s.forget_ack(ack_id);
                }
            }
        });
    }

    async fn request(&self, peer: &NodeId, ns: &str, sel: &Selector, op: &Op) -> Option<Reply> {
        let id = self.fresh_id();
        let (tx, rx) = oneshot::channel();
        self.waiters.lock().insert(id, Waiter::Reply(tx));
        let msg = Msg::Request { id, ns: ns.to_string(), sel: sel.clone(), op: op.clone() };
        let sent = self.send(peer, codec::encode(&msg));
        let reply = if sent {
            tokio::time::timeout(self.settings.request_timeout, rx).await.ok().and_then(Result::ok)
        } else {
            None
        };
        if reply.is_none() {
            self.waiters.lock().remove(&id);
            if sent {
                self.metrics.remote_timeouts.with_label_values(&["request"]).inc();
            }
        }
        reply
    }

    /// Apply `op` on every peer that may hold selected sockets; replies of peers that answered
    /// in time (a dead or slow peer is skipped after `request_timeout`).
    async fn remote(&self, ns: &str, sel: &Selector, op: Op) -> Vec<Reply> {
        let peers = self.route(ns, sel);
        let calls = peers.iter().map(|p| self.request(p, ns, sel, &op));
        futures_util::future::join_all(calls).await.into_iter().flatten().collect()
    }
}

impl Peers for Cluster {
    fn forward_emit(&self, ns: &str, sel: &Selector, event: &str, args: &Args, delivery: Delivery) {
        let peers = self.route(ns, sel);
        if peers.is_empty() {
            return;
        }
        let msg = Msg::Broadcast {
            ns: ns.to_string(),
            sel: sel.clone(),
            event: event.to_string(),
            args: args.clone(),
            volatile: delivery == Delivery::Volatile,
            ack: None,
        };
        self.broadcast_to(&peers, &msg);
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// The cluster of `hub`, when it has one.
pub fn of(hub: &Hub) -> Option<&Cluster> {
    hub.peers.get().and_then(|p| p.as_any().downcast_ref::<Cluster>())
}

/// Apply an operation to this node's sockets.
pub fn local_op(hub: &Arc<Hub>, ns: &str, sel: &Selector, op: &Op) -> Reply {
    let Some(namespace) = hub.existing_namespace(ns) else {
        return match op {
            Op::Fetch => Reply::Sockets(Vec::new()),
            _ => Reply::Count(0),
        };
    };
    let mut sockets = Vec::new();
    namespace.select(sel, |s| sockets.push(s.clone()));
    match op {
        Op::Join(rooms) => {
            for s in &sockets {
                namespace.join(s, rooms);
            }
            Reply::Count(sockets.len() as u32)
        }
        Op::Leave(rooms) => {
            for s in &sockets {
                namespace.leave(s, rooms);
            }
            Reply::Count(sockets.len() as u32)
        }
        Op::Disconnect { close } => {
            for s in &sockets {
                hub.disconnect_socket(s, *close);
            }
            Reply::Count(sockets.len() as u32)
        }
        Op::Fetch => Reply::Sockets(
            sockets
                .iter()
                .map(|s| SocketInfo {
                    id: s.id.to_string(),
                    namespace: ns.to_string(),
                    rooms: s.rooms(),
                    handshake: s.handshake_json().to_string(),
                    recovered: s.recovered,
                })
                .collect(),
        ),
    }
}

fn count(replies: &[Reply]) -> usize {
    replies.iter().map(|r| if let Reply::Count(n) = r { *n as usize } else { 0 }).sum()
}

async fn everywhere(hub: &Arc<Hub>, ns: &str, sel: &Selector, op: Op) -> Vec<Reply> {
    let mut replies = vec![local_op(hub, ns, sel, &op)];
    if let Some(c) = of(hub) {
        replies.extend(c.remote(ns, sel, op).await);
    }
    replies
}

/// Add the selected sockets of every node to `rooms`; returns how many sockets.
pub async fn join(hub: &Arc<Hub>, ns: &str, sel: &Selector, rooms: Vec<crate::ids::Room>) -> usize {
    count(&everywhere(hub, ns, sel, Op::Join(rooms)).await)
}

/// Remove the selected sockets of every node from `rooms`; returns how many sockets.
pub async fn leave(hub: &Arc<Hub>, ns: &str, sel: &Selector, rooms: Vec<crate::ids::Room>) -> usize {
    count(&everywhere(hub, ns, sel, Op::Leave(rooms)).await)
}

/// Disconnect the selected sockets of every node (with `close`, their sessions); returns how
/// many sockets.
pub async fn disconnect(hub: &Arc<Hub>, ns: &str, sel: &Selector, close: bool) -> usize {
    count(&everywhere(hub, ns, sel, Op::Disconnect { close }).await)
}

/// Describe the selected sockets of every node (`fetchSockets`).
pub async fn fetch_sockets(hub: &Arc<Hub>, ns: &str, sel: &Selector) -> Vec<SocketInfo> {
    everywhere(hub, ns, sel, Op::Fetch)
        .await
        .into_iter()
        .flat_map(|r| match r {
            Reply::Sockets(list) => list,
            Reply::Count(_) => Vec::new(),
        })
        .collect()
}

/// `serverSideEmit`: deliver an event to the application servers linked to the other nodes
/// (they subscribe with `Cluster::server_events`). Returns how many peers it was queued for.
pub fn server_side_emit(hub: &Hub, ns: &str, event: &str, args: &Args) -> usize {
    let Some(c) = of(hub) else { return 0 };
    let peers: Vec<NodeId> = c.membership.read().peers().map(|p| p.id.clone()).collect();
    c.broadcast_to(&peers, &Msg::ServerEmit { ns: ns.into(), event: event.into(), args: args.clone() })
}

/// Emit to the selected sockets of every node and collect their acks until every client
/// asked has answered or `timeout` passed. A peer that does not say whom it asked in time
/// counts as no recipients (its late acks are ignored).
pub async fn emit_with_acks(
    hub: &Arc<Hub>,
    ns: &str,
    sel: &Selector,
    event: &str,
    args: &Args,
    delivery: Delivery,
    timeout: Duration,
) -> AckResult {
    let deadline = tokio::time::Instant::now() + timeout;
    let (tx, mut rx) = mpsc::unbounded_channel::<AckEvent>();
    let mut peers_left = 0usize;
    let mut request: Option<(&Cluster, u64)> = None;
    if let Some(c) = of(hub) {
        let peers = c.route(ns, sel);
        if !peers.is_empty() {
            let id = c.fresh_id();
            c.waiters.lock().insert(id, Waiter::Acks(tx.clone()));
            let msg = Msg::Broadcast {
                ns: ns.into(),
                sel: sel.clone(),
                event: event.into(),
                args: args.clone(),
                volatile: delivery == Delivery::Volatile,
                ack: Some(id),
            };
            peers_left = c.broadcast_to(&peers, &msg);
            request = Some((c, id));
        }
    }
    drop(tx);
    // Local sockets answer into their own channel.
    let (local_tx, mut local_rx) = mpsc::unbounded_channel::<(SocketId, Args)>();
    let local =
        hub.existing_namespace(ns).map(|n| hub.emit_local(&n, sel, event, args, delivery, Some(&local_tx)));
    drop(local_tx);
    let mut out = AckResult::default();
    if let Some(b) = &local {
        out.asked.extend(b.awaiting_ack.iter().map(|s| s.id.to_string()));
    }
    let (mut local_open, mut remote_open) = (!out.asked.is_empty(), request.is_some());
    loop {
        if peers_left == 0 && out.acks.len() >= out.asked.len() {
            out.complete = true;
            break;
        }
        if !local_open && !remote_open {
            break;
        }
        tokio::select! {
            a = local_rx.recv(), if local_open => match a {
                Some((socket, args)) => out.acks.push((socket.to_string(), args)),
                None => local_open = false,
            },
            e = rx.recv(), if remote_open => match e {
                Some(AckEvent::Asked(sockets)) => {
                    peers_left = peers_left.saturating_sub(1);
                    out.asked.extend(sockets);
                }
                Some(AckEvent::Ack(socket, args)) => out.acks.push((socket, args)),
                None => remote_open = false,
            },
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    if let Some((c, id)) = request {
        c.waiters.lock().remove(&id);
        if !out.complete {
            c.metrics.remote_timeouts.with_label_values(&["acks"]).inc();
        }
    }
    if let Some(b) = local {
        if let Some(id) = b.ack_id {
            for s in &b.awaiting_ack {
                s.forget_ack(id);
            }
        }
    }
    out
}

/// Forward an emit to the peers only: for callers on a node where the namespace has no
/// sockets (so `Hub::emit`, which needs the local namespace, is not called). No-op alone.
pub fn forward_emit(hub: &Hub, ns: &str, sel: &Selector, event: &str, args: &Args, delivery: Delivery) {
    if let Some(c) = of(hub) {
        c.forward_emit(ns, sel, event, args, delivery);
    }
}

/// Which node owns `sid`, for tests and the admin view: `None` when it is this node.
pub fn owner_http(cluster: &Cluster, sid: &crate::ids::Sid) -> Option<Option<SocketAddr>> {
    if sid.is_owned_by(cluster.tag) {
        return None;
    }
    let m = cluster.membership.read();
    let http = m.peers().find(|p| sid.is_owned_by(p.tag)).and_then(|p| p.http);
    Some(http)
}

/// The `/cluster` admin view: this node and the live peers with their room sets.
pub fn admin_view(cluster: &Cluster) -> serde_json::Value {
    let m = cluster.membership.read();
    let peers: Vec<serde_json::Value> = m
        .peers()
        .map(|p| {
            let rooms: HashMap<&str, Vec<&str>> =
                p.rooms.iter().map(|(ns, set)| (&**ns, set.iter().map(|r| &**r).collect())).collect();
            serde_json::json!({
                "node": p.id.to_string(),
                "tag": membership::tag_text(p.tag),
                "mesh": p.mesh.to_string(),
                "http": p.http.map(|a| a.to_string()),
                "ready": p.ready,
                "load": p.load,
                "rooms": rooms,
                "linked": cluster.links.lock().contains_key(&p.id),
            })
        })
        .collect();
    serde_json::json!({ "node": cluster.me.to_string(), "tag": membership::tag_text(cluster.tag), "peers": peers })
}

/// The `/cluster` admin route (404 on a single node).
pub fn admin_route(
    cluster: Option<Arc<Cluster>>,
) -> impl warp::Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone + Send + Sync + 'static
{
    use warp::{Filter, Reply};
    warp::path!("cluster").and(warp::get()).and_then(move || {
        let cluster = cluster.clone();
        async move {
            match cluster {
                Some(c) => Ok(warp::reply::json(&admin_view(&c)).into_response()),
                None => Err(warp::reject::not_found()),
            }
        }
    })
}
