//! The cluster's Prometheus metrics, registered in the node's registry (same `/metrics`).
//! Labels are fixed sets (direction, reason, kind, result), never peer names or rooms.

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Cluster metrics.
pub struct ClusterMetrics {
    /// Live peers (this node excluded).
    pub peers: IntGauge,
    /// Mesh frames by direction (`in`, `out`).
    pub mesh_messages: IntCounterVec,
    /// Mesh bytes by direction.
    pub mesh_bytes: IntCounterVec,
    /// Mesh frames dropped, by reason (`queue_full`, `no_link`, `write_failed`, `bad_frame`;
    /// `bad_record`: an inbound record that failed to authenticate, which closes the link;
    /// `stale_link`: a frame on an inbound link accepted before this node was fenced).
    pub mesh_dropped: IntCounterVec,
    /// Mesh handshakes refused, by reason (`auth`: another cluster secret; `version`,
    /// `not_mesh`, `malformed`, `identity`, `timeout`, `closed`, `busy`: too many at once).
    pub mesh_refused: IntCounterVec,
    /// Gossip datagrams dropped, by reason (`auth`: another secret or forged; `replay`,
    /// `stale`: outside the clock window; `malformed`, `oversize`, `send_failed`).
    pub gossip_dropped: IntCounterVec,
    /// 1 when the cluster runs with a secret, 0 when anyone may join.
    pub authenticated: IntGauge,
    /// Client requests forwarded to the owning node, by kind (`polling`, `websocket`) and
    /// result (`ok`, `unknown_owner`, `failed`).
    pub forwarded: IntCounterVec,
    /// Remote operations that timed out waiting for a peer, by kind.
    pub remote_timeouts: IntCounterVec,
    /// Recovery sessions claimed from peers for clients that reconnected here, by result
    /// (`claimed`, `unknown`: no peer held it).
    pub recovery_claims: IntCounterVec,
    /// Replicas of peers' recovery sessions refused because `max_sessions` were held.
    pub recovery_refused: IntCounter,
    /// Peers that left the live set, by how: `left` (it had gossiped not-ready first: a drain,
    /// a scale-down, a rollout) or `failed` (it vanished while ready: a crash, a lost node, a
    /// partition). A peer that only changed its mesh address is not counted.
    pub peers_lost: IntCounterVec,
    /// Members of the cluster as this node counts them for its quorum (itself included).
    pub quorum_members: IntGauge,
    /// 1 while this node is fenced (sees less than half of the members), else 0.
    pub fenced: IntGauge,
    /// Times this node was fenced.
    pub fences: IntCounter,
}

impl ClusterMetrics {
    /// Create and register in `r` (the node's registry).
    pub fn register(r: &Registry) -> Self {
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let m = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            // Names are unique constants here, registered once per process.
            r.register(Box::new(m.clone())).expect("metric registered once");
            m
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric");
            r.register(Box::new(g.clone())).expect("metric registered once");
            g
        };
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric");
            r.register(Box::new(c.clone())).expect("metric registered once");
            c
        };
        let peers = gauge("cluster_peers", "Live cluster peers (this node excluded).");
        let authenticated = gauge(
            "cluster_authenticated",
            "1 when mesh and gossip are authenticated by a cluster secret, 0 when anyone may join.",
        );
        let recovery_refused = counter(
            "recovery_replicas_refused_total",
            "Replicas of peers' recovery sessions refused because recovery.max_sessions were held.",
        );
        ClusterMetrics {
            quorum_members: gauge(
                "cluster_quorum_members",
                "Members of the cluster this node counts for its quorum, itself included.",
            ),
            fenced: gauge(
                "cluster_fenced",
                "1 while this node is fenced (cut off from the majority of its cluster), else 0.",
            ),
            fences: counter(
                "cluster_fences_total",
                "Times this node was fenced: it saw less than half of its cluster's members.",
            ),
            authenticated,
            recovery_refused,
            recovery_claims: counter_vec(
                "recovery_claims_total",
                "Recovery sessions claimed from peers for clients that reconnected here, by result.",
                &["result"],
            ),
            mesh_refused: counter_vec(
                "mesh_handshakes_refused_total",
                "Mesh handshakes refused, by reason.",
                &["reason"],
            ),
            gossip_dropped: counter_vec(
                "gossip_datagrams_dropped_total",
                "Gossip datagrams dropped, by reason.",
                &["reason"],
            ),
            peers,
            mesh_messages: counter_vec("mesh_messages_total", "Mesh frames by direction.", &["direction"]),
            mesh_bytes: counter_vec("mesh_bytes_total", "Mesh bytes by direction.", &["direction"]),
            mesh_dropped: counter_vec("mesh_dropped_total", "Mesh frames dropped by reason.", &["reason"]),
            forwarded: counter_vec(
                "forwarded_requests_total",
                "Client requests forwarded to the node owning the session.",
                &["kind", "result"],
            ),
            remote_timeouts: counter_vec(
                "cluster_remote_timeouts_total",
                "Remote operations that timed out waiting for a peer.",
                &["kind"],
            ),
            peers_lost: counter_vec(
                "cluster_peers_lost_total",
                "Peers that left the live set: left (drained first) or failed (vanished while ready).",
                &["how"],
            ),
        }
        .init_series()
    }

    /// Create the series the chart's dashboard and alerts select by label value, at 0.
    fn init_series(self) -> Self {
        for how in ["left", "failed"] {
            self.peers_lost.with_label_values(&[how]);
        }
        for result in ["claimed", "unknown"] {
            self.recovery_claims.with_label_values(&[result]);
        }
        for reason in ["queue_full", "no_link", "write_failed", "bad_frame", "bad_record", "stale_link"] {
            self.mesh_dropped.with_label_values(&[reason]);
        }
        for kind in ["polling", "websocket"] {
            for result in ["ok", "unknown_owner", "failed"] {
                self.forwarded.with_label_values(&[kind, result]);
            }
        }
        for direction in ["in", "out"] {
            self.mesh_messages.with_label_values(&[direction]);
            self.mesh_bytes.with_label_values(&[direction]);
        }
        self
    }
}
