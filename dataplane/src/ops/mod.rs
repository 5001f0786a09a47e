//! The cluster-wide operations on sockets — emit, emit with acks, join, leave, disconnect,
//! fetch — each written once, with typed results. The REST API, the server link and the
//! client `hub:*` commands are front doors that translate their input into these calls; none
//! of them talks to the mesh or to another node's sockets by itself.
//!
//! Each operation applies locally (`Hub::apply_local`, `Hub::emit`) and, in a cluster, on the
//! peers the selector routes to (`cluster::Cluster::request_all`, `broadcast_with_acks`).
//!
//! Invariants: no operation waits on a peer longer than the cluster's `request_timeout` (or
//! the caller's ack timeout): results come from the nodes that answered in time, and
//! `missing` names the nodes that did not — a dead or partitioned node never hangs a call;
//! on a single node every operation is local and costs no cluster work.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::cluster::acks::{AckEvent, Collector, Summary};
use crate::cluster::{Cluster, NodeId};
use crate::engine::Delivery;
use crate::ids::Room;
use crate::state::{Args, Hub, Op, OpReply, Selector, SocketInfo};

/// A cluster-wide result: what the nodes that answered in time said, and who did not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Partial<T> {
    /// The combined answer of this node and every peer that answered.
    pub value: T,
    /// Peers that did not answer within the deadline.
    pub missing: Vec<NodeId>,
}

impl<T> Partial<T> {
    /// The missing nodes as text (for JSON answers).
    pub fn missing_names(&self) -> Vec<String> {
        self.missing.iter().map(|n| n.to_string()).collect()
    }
}

/// What a cluster-wide join did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Joined {
    /// Sockets that joined (every room asked).
    pub joined: usize,
    /// Ids of the sockets the room limit refused: each is in none of the rooms it was not
    /// already in.
    pub refused: Vec<String>,
    /// `limits.rooms_per_socket` of the nodes that refused (0 when none did).
    pub limit: usize,
}

/// The node's cluster-wide operations (cheap to clone).
#[derive(Clone)]
pub struct Ops {
    /// This node's Socket.IO state.
    pub hub: Arc<Hub>,
    /// The cluster, when the node has peers.
    pub cluster: Option<Arc<Cluster>>,
}

impl Ops {
    /// The operations of `hub`, reaching `cluster`'s peers when there is one.
    pub fn new(hub: Arc<Hub>, cluster: Option<Arc<Cluster>>) -> Self {
        Ops { hub, cluster }
    }

    /// Emit to the selected sockets of every node (encoded once here, once per peer that
    /// routes). Returns how many sockets of this node it was queued for.
    pub fn emit(&self, ns: &str, sel: &Selector, event: &str, args: &Args, delivery: Delivery) -> usize {
        // With recovery every node logs every reliable broadcast, the emitting node included,
        // whether or not it has sockets of the namespace.
        let logged = self.hub.config.socketio.recovery.enabled
            && delivery == Delivery::Reliable
            && self.hub.namespace_allowed(ns);
        let namespace = match logged {
            true => self.hub.namespace(ns),
            false => self.hub.existing_namespace(ns),
        };
        match namespace {
            // `Hub::emit` forwards to the peers itself (`state::Peers`), then emits here.
            Some(n) => self.hub.emit(&n, sel, event, args, delivery, None).delivered,
            None => {
                // No socket of the namespace here; the peers may have some.
                if let Some(c) = &self.cluster {
                    crate::state::Peers::forward_emit(&**c, ns, sel, event, args, delivery);
                }
                0
            }
        }
    }

    /// Emit to the selected sockets of every node asking for acks (sent now, here and to the
    /// peers); `AckRun::run` collects the answers until every client asked answered or
    /// `timeout` passed.
    pub fn emit_with_acks(
        &self,
        ns: &str,
        sel: &Selector,
        event: &str,
        args: &Args,
        delivery: Delivery,
        timeout: Duration,
    ) -> AckRun {
        let deadline = tokio::time::Instant::now() + timeout;
        let remote =
            self.cluster.as_ref().and_then(|c| c.broadcast_with_acks(ns, sel, event, args, delivery));
        let local = self.hub.existing_namespace(ns).map(|n| {
            let (sink, rx) = mpsc::unbounded_channel();
            let b = self.hub.emit_local(&n, sel, event, args, delivery, Some(&sink));
            // Only the recipients hold the sink now, so the channel closes when all are gone.
            drop(sink);
            (b, rx)
        });
        AckRun { collector: Collector::new(local, remote), deadline, cluster: self.cluster.clone() }
    }

