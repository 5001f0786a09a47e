//! Chitchat glue: start the UDP gossip, publish this node's summary (tag, addresses,
//! readiness, load, room set), and turn chitchat's live-node snapshots into `Membership`
//! changes.
//!
//! Invariants: only this module touches chitchat; the room set is published as one key per
//! `namespace/room` with members here (deleted when the room empties), re-read only for
//! namespaces whose `rooms_version` moved; new rooms are also announced over the mesh
//! (`Msg::Rooms`) by the join that created them (`state::Peers::rooms_created`), so peers
//! route to them before the next gossip round; failure detection is chitchat's phi-accrual
//! detector with `phi_threshold = 8`, so a silent peer is declared dead about
//! `8 × gossip_interval` after its last heartbeat, plus up to one gossip round — its rooms
//! and its link leave routing then.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chitchat::transport::UdpTransport;
use chitchat::{spawn_chitchat, ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig};

use super::membership::{self, NodeId, Peer, KEY_APPS, KEY_HTTP, KEY_LOAD, KEY_MESH, KEY_READY, KEY_TAG};
use super::Cluster;
use crate::ids::NodeTag;

/// The phi-accrual threshold: a peer is dead when silent for this many mean heartbeat intervals.
pub const PHI_THRESHOLD: f64 = 8.0;
/// How often the local summary (rooms, load, readiness) is compared with what was published.
pub const PUBLISH_EVERY: Duration = Duration::from_millis(20);

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

/// Start chitchat.
pub async fn start(
    me: &SelfInfo,
    listen: SocketAddr,
    cluster_id: String,
    seeds: Vec<String>,
    interval: Duration,
) -> Result<ChitchatHandle, GossipError> {
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
    spawn_chitchat(config, kv, &UdpTransport)
        .await
        .map_err(|e| GossipError { addr: listen, message: e.to_string() })
}

/// Keep the published summary equal to the node's state, until the node shuts down.
pub async fn publish(cluster: Arc<Cluster>, handle: Arc<ChitchatHandle>) {
    let mut published: HashMap<Arc<str>, (u64, HashSet<Arc<str>>)> = HashMap::new();
    let (mut ready, mut load, mut apps) = (false, u64::MAX, String::new());
    let mut tick = tokio::time::interval(PUBLISH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks: u64 = 0;
    loop {
        tick.tick().await;
        ticks += 1;
        if ticks.is_multiple_of(50) {
            cluster.expire_hints();
        }
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
