//! Chitchat glue: start the UDP gossip over a sealed transport, publish this node's summary
//! (tag, addresses, readiness, load, room set), and turn chitchat's live-node snapshots into
//! `Membership` changes.
//!
//! The transport (`SealedTransport`) puts every datagram through `seal.rs`. chitchat's
//! `Transport` trait hands over typed envelopes and keeps their wire encoding private, so the
//! transport lets chitchat's own UDP socket do the encoding on loopback: an outgoing envelope
//! is sent by an inner chitchat socket to a loopback tap, sealed, and sent from the public
//! socket; an incoming datagram is opened and handed from the tap to the inner socket, whose
//! answer carries the real sender's address. chitchat's wire format stays chitchat's.
//!
//! Invariants: only this module touches chitchat; only datagrams that opened under the
//! cluster key reach chitchat, and every other one is counted by reason
//! (`gossip_datagrams_dropped_total`); the loopback sockets take datagrams only from each
//! other; the room set is published as one key per
//! `namespace/room` with members here (deleted when the room empties), re-read only for
//! namespaces whose `rooms_version` moved; new rooms are also announced over the mesh
//! (`Msg::Rooms`) by the join that created them (`state::Peers::rooms_created`), so peers
//! route to them before the next gossip round; failure detection is chitchat's phi-accrual
//! detector with `phi_threshold = 8`, so a silent peer is declared dead about
//! `8 × gossip_interval` after its last heartbeat, plus up to one gossip round — its rooms
//! and its link leave routing then. A node that knows no peer yet re-resolves its seed names
//! every second for its first minute (`rejoin_seeds`): chitchat itself resolves them at start and
//! then only every 60 s.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chitchat::transport::{RecvOutcome, SendOutcome, Socket, Transport};
use chitchat::{
    spawn_chitchat, ChitchatConfig, ChitchatEnvelope, ChitchatHandle, ChitchatId, FailureDetectorConfig,
};

use super::membership::{
    self, NodeId, Peer, KEY_APPS, KEY_HTTP, KEY_LOAD, KEY_MESH, KEY_NAMESPACES, KEY_READY, KEY_TAG,
    MAX_GOSSIPED_NAMESPACES,
};
use super::metrics::ClusterMetrics;
use super::seal;
use super::secret::ClusterKeys;
use super::Cluster;
use crate::ids::NodeTag;

/// The phi-accrual threshold: a peer is dead when silent for this many mean heartbeat intervals.
pub const PHI_THRESHOLD: f64 = 8.0;
/// How often the local summary (rooms, load, readiness) is compared with what was published.
pub const PUBLISH_EVERY: Duration = Duration::from_millis(20);
/// How long after start a node that knows no peer keeps resolving its seed names itself.
pub const SEED_RETRY_FOR: Duration = Duration::from_secs(60);
/// How often it does.
pub const SEED_RETRY_EVERY: Duration = Duration::from_secs(1);
/// Longest wait for one seed name's DNS answer.
const SEED_LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// What this node publishes about itself.
pub struct SelfInfo {
    /// Id.
    pub id: NodeId,
    /// Tag.
    pub tag: NodeTag,
    /// Gossip address advertised to peers.
    pub gossip: SocketAddr,
    /// Mesh address advertised.
    pub mesh: SocketAddr,
    /// Client address advertised.
    pub http: SocketAddr,
}

/// Why gossip could not start.
#[derive(Debug, thiserror::Error)]
#[error("gossip on {addr}: {message}")]
pub struct GossipError {
    addr: SocketAddr,
    message: String,
}

