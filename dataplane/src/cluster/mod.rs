//! Many hub nodes acting as one hub: gossip membership and room sets (`gossip`, over the
//! `chitchat` crate), a mesh of persistent node-to-node links (`mesh`, `codec`) carrying
//! broadcasts and remote operations, and forwarding of client requests to the node owning
//! their session (`forward`) — so no sticky sessions and no external broker.
//!
//! The pure parts are `membership` (peers, routing decisions) and `codec` (the wire format);
//! this file is the glue: it starts gossip and mesh, implements the `state::Peers` hook that
//! forwards emits, applies what peers send, and offers the remote primitives the operations
//! layer (`crate::ops`) builds its cluster-wide operations from: requests to the nodes a
//! selector routes to (answers within a deadline, and who did not answer), broadcasts with
//! acks, and the server link's relay messages (handed to an `AppMesh`, the link registry).
//!
//! Invariants:
//! - a broadcast is encoded once and sent only to peers whose gossiped room set intersects its
//!   rooms (every peer when it targets a whole namespace; a socket-id room goes to the node its
//!   id names); a broadcast received from a peer is emitted locally only, never re-forwarded;
//! - nothing waits on a peer without a deadline (`request_timeout`), and every send is a
//!   non-blocking push into a bounded per-peer queue;
//! - routing is eventually consistent: a room that gains its first member on a node is
//!   announced to the peers over the mesh by the join itself (so a broadcast the join caused
//!   — its ack reached a client, which asked another server to emit — routes to it) and
//!   confirmed by gossip (≈ one gossip round); a node that asks a peer to join sockets to rooms
//!   routes those rooms to that peer at once; a dead node leaves routing within
//!   ≈ (`PHI_THRESHOLD` + 1) × `gossip_interval`.

pub mod acks;
pub mod codec;
mod forward;

pub mod gossip;
mod links;
pub mod membership;
pub mod mesh;
pub mod metrics;
pub mod noise;
pub mod quorum;
pub mod replicas;
pub mod seal;
pub mod secret;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use socketio_hub_config::HubConfig;
use tokio::sync::{mpsc, oneshot};

pub use codec::{Msg, Op, Relay, Reply, SocketInfo};
pub use forward::Forwarder;
pub use membership::{Membership, NodeId};
pub use metrics::ClusterMetrics;

use crate::engine::Delivery;
use crate::ids::NodeTag;
use crate::state::recovery::{Session, Stamp};
use crate::state::{Args, Hub, Peers, Selector};

/// The server link's side of the mesh (implemented by the link registry): relayed link
/// messages, and the application servers this node publishes.
pub trait AppMesh: Send + Sync + 'static {
    /// A link message from a peer (`ToApp`, `FromApp`, `AppGone`, `Unbound`, `AppEmit`, `AppAck`,
    /// `AppData`).
    fn on_mesh(&self, from: &NodeId, msg: Msg);
    /// Peers went down (their application servers and their sessions with them) or came up.
    fn peers_changed(&self, down: &[NodeId]);
    /// The gossiped summary of this node's application servers (`membership::KEY_APPS`).
    fn summary(&self) -> String;
}

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
    /// The cluster secret could not be loaded.
    #[error(transparent)]
    Secret(#[from] secret::SecretError),
}

enum Waiter {
    Reply(oneshot::Sender<Reply>),
    Acks(mpsc::UnboundedSender<(NodeId, RemoteAck)>),
}

/// What a peer says about a broadcast with acks.
#[derive(Debug)]
pub enum RemoteAck {
    /// The clients it asked (socket ids), sent once, before any of their acks.
    Asked(Vec<String>),
    /// One client's ack.
    Ack(String, Args),
}

/// The remote half of a broadcast with acks: the peers it was sent to and their answers.
/// Dropping it stops listening (late answers are ignored).
pub struct RemoteAcks {
    /// Peers the broadcast was queued for.
    pub peers: Vec<NodeId>,
    /// Their answers, tagged with the peer.
    pub rx: mpsc::UnboundedReceiver<(NodeId, RemoteAck)>,
    waiter: Option<(Arc<Cluster>, u64)>,
}

impl RemoteAcks {
    /// Answers from `peers` arriving on `rx`, registered with no cluster (tests, and
    /// collectors fed by something other than the mesh).
    pub fn detached(peers: Vec<NodeId>, rx: mpsc::UnboundedReceiver<(NodeId, RemoteAck)>) -> Self {
        RemoteAcks { peers, rx, waiter: None }
    }
}