    /// Apply `op` here and send it to the peers now; the future collects their answers.
    fn start(
        &self,
        ns: &str,
        sel: &Selector,
        op: Op,
    ) -> impl Future<Output = Partial<Vec<OpReply>>> + Send + 'static {
        let local = self.hub.apply_local(ns, sel, &op);
        let remote = self.cluster.as_ref().map(|c| c.start_all(ns, sel, op));
        async move {
            let mut value = vec![local];
            let mut missing = Vec::new();
            if let Some(r) = remote {
                let (replies, m) = r.finish().await;
                value.extend(replies);
                missing = m;
            }
            Partial { value, missing }
        }
    }

    fn count(
        &self,
        ns: &str,
        sel: &Selector,
        op: Op,
    ) -> impl Future<Output = Partial<usize>> + Send + 'static {
        let started = self.start(ns, sel, op);
        async move {
            let r = started.await;
            let value = r.value.iter().map(|r| if let OpReply::Count(n) = r { *n as usize } else { 0 }).sum();
            Partial { value, missing: r.missing }
        }
    }

    /// Add the selected sockets of every node to `rooms` (applied here and sent to the peers
    /// before this returns); the future says how many sockets joined and which ones
    /// `limits.rooms_per_socket` refused (each left as it was).
    pub fn join(
        &self,
        ns: &str,
        sel: &Selector,
        rooms: Vec<Room>,
    ) -> impl Future<Output = Partial<Joined>> + Send + 'static {
        let started = self.start(ns, sel, Op::Join(rooms));
        async move {
            let r = started.await;
            let mut value = Joined::default();
            for reply in r.value {
                match reply {
                    // A node that refused nothing answers with a plain count.
                    OpReply::Count(n) => value.joined += n as usize,
                    OpReply::Joined { joined, refused, limit } => {
                        value.joined += joined as usize;
                        value.refused.extend(refused);
                        value.limit = value.limit.max(limit as usize);
                    }
                    _ => {}
                }
            }
            Partial { value, missing: r.missing }
        }
    }

    /// Remove the selected sockets of every node from `rooms`; how many sockets.
    pub fn leave(
        &self,
        ns: &str,
        sel: &Selector,
        rooms: Vec<Room>,
    ) -> impl Future<Output = Partial<usize>> + Send + 'static {
        self.count(ns, sel, Op::Leave(rooms))
    }

    /// Disconnect the selected sockets of every node (with `close`, their sessions).
    pub fn disconnect(
        &self,
        ns: &str,
        sel: &Selector,
        close: bool,
    ) -> impl Future<Output = Partial<usize>> + Send + 'static {
        self.count(ns, sel, Op::Disconnect { close })
    }

    /// Every namespace served on some node: this node's, and those the peers gossip (at most
    /// `cluster::membership::MAX_GOSSIPED_NAMESPACES` each), sorted, without duplicates.
    pub fn namespaces(&self) -> Vec<String> {
        let mut names: std::collections::BTreeSet<String> =
            self.hub.namespaces.iter().map(|e| e.key().to_string()).collect();
        if let Some(c) = &self.cluster {
            names.extend(c.peer_namespaces().iter().map(|n| n.to_string()));
        }
        names.into_iter().collect()
    }

    /// Describe the selected sockets of every node, this node's first (`fetchSockets`).
    pub fn fetch(
        &self,
        ns: &str,
        sel: &Selector,
    ) -> impl Future<Output = Partial<Vec<SocketInfo>>> + Send + 'static {
        let started = self.start(ns, sel, Op::Fetch);
        async move {
            let r = started.await;
            let value = r
                .value
                .into_iter()
                .flat_map(|r| match r {
                    OpReply::Sockets(list) => list,
                    _ => Vec::new(),
                })
                .collect();
            Partial { value, missing: r.missing }
        }
    }
}

/// An emit-with-acks under way (the packet is out); `run` collects the answers.
pub struct AckRun {
    collector: Collector,
    deadline: tokio::time::Instant,
    cluster: Option<Arc<Cluster>>,
}

impl AckRun {
    /// Collect until every client asked answered or the deadline, reporting to `on` as answers
    /// come (`Counted` once, `Ack` per answer).
    pub async fn run(self, on: impl FnMut(AckEvent)) -> Summary {
        let summary = self.collector.run(self.deadline, on).await;
        if !summary.missing.is_empty() {
            if let Some(c) = &self.cluster {
                c.metrics.remote_timeouts.with_label_values(&["acks"]).inc();
            }
        }
        summary
    }
}