/// Start chitchat, sealing its datagrams with `keys` (whose cluster id is chitchat's too).
pub async fn start(
    me: &SelfInfo,
    listen: SocketAddr,
    keys: Arc<ClusterKeys>,
    metrics: Arc<ClusterMetrics>,
    seeds: Vec<String>,
    interval: Duration,
) -> Result<ChitchatHandle, GossipError> {
    let cluster_id = keys.cluster_id.clone();
    let config = ChitchatConfig {
        chitchat_id: ChitchatId::new(me.id.name.to_string(), me.id.generation, me.gossip),
        cluster_id,
        gossip_interval: interval,
        listen_addr: listen,
        seed_nodes: seeds,
        failure_detector_config: FailureDetectorConfig {
            phi_threshold: PHI_THRESHOLD,
            sampling_window_size: 1000,
            max_interval: interval * 10,
            initial_interval: interval,
            // A dead peer's state is kept this long (so a late packet cannot revive it), then freed.
            dead_node_grace_period: Duration::from_secs(60),
        },
        marked_for_deletion_grace_period: Duration::from_secs(600),
        catchup_callback: None,
        extra_liveness_predicate: None,
        protocol_version: chitchat::ProtocolVersion::V0,
    };
    let kv = vec![
        (KEY_TAG.to_string(), membership::tag_text(me.tag)),
        (KEY_MESH.to_string(), me.mesh.to_string()),
        (KEY_HTTP.to_string(), me.http.to_string()),
        (KEY_READY.to_string(), "0".to_string()),
        (KEY_LOAD.to_string(), "0".to_string()),
    ];
    spawn_chitchat(config, kv, &SealedTransport { keys, metrics })
        .await
        .map_err(|e| GossipError { addr: listen, message: e.to_string() })
}

/// How long the inner chitchat socket may take to echo an envelope through loopback. Loopback
/// delivery is synchronous, so this only passes when chitchat refused the bytes.
const LOOPBACK_TIMEOUT: Duration = Duration::from_millis(200);
/// At most one warning per this period for dropped datagrams (they are all counted).
const WARN_EVERY: Duration = Duration::from_secs(10);

/// chitchat's transport with every datagram sealed (`seal.rs`).
struct SealedTransport {
    keys: Arc<ClusterKeys>,
    metrics: Arc<ClusterMetrics>,
}

#[async_trait::async_trait]
impl Transport for SealedTransport {
    // The trait is chitchat's, and so is its `anyhow` result type.
    async fn open(&self, listen: SocketAddr) -> anyhow::Result<Box<dyn Socket>> {
        let public = tokio::net::UdpSocket::bind(listen)
            .await
            .map_err(|e| anyhow::anyhow!("failed to bind to {listen}/UDP for gossip: {e}"))?;
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        let inner = chitchat::transport::UdpSocket::open(loopback).await?;
        let inner_addr = inner.local_addr()?;
        let tap = tokio::net::UdpSocket::bind(loopback).await?;
        let tap_addr = tap.local_addr()?;
        Ok(Box::new(SealedSocket {
            public,
            inner,
            inner_addr,
            tap,
            tap_addr,
            sealer: seal::Sealer::new(&self.keys),
            opener: seal::Opener::new(&self.keys),
            metrics: self.metrics.clone(),
            buf: vec![0u8; seal::MAX_DATAGRAM + 1],
            pending: None,
            last_warn: None,
        }))
    }
}

struct SealedSocket {
    /// The gossip address peers send to.
    public: tokio::net::UdpSocket,
    /// chitchat's own socket on loopback: it encodes and decodes envelopes.
    inner: chitchat::transport::UdpSocket,
    inner_addr: SocketAddr,
    /// Loopback peer of `inner`.
    tap: tokio::net::UdpSocket,
    tap_addr: SocketAddr,
    sealer: seal::Sealer,
    opener: seal::Opener,
    metrics: Arc<ClusterMetrics>,
    buf: Vec<u8>,
    /// An opened datagram handed to `inner` and not yet read back: its sender and size.
    /// Kept across calls so a cancelled `recv` loses nothing and misattributes nothing.
    pending: Option<(SocketAddr, usize)>,
    last_warn: Option<std::time::Instant>,
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl SealedSocket {
    fn dropped(&mut self, reason: seal::Dropped, from: SocketAddr) {
        self.metrics.gossip_dropped.with_label_values(&[reason.label()]).inc();
        if self.last_warn.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
            self.last_warn = Some(std::time::Instant::now());
            tracing::warn!(%from, %reason, "gossip datagram dropped (counted in gossip_datagrams_dropped_total; further drops are not logged for 10 s)");
        }
    }