impl Drop for RemoteAcks {
    fn drop(&mut self) {
        if let Some((cluster, id)) = &self.waiter {
            cluster.waiters.lock().remove(id);
        }
    }
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
    /// Peers holding a replica of each connected socket's recovery session.
    pub recovery_replicas: usize,
    /// Whether a node that sees less than half of the members fences itself (`quorum`).
    pub quorum: bool,
    /// How long a failed peer still counts as a member.
    pub quorum_forget: Duration,
    /// How long the quorum must be lost before the node fences (outlasts a detector flap).
    pub quorum_grace: Duration,
    /// How long a down peer's link lingers (`links.rs`): half the grace, at least 500 ms.
    pub link_linger: Duration,
    /// How long a node that sees a majority again waits before it serves (its recovery log
    /// settles first).
    pub rejoin_settle: Duration,
}

impl Settings {
    /// Defaults applied to `config`.
    pub fn from_config(config: &HubConfig) -> Self {
        let c = &config.cluster;
        let quorum_grace =
            (Duration::from_millis(c.gossip_interval_ms.unwrap_or(200)) * 10).max(Duration::from_secs(1));
        Settings {
            gossip_interval: Duration::from_millis(c.gossip_interval_ms.unwrap_or(200)),
            queue_frames: c.mesh_queue_frames.unwrap_or(8192),
            request_timeout: Duration::from_millis(c.request_timeout_ms.unwrap_or(5000)),
            poll_timeout: Duration::from_millis(
                config.engine.ping_interval_ms + config.engine.ping_timeout_ms + 5000,
            ),
            recovery_replicas: config.socketio.recovery.replicas,
            quorum: c.quorum.unwrap_or(true),
            quorum_forget: Duration::from_millis(c.quorum_forget_ms.unwrap_or(30_000)),
            quorum_grace,
            link_linger: (quorum_grace / 2).max(Duration::from_millis(500)),
            rejoin_settle: Duration::from_millis(match config.socketio.recovery.enabled {
                true => crate::state::recovery::SETTLE_MS,
                false => 1000,
            }),
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
    /// Keys derived from the cluster secret (mesh and gossip).
    pub keys: Arc<secret::ClusterKeys>,
    hub: Weak<Hub>,
    membership: RwLock<Membership>,
    links: Mutex<links::Links>,
    waiters: Mutex<HashMap<u64, Waiter>>,
    next_id: AtomicU64,
    apps: std::sync::OnceLock<Arc<dyn AppMesh>>,
    http: forward::HttpClient,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    gossip: Mutex<Option<Arc<chitchat::ChitchatHandle>>>,
    epoch: std::time::Instant,
    placement: replicas::Placement,
    /// The members this node knows, and whether it is fenced for want of a majority of them.
    quorum: Mutex<quorum::Verdict>,
    /// Bumped at every fence: inbound mesh links accepted before it are closed at their next
    /// frame, which is dropped (`mesh::serve_epoch`).
    inbound_epoch: Arc<AtomicU64>,
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
        let cluster_id = c.cluster_id.clone().unwrap_or_else(|| "socketio-hub".into());
        let keys = Arc::new(secret::ClusterKeys::load(c, &cluster_id)?);
        let metrics = Arc::new(ClusterMetrics::register(&hub.metrics.registry));
        metrics.authenticated.set(i64::from(keys.authenticated));
        if !keys.authenticated {
            tracing::warn!(
                "NO CLUSTER SECRET: any process that reaches this node's gossip and mesh ports can join \
                 the cluster, read every broadcast and inject its own. Set cluster.secret_file \
                 (--cluster-secret-file) or SOCKETIO_HUB_CLUSTER_SECRET on every node."
            );
        }
        let cluster = Arc::new(Cluster {
            me: me.clone(),
            tag: hub.engine.tag,
            settings: settings.clone(),
            metrics: metrics.clone(),
            keys: keys.clone(),
            hub: Arc::downgrade(hub),
            membership: RwLock::new(Membership::default()),
            links: Mutex::new(links::Links::default()),
            waiters: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            apps: std::sync::OnceLock::new(),
            http: forward::client(),
            tasks: Mutex::new(Vec::new()),
            gossip: Mutex::new(None),
            epoch: std::time::Instant::now(),
            placement: replicas::Placement::default(),
            quorum: Mutex::new(quorum::Verdict::default()),
            inbound_epoch: Arc::new(AtomicU64::new(0)),
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
        let mut tasks = vec![tokio::spawn(mesh::serve_epoch(
            listener,
            me.clone(),
            keys.clone(),
            metrics.clone(),
            cluster.inbound_epoch.clone(),
            on_frame,
        ))];
        let handle = Arc::new(
            gossip::start(&info, gossip_listen, keys, metrics, c.seeds.clone(), settings.gossip_interval)
                .await?,
        );
        tasks.push(tokio::spawn(gossip::publish(cluster.clone(), handle.clone())));
        tasks.push(tokio::spawn(gossip::watch(cluster.clone(), handle.clone())));
        tasks.push(tokio::spawn(gossip::rejoin_seeds(
            cluster.clone(),
            handle.clone(),
            c.seeds.clone(),
            info.gossip,
        )));
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
        // Links are locked first and held until the new peers' links exist, with the
        // membership: a sender that sees a new peer then finds its link (recovery streams go
        // to every peer, and a frame dropped for want of a link would be a gap in one).
        let mut links = self.links.lock();
        let mut m = self.membership.write();
        let was_ready: HashMap<NodeId, bool> = m.peers().map(|p| (p.id.clone(), p.ready)).collect();
        let changes = m.apply(peers);
        // A Down followed by an Up of the same id is a new mesh address, not a loss.
        let moved: Vec<NodeId> = changes
            .iter()
            .filter_map(|c| match c {
                membership::Change::Up(id, _) => Some(id.clone()),
                membership::Change::Down(_) => None,
            })
            .collect();
        // Peers that went away after gossiping not-ready left (drained); the others failed.
        let mut left = Vec::new();
        for change in &changes {
            let membership::Change::Down(id) = change else { continue };
            let ready = was_ready.get(id).copied().unwrap_or(false);
            if !ready {
                left.push(id.clone());
            }
            if !moved.contains(id) {
                self.metrics.peers_lost.with_label_values(&[if ready { "failed" } else { "left" }]).inc();
            }
        }
        let now = self.now_ms();
        m.expire_hints(now);
        self.metrics.peers.set(m.len() as i64);
        let live: Vec<NodeId> = m.peers().map(|p| p.id.clone()).collect();
        let changed = !changes.is_empty();
        let mut down = Vec::new();
        let mut up = Vec::new();
        for change in changes {
            match change {
                membership::Change::Up(id, addr) => {
                    tracing::info!(peer = %id, %addr, "peer up");
                    links.up(&id, addr, || {
                        mesh::Link::open(
                            self.me.clone(),
                            self.keys.clone(),
                            id.clone(),
                            addr,
                            self.settings.queue_frames,
                            self.metrics.clone(),
                        )
                    });
                    up.push(id);
                }
                membership::Change::Down(id) => {
                    tracing::info!(peer = %id, "peer down");
                    links.down(&id, now, moved.contains(&id));
                    down.push(id);
                }
            }
        }
        drop(m);
        drop(links);
        self.judge_quorum(|q| q.update(&live, &left, now));
        if let Some(apps) = self.apps.get() {
            apps.peers_changed(&down);
        }
        if let (true, Some(hub)) = (changed, self.hub.upgrade()) {
            self.recovery_membership_changed(&hub, &up, &down);
        }
    }

    /// Update the quorum with `change` and fence or unfence the node when its verdict moved.
    fn judge_quorum(&self, change: impl FnOnce(&mut quorum::Quorum)) {
        let now = self.now_ms();
        let mut v = self.quorum.lock();
        change(&mut v.quorum);
        let (seen, members) = v.quorum.counts();
        self.metrics.quorum_members.set(members as i64);
        if !self.settings.quorum {
            return;
        }
        let Some(fence) = v.judge(now, self.settings.quorum_grace.as_millis() as u64) else { return };
        drop(v);
        let Some(hub) = self.hub.upgrade() else { return };
        if fence {
            // Frames still in flight on today's inbound links were sent for the cluster this
            // node is leaving; once cut off, none of them may be applied after the heal.
            self.inbound_epoch.fetch_add(1, Ordering::SeqCst);
            tracing::warn!(seen, members, "fenced: this node sees less than half of its cluster");
            self.metrics.fenced.set(1);
            self.metrics.fences.inc();
            hub.fence();
        } else {
            tracing::info!(seen, members, "quorum regained: serving again once settled");
            self.metrics.fenced.set(0);
            hub.unfence(self.settings.rejoin_settle);
        }
    }

    /// Forget members that failed longer ago than `quorum_forget` (called every publish tick).
    pub(crate) fn tick_quorum(&self) {
        let now = self.now_ms();
        self.links.lock().expire(now, self.settings.link_linger.as_millis() as u64);
        let forget = self.settings.quorum_forget.as_millis() as u64;
        self.judge_quorum(|q| {
            q.expire(now, forget);
        });
    }

    /// Plug in the server link's side of the mesh (link mode; once, at start).
    pub fn set_apps(&self, apps: Arc<dyn AppMesh>) {
        if self.apps.set(apps).is_err() {
            tracing::error!("server link plugged into the cluster twice; keeping the first");
        }
    }

    /// The summary of this node's application servers to gossip (empty without link mode).
    pub(crate) fn apps_summary(&self) -> String {
        self.apps.get().map(|a| a.summary()).unwrap_or_default()
    }

    /// A copy of the current membership (admin, tests).
    pub fn membership(&self) -> Membership {
        self.membership.read().clone()
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

    /// Queue `msg` for `peer` (false when its queue is full or it has no link).
    pub fn send_msg(&self, peer: &NodeId, msg: &Msg) -> bool {
        self.send(peer, codec::encode(msg))
    }

    /// The live peer whose tag is `tag`.
    pub fn peer_by_tag(&self, tag: NodeTag) -> Option<NodeId> {
        self.membership.read().by_tag(tag).map(|p| p.id.clone())
    }

    /// Every live peer.
    pub fn peer_ids(&self) -> Vec<NodeId> {
        self.membership.read().peers().map(|p| p.id.clone()).collect()
    }

    /// The namespaces the live peers gossip having served (the Admin UI's socket list).
    pub fn peer_namespaces(&self) -> Vec<Arc<str>> {
        self.membership.read().peers().flat_map(|p| p.namespaces.iter().cloned()).collect()
    }

    /// Live peers with the application servers they gossip (instance, sessions bound).
    pub fn peer_apps(&self) -> Vec<(NodeId, Vec<(u64, u64)>)> {
        self.membership
            .read()
            .peers()
            .filter(|p| !p.apps.is_empty())
            .map(|p| (p.id.clone(), p.apps.clone()))
            .collect()
    }

    /// Route to `peer` as holding members of `rooms` in `ns` from now (a join this node caused
    /// there), ahead of the peer's own announcement.
    pub fn hint_rooms(&self, peer: &NodeId, ns: &str, rooms: &[String]) {
        let now = self.now_ms();
        self.membership.write().hint(peer, ns, rooms, now);
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

    /// The peers that may hold sockets `sel` selects in `ns`.
    pub fn route(&self, ns: &str, sel: &Selector) -> Vec<NodeId> {
        self.membership.read().route(ns, &sel.rooms)
    }

    fn broadcast_to(&self, peers: &[NodeId], msg: &Msg) -> usize {
        if peers.is_empty() {
            return 0;
        }
        let frame = codec::encode(msg);
        peers.iter().filter(|p| self.send(p, frame.clone())).count()
    }

    /// A fresh request id.
    pub fn fresh_id(&self) -> u64 {
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
                let reply = hub.apply_local(&ns, &sel, &op);
                self.send(from, codec::encode(&Msg::Reply { id, reply }));
            }
            Msg::Reply { id, reply } => {
                if let Some(Waiter::Reply(tx)) = self.waiters.lock().remove(&id) {
                    let _ = tx.send(reply);
                }
            }
            Msg::AckCount { id, sockets } => {
                if let Some(Waiter::Acks(tx)) = self.waiters.lock().get(&id) {
                    let _ = tx.send((from.clone(), RemoteAck::Asked(sockets)));
                }
            }
            Msg::Ack { id, socket, args } => {
                if let Some(Waiter::Acks(tx)) = self.waiters.lock().get(&id) {
                    let _ = tx.send((from.clone(), RemoteAck::Ack(socket, args)));
                }
            }
            Msg::Rooms { ns, added } => {
                let now = self.now_ms();
                self.membership.write().hint(from, &ns, &added, now);
            }
            Msg::Logged { ns, sel, event, args, seq } => {
                self.on_logged(&hub, from, &ns, &sel, &event, &args, seq)
            }
            Msg::RecSave { ns, pid, id, rooms } => self.on_rec_save(&hub, from, &ns, &pid, &id, rooms),
            Msg::RecGone { ns, pid, keep } => self.on_rec_gone(&hub, from, &ns, &pid, keep),
            Msg::StreamAt { ns, seq } => self.on_stream_at(&hub, from, &ns, seq),
            msg @ (Msg::ToApp { .. }
            | Msg::FromApp { .. }
            | Msg::AppGone { .. }
            | Msg::Unbound { .. }
            | Msg::AppEmit { .. }
            | Msg::AppAck { .. }
            | Msg::AppData { .. }) => match self.apps.get() {
                Some(apps) => apps.on_mesh(from, msg),
                None => {
                    self.metrics.mesh_dropped.with_label_values(&["no_link_mode"]).inc();
                }
            },
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
        let (sink, acks) = mpsc::unbounded_channel();
        let result = hub.emit_local(&namespace, sel, event, args, delivery, Some(&sink));
        drop(sink);
        let asked = result.awaiting_ack.iter().map(|s| s.id.to_string()).collect();
        self.send(from, codec::encode(&Msg::AckCount { id, sockets: asked }));
        if result.awaiting_ack.is_empty() {
            return;
        }
        // The same collector as every other emit-with-acks, local part only; each ack goes
        // back to the emitting node as it arrives.
        let collector = acks::Collector::new(Some((result, acks)), None);
        let (me, from, deadline) =
            (self.clone(), from.clone(), tokio::time::Instant::now() + self.settings.request_timeout);
        tokio::spawn(async move {
            collector
                .run(deadline, |event| {
                    if let acks::AckEvent::Ack { socket, args } = event {
                        me.send(&from, codec::encode(&Msg::Ack { id, socket, args }));
                    }
                })
                .await;
        });
    }

    /// Send the message `build(id)` to `peer` now; its `Reply { id }` is awaited with
    /// `PendingCall::wait` (until `request_timeout`). Sending at once keeps the caller's order
    /// on the mesh (a join request, then a broadcast, arrive in that order).
    pub fn start_call(self: &Arc<Self>, peer: &NodeId, build: impl FnOnce(u64) -> Msg) -> PendingCall {
        let id = self.fresh_id();
        let (tx, rx) = oneshot::channel();
        self.waiters.lock().insert(id, Waiter::Reply(tx));
        let sent = self.send(peer, codec::encode(&build(id)));
        PendingCall { cluster: self.clone(), id, rx: sent.then_some(rx) }
    }

    /// Answer a peer's request `id`.
    pub fn reply(&self, peer: &NodeId, id: u64, reply: Reply) {
        self.send(peer, codec::encode(&Msg::Reply { id, reply }));
    }

    /// Send `op` now to every peer that may hold selected sockets (a join is also hinted, so
    /// a broadcast to the joined rooms right after routes to those peers). `StartedOp::finish`
    /// collects the answers.
    pub fn start_all(self: &Arc<Self>, ns: &str, sel: &Selector, op: Op) -> StartedOp {
        let peers = self.route(ns, sel);
        if let Op::Join(rooms) = &op {
            let names: Vec<String> = rooms.iter().map(|r| r.to_string()).collect();
            for p in &peers {
                self.hint_rooms(p, ns, &names);
            }
        }
        let calls = peers
            .into_iter()
            .map(|p| {
                let call = self.start_call(&p, |id| Msg::Request {
                    id,
                    ns: ns.to_string(),
                    sel: sel.clone(),
                    op: op.clone(),
                });
                (p, call)
            })
            .collect();
        StartedOp { calls }
    }
    /// Send a broadcast asking for acks to the peers `sel` routes to; `None` when no peer may
    /// hold a selected socket.
    #[allow(clippy::too_many_arguments)]
    pub fn broadcast_with_acks(
        self: &Arc<Self>,
        ns: &str,
        sel: &Selector,
        event: &str,
        args: &Args,
        delivery: Delivery,
    ) -> Option<RemoteAcks> {
        let peers = self.route(ns, sel);
        if peers.is_empty() {
            return None;
        }
        let id = self.fresh_id();
        let (tx, rx) = mpsc::unbounded_channel();
        self.waiters.lock().insert(id, Waiter::Acks(tx));
        let msg = Msg::Broadcast {
            ns: ns.into(),
            sel: sel.clone(),
            event: event.into(),
            args: args.clone(),
            volatile: delivery == Delivery::Volatile,
            ack: Some(id),
        };
        let frame = codec::encode(&msg);
        let queued: Vec<NodeId> = peers.into_iter().filter(|p| self.send(p, frame.clone())).collect();
        Some(RemoteAcks { peers: queued, rx, waiter: Some((self.clone(), id)) })
    }
}

/// A request sent to a peer, awaiting its reply. Dropping it stops waiting.
pub struct PendingCall {
    cluster: Arc<Cluster>,
    id: u64,
    rx: Option<oneshot::Receiver<Reply>>,
}

impl PendingCall {
    /// The reply, or `None` when the request could not be sent or the peer did not answer
    /// within `request_timeout`.
    pub async fn wait(mut self) -> Option<Reply> {
        let rx = self.rx.take()?;
        let reply =
            tokio::time::timeout(self.cluster.settings.request_timeout, rx).await.ok().and_then(Result::ok);
        if reply.is_none() {
            self.cluster.metrics.remote_timeouts.with_label_values(&["request"]).inc();
        }
        reply
    }
}

impl Drop for PendingCall {
    fn drop(&mut self) {
        self.cluster.waiters.lock().remove(&self.id);
    }
}

/// An operation sent to the peers a selector routes to.
pub struct StartedOp {
    calls: Vec<(NodeId, PendingCall)>,
}

impl StartedOp {
    /// The replies of the peers that answered within `request_timeout`, and the peers that did
    /// not (dead, partitioned or slow) — no caller waits longer than that on any peer.
    pub async fn finish(self) -> (Vec<Reply>, Vec<NodeId>) {
        let (peers, calls): (Vec<NodeId>, Vec<PendingCall>) = self.calls.into_iter().unzip();
        let answers = futures_util::future::join_all(calls.into_iter().map(PendingCall::wait)).await;
        let mut replies = Vec::with_capacity(answers.len());
        let mut missing = Vec::new();
        for (peer, answer) in peers.into_iter().zip(answers) {
            match answer {
                Some(r) => replies.push(r),
                None => missing.push(peer),
            }
        }
        (replies, missing)
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

    fn rooms_created(&self, ns: &str, rooms: Vec<String>) {
        self.announce_rooms(ns, rooms);
    }

    fn forward_logged(&self, ns: &str, sel: &Selector, event: &str, args: &Args, stamp: Stamp) {
        debug_assert_eq!(stamp.tag, self.tag, "this node stamps only its own stream");
        let msg = Msg::Logged {
            ns: ns.to_string(),
            sel: sel.clone(),
            event: event.to_string(),
            args: args.clone(),
            seq: stamp.seq,
        };
        // Every peer, and the ones just declared down whose links linger: a peer that only
        // looked dead for a moment must not get a gap in this stream.
        let mut to = self.peer_ids();
        to.extend(self.links.lock().lingering().cloned());
        self.broadcast_to(&to, &msg);
    }

    fn save_session(&self, ns: &str, pid: &str, session: &Session) {
        self.save_replicas(ns, pid, session);
    }

    fn session_gone(&self, ns: &str, pid: &str, keep: bool) {
        self.drop_replicas(ns, pid, keep);
    }

    fn is_live(&self, tag: NodeTag) -> bool {
        tag == self.tag || self.membership.read().by_tag(tag).is_some()
    }

    fn release_session(&self, ns: &str, pid: &str, origin: NodeTag) {
        self.release(ns, pid, origin);
    }

    fn claim_session(
        self: Arc<Self>,
        ns: String,
        pid: String,
    ) -> crate::state::BoxFut<Option<(Session, u64)>> {
        Box::pin(async move { self.claim(&ns, &pid).await })
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
    // Links before membership: the order `apply_membership` takes them in.
    let linked: std::collections::HashSet<NodeId> = cluster.links.lock().live_peers().cloned().collect();
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
                "apps": p.apps.iter().map(|(i, n)| serde_json::json!({ "instance": i, "sessions": n })).collect::<Vec<_>>(),
                "linked": linked.contains(&p.id),
            })
        })
        .collect();
    serde_json::json!({
        "node": cluster.me.to_string(),
        "tag": membership::tag_text(cluster.tag),
        "authenticated": cluster.keys.authenticated,
        "peers": peers,
    })
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