    /// The bytes chitchat encodes `envelope` into, read back through loopback.
    async fn encode(&mut self, envelope: ChitchatEnvelope) -> anyhow::Result<Vec<u8>> {
        // Anything left from an interrupted earlier call would be mistaken for this envelope.
        while self.tap.try_recv_from(&mut self.buf).is_ok() {}
        self.inner.send(self.tap_addr, envelope).await?;
        tokio::time::timeout(LOOPBACK_TIMEOUT, async {
            loop {
                let (n, from) = self.tap.recv_from(&mut self.buf).await?;
                if from == self.inner_addr {
                    return Ok::<_, std::io::Error>(self.buf[..n].to_vec());
                }
            }
        })
        .await
        .map_err(|_| anyhow::anyhow!("gossip loopback encoding timed out"))?
        .map_err(Into::into)
    }
}

#[async_trait::async_trait]
impl Socket for SealedSocket {
    fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.public.local_addr()?)
    }

    async fn send(&mut self, to: SocketAddr, envelope: ChitchatEnvelope) -> anyhow::Result<SendOutcome> {
        let plain = self.encode(envelope).await?;
        let parts = match self.sealer.seal(&plain, unix_ms()) {
            Ok(parts) => parts,
            Err(reason) => {
                self.metrics.gossip_dropped.with_label_values(&[reason.label()]).inc();
                anyhow::bail!("gossip datagram of {} bytes not sent: {reason}", plain.len());
            }
        };
        let mut num_bytes_sent = 0;
        for part in parts {
            match self.public.send_to(&part, to).await {
                Ok(n) => num_bytes_sent += n,
                Err(e) => {
                    self.metrics.gossip_dropped.with_label_values(&["send_failed"]).inc();
                    anyhow::bail!("failed to send gossip to {to}: {e}");
                }
            }
        }
        Ok(SendOutcome { num_bytes_sent })
    }

    // Cancel-safe: every await either loses nothing (a socket read) or resumes from `pending`.
    async fn recv(&mut self) -> anyhow::Result<RecvOutcome> {
        loop {
            if let Some((from, size)) = self.pending {
                match tokio::time::timeout(LOOPBACK_TIMEOUT, self.inner.recv()).await {
                    Ok(Ok(outcome)) if outcome.from_addr != self.tap_addr => {
                        // Sent straight to the inner socket by a local process: never sealed.
                        self.dropped(seal::Dropped::Auth, outcome.from_addr);
                    }
                    Ok(Ok(mut outcome)) => {
                        self.pending = None;
                        outcome.from_addr = from;
                        outcome.num_bytes_received = size;
                        return Ok(outcome);
                    }
                    Ok(Err(e)) => return Err(e),
                    Err(_) => {
                        // Authenticated, but chitchat could not decode it (it logged why).
                        self.pending = None;
                        self.dropped(seal::Dropped::Malformed, from);
                    }
                }
            }
            let (n, from) = match self.public.recv_from(&mut self.buf).await {
                Ok(x) => x,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionRefused
                    ) =>
                {
                    continue
                }
                Err(e) => return Err(anyhow::anyhow!("fatal gossip recv error: {e}")),
            };
            if n > seal::MAX_DATAGRAM {
                self.dropped(seal::Dropped::Malformed, from);
                continue;
            }
            match self.opener.open(&self.buf[..n], unix_ms()) {
                Ok(Some(plain)) => match self.tap.try_send_to(&plain, self.inner_addr) {
                    Ok(_) => self.pending = Some((from, n)),
                    Err(e) => tracing::debug!(error = %e, "gossip loopback hand-over failed"),
                },
                Ok(None) => {} // first half of a split message
                Err(reason) => self.dropped(reason, from),
            }
        }
    }
}

/// While this node knows no live peer, during its first `SEED_RETRY_FOR`: resolve the seed
/// names every `SEED_RETRY_EVERY` and start a gossip handshake with every address found other
/// than this node's own. Pods of a new StatefulSet start together and their DNS records (the
/// headless Service's) appear one by one, so the single lookup chitchat makes at start often
/// finds only the pod itself, and its next one comes 60 s later: without this the pods stayed
/// apart for up to a minute (measured on a real node: 55 s). Ends at the first live peer;
/// membership then spreads by gossip.
pub async fn rejoin_seeds(
    cluster: Arc<Cluster>,
    handle: Arc<ChitchatHandle>,
    seeds: Vec<String>,
    me: SocketAddr,
) {
    let names: Vec<String> = seeds.into_iter().filter(|s| s.parse::<SocketAddr>().is_err()).collect();
    if names.is_empty() {
        return;
    }
    let deadline = tokio::time::Instant::now() + SEED_RETRY_FOR;
    let mut tick = tokio::time::interval(SEED_RETRY_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while tokio::time::Instant::now() < deadline {
        tick.tick().await;
        if !cluster.membership.read().is_empty() {
            return;
        }
        for name in &names {
            let Ok(Ok(addrs)) =
                tokio::time::timeout(SEED_LOOKUP_TIMEOUT, tokio::net::lookup_host(name.as_str())).await
            else {
                continue;
            };
            for addr in addrs.filter(|a| *a != me) {
                if handle.gossip(addr).is_err() {
                    return; // chitchat has stopped: the node is shutting down
                }
            }
        }
    }
}

/// Keep the published summary equal to the node's state, until the node shuts down.
pub async fn publish(cluster: Arc<Cluster>, handle: Arc<ChitchatHandle>) {
    let mut published: HashMap<Arc<str>, (u64, HashSet<Arc<str>>)> = HashMap::new();
    let (mut ready, mut load, mut apps) = (false, u64::MAX, String::new());
    // Namespaces are never removed from the hub, so their count tells when the list changed.
    let mut namespaces_published = 0;
    let mut tick = tokio::time::interval(PUBLISH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks: u64 = 0;
    loop {
        tick.tick().await;
        ticks += 1;
        if ticks.is_multiple_of(50) {
            cluster.expire_hints();
        }
        cluster.tick_quorum();
        let Some(hub) = cluster.hub.upgrade() else { return };
        let mut sets: Vec<(String, Option<String>)> = Vec::new();
        for entry in hub.namespaces.iter() {
            let ns = entry.value();
            let version = ns.rooms_version.load(Ordering::Relaxed);
            let slot = published.entry(ns.name.clone()).or_insert_with(|| (u64::MAX, HashSet::new()));
            if slot.0 == version {
                continue;
            }
            let now: HashSet<Arc<str>> = ns.room_names().into_iter().collect();
            let (added, removed) = membership::room_diff(&ns.name, &slot.1, &now);
            sets.extend(added.into_iter().map(|k| (k, Some(String::new()))));
            sets.extend(removed.into_iter().map(|k| (k, None)));
            *slot = (version, now);
        }
        if hub.namespaces.len() != namespaces_published {
            namespaces_published = hub.namespaces.len();
            let mut names: Vec<String> = hub.namespaces.iter().map(|e| e.key().to_string()).collect();
            names.sort();
            names.truncate(MAX_GOSSIPED_NAMESPACES);
            // A list of strings always serializes.
            sets.push((KEY_NAMESPACES.to_string(), Some(serde_json::to_string(&names).expect("strings"))));
        }
        let now_ready = hub.ready.load(Ordering::SeqCst);
        if now_ready != ready {
            ready = now_ready;
            sets.push((KEY_READY.to_string(), Some(if ready { "1" } else { "0" }.to_string())));
        }
        let now_load = hub.engine.sessions.len() as u64;
        // Load moves constantly; publish changes above 1% (or any change on a small node).
        if now_load != load && now_load.abs_diff(load).saturating_mul(100) >= load.max(1) {
            load = now_load;
            sets.push((KEY_LOAD.to_string(), Some(load.to_string())));
        }
        // Link mode: the application servers here and their sessions, for balancing.
        let now_apps = cluster.apps_summary();
        if now_apps != apps {
            apps = now_apps;
            sets.push((KEY_APPS.to_string(), Some(apps.clone())));
        }
        if sets.is_empty() {
            continue;
        }
        let chitchat = handle.chitchat();
        let mut guard = chitchat.lock().await;
        let state = guard.self_node_state();
        for (k, v) in sets {
            match v {
                Some(v) => state.set(k, v),
                None => state.delete(&k),
            }
        }
    }
}

/// Follow chitchat's live-node snapshots into the membership (links opened and closed).
pub async fn watch(cluster: Arc<Cluster>, handle: Arc<ChitchatHandle>) {
    let mut rx = handle.chitchat().lock().await.live_nodes_watcher();
    loop {
        let peers: Vec<Peer> = {
            let snapshot = rx.borrow_and_update();
            snapshot
                .iter()
                .filter(|(id, _)| {
                    !(id.node_id.as_ref() == &*cluster.me.name && id.generation_id == cluster.me.generation)
                })
                .filter_map(|(id, state)| {
                    let node = NodeId { name: Arc::from(id.node_id.as_ref()), generation: id.generation_id };
                    Peer::parse(node, state.key_values())
                })
                .collect()
        };
        cluster.apply_membership(peers);
        if rx.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chitchat::{ChitchatMessage, ProtocolVersion};

    fn transport(secret: &[u8]) -> (SealedTransport, Arc<ClusterMetrics>) {
        let metrics = Arc::new(ClusterMetrics::register(&prometheus::Registry::new()));
        let keys = Arc::new(ClusterKeys::derive(Some(secret), "test"));
        (SealedTransport { keys, metrics: metrics.clone() }, metrics)
    }

    fn envelope() -> ChitchatEnvelope {
        ChitchatEnvelope { version: ProtocolVersion::V0, message: ChitchatMessage::BadCluster }
    }

    const SECRET: &[u8] = b"gossip-transport-secret-thirty-two-b";
    const LOCAL: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

    #[tokio::test]
    async fn only_sealed_datagrams_from_the_same_cluster_reach_chitchat() {
        let (t, metrics) = transport(SECRET);
        let mut b = t.open(LOCAL).await.unwrap();
        let b_addr = b.local_addr().unwrap();
        let dropped = |reason: &str| metrics.gossip_dropped.with_label_values(&[reason]).get();

        // A peer of the same cluster: delivered, with the peer's public address as sender.
        let mut a = transport(SECRET).0.open(LOCAL).await.unwrap();
        let sent = a.send(b_addr, envelope()).await.unwrap();
        let got = b.recv().await.unwrap();
        assert_eq!(got.envelope, envelope());
        assert_eq!(got.from_addr, a.local_addr().unwrap());
        assert_eq!(got.num_bytes_received, sent.num_bytes_sent);

        // A rogue with another secret, plain chitchat bytes, and a replay of a captured datagram:
        // none reaches chitchat.
        let mut rogue = transport(b"rogue-gossip-secret-of-thirty-two-b!").0.open(LOCAL).await.unwrap();
        rogue.send(b_addr, envelope()).await.unwrap();
        let mut plain = chitchat::transport::UdpSocket::open(LOCAL).await.unwrap();
        plain.send(b_addr, envelope()).await.unwrap();
        let spy = tokio::net::UdpSocket::bind(LOCAL).await.unwrap();
        let capture = transport(SECRET).0;
        let mut sender = capture.open(LOCAL).await.unwrap();
        sender.send(spy.local_addr().unwrap(), envelope()).await.unwrap();
        let mut datagram = vec![0u8; 2048];
        let (n, _) = spy.recv_from(&mut datagram).await.unwrap();
        spy.send_to(&datagram[..n], b_addr).await.unwrap(); // the first copy is accepted ...
        spy.send_to(&datagram[..n], b_addr).await.unwrap(); // ... the replay is not

        let first = tokio::time::timeout(Duration::from_secs(5), b.recv()).await.unwrap().unwrap();
        assert_eq!(first.from_addr, spy.local_addr().unwrap(), "the captured datagram, once");
        let none = tokio::time::timeout(Duration::from_millis(500), b.recv()).await;
        assert!(none.is_err(), "nothing else reached chitchat: {none:?}");
        assert_eq!(dropped("auth"), 1, "the rogue");
        assert_eq!(dropped("malformed"), 1, "plain chitchat");
        assert_eq!(dropped("replay"), 1, "the replay");
    }
}
