//! Replicated connection state recovery over the mesh (see `state::recovery`).
//!
//! - The log: a recovery namespace's logged broadcasts go to every peer as `Logged`, stamped
//!   with the emitter's stream position, and every node logs them (`Hub::emit_stamped`).
//! - Sessions: each connected socket of a recovery namespace is replicated (`RecSave`: id and
//!   rooms, again at every room change) to `replicas` peers chosen by rendezvous hashing of its
//!   recovery id, so replicas spread over the nodes and a join or leave moves only the sessions
//!   that hash to that node; `RecGone` ends a replica (kept for the window when the socket may
//!   come back). When a peer goes, the replicas of its sockets start their window, and every
//!   node re-places its own sockets' replicas.
//! - A client that reconnects to a node that does not hold its session claims it from every
//!   peer (`Op::Claim`, first answer wins; every holder forgets it).
//!
//! Invariant: a socket's replicas are on the peers `placement` names, and nowhere else for
//! long (a peer it moved away from is told `RecGone`); a claim waits at most
//! `request_timeout`.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::stream::{FuturesUnordered, StreamExt};
use parking_lot::Mutex;

use super::codec::{Msg, Reply};
use super::{Cluster, NodeId};
use crate::engine::Delivery;
use crate::ids::{NodeTag, SocketId};
use crate::state::recovery::{Session, Stamp};
use crate::state::{Args, Hub, Op, Selector};

/// A recovery session of this node: (namespace, pid).
type SessionKey = (Arc<str>, String);

/// Where each of this node's recovery sessions is replicated.
#[derive(Default)]
pub struct Placement(Mutex<HashMap<SessionKey, Vec<NodeId>>>);

fn score(pid: &str, node: &NodeId) -> u64 {
    // FNV-1a: every node (and every version) computes the same placement.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in pid.bytes().chain([0]).chain(node.name.bytes()).chain(node.generation.to_le_bytes()) {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The `k` nodes of `peers` with the highest score for `pid`.
pub fn choose(pid: &str, mut peers: Vec<NodeId>, k: usize) -> Vec<NodeId> {
    peers.sort_by_cached_key(|p| std::cmp::Reverse(score(pid, p)));
    peers.truncate(k);
    peers
}

/// The request that claims recovery session `pid` of `ns` from a peer.
fn claim_request(ns: &str, pid: &str, id: u64) -> Msg {
    Msg::Request { id, ns: ns.to_string(), sel: Selector::default(), op: Op::Claim(pid.to_string()) }
}

/// The tag in the ids node `id` mints (and in its recovery stamps).
pub fn tag_of(id: &NodeId) -> NodeTag {
    NodeTag::derive(&id.name, id.generation)
}

impl Cluster {
    /// A logged broadcast from peer `from`: log it and emit it here.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_logged(
        &self,
        hub: &Hub,
        from: &NodeId,
        ns: &str,
        sel: &Selector,
        event: &str,
        args: &Args,
        seq: u64,
    ) {
        if !hub.namespace_allowed(ns) {
            return;
        }
        let Some(namespace) = hub.namespace(ns) else { return };
        if namespace.recovery.is_some() {
            hub.emit_stamped(&namespace, sel, event, args, Stamp { tag: tag_of(from), seq });
        } else {
            // Configured without recovery here (a mixed rollout): still deliver.
            hub.emit_local(&namespace, sel, event, args, Delivery::Reliable, None);
        }
    }

    /// Peer `from` replicates its socket `pid` here.
    pub(super) fn on_rec_save(
        &self,
        hub: &Hub,
        from: &NodeId,
        ns: &str,
        pid: &str,
        id: &str,
        rooms: Vec<String>,
    ) {
        let (Some(id), true) = (SocketId::parse(id), hub.namespace_allowed(ns)) else { return };
        if let Some(rec) = hub.namespace(ns).as_ref().and_then(|n| n.recovery.as_ref()) {
            let session = Session { id, rooms: rooms.into_iter().map(Into::into).collect() };
            if !rec.replicate(pid, session, tag_of(from)) {
                self.metrics.recovery_refused.inc();
            }
        }
    }

    /// Where peer `from`'s stream of `ns` stands.
    pub(super) fn on_stream_at(&self, hub: &Hub, from: &NodeId, ns: &str, seq: u64) {
        if !hub.namespace_allowed(ns) {
            return;
        }
        if let Some(rec) = hub.namespace(ns).as_ref().and_then(|n| n.recovery.as_ref()) {
            rec.with_stream(|stream, now| stream.mark(tag_of(from), seq, now));
        }
    }

    /// Peer `from`'s socket `pid` left it.
    pub(super) fn on_rec_gone(&self, hub: &Hub, from: &NodeId, ns: &str, pid: &str, keep: bool) {
        if let Some(rec) = hub.existing_namespace(ns).as_ref().and_then(|n| n.recovery.as_ref()) {
            rec.replica_gone(pid, keep, tag_of(from));
        }
    }

    /// Membership changed: replicas of the sockets of nodes that went start their window, and
    /// this node's sockets are replicated where the new membership places them.
    pub(super) fn recovery_membership_changed(&self, hub: &Hub, up: &[NodeId], down: &[NodeId]) {
        let mut sockets = Vec::new();
        for ns in hub.namespaces.iter() {
            let Some(rec) = &ns.recovery else { continue };
            // Tell new peers where this node's stream stands, in order with what follows.
            if !up.is_empty() {
                rec.with_stream(|stream, _| {
                    let at = Msg::StreamAt { ns: ns.name.to_string(), seq: stream.own_high() };
                    self.broadcast_to(up, &at);
                });
            }
            for id in down {
                rec.origin_down(tag_of(id));
            }
            for s in ns.sockets.iter() {
                if let Some(pid) = &s.pid {
                    sockets.push((
                        ns.name.clone(),
                        pid.clone(),
                        Session { id: s.id.clone(), rooms: s.room_list() },
                    ));
                }
            }
        }
        for (ns, pid, session) in sockets {
            self.save_replicas(&ns, &pid, &session);
        }
    }

    /// Send socket `pid`'s state to its replicas (and `RecGone` to peers no longer chosen).
    pub(super) fn save_replicas(&self, ns: &str, pid: &str, session: &Session) {
        let target = choose(pid, self.peer_ids(), self.settings.recovery_replicas);
        let old = self.placement.0.lock().insert((Arc::from(ns), pid.to_string()), target.clone());
        let gone = Msg::RecGone { ns: ns.to_string(), pid: pid.to_string(), keep: false };
        for p in old.iter().flatten().filter(|p| !target.contains(p)) {
            self.send_msg(p, &gone);
        }
        let save = Msg::RecSave {
            ns: ns.to_string(),
            pid: pid.to_string(),
            id: session.id.to_string(),
            rooms: session.rooms.iter().map(|r| r.to_string()).collect(),
        };
        self.broadcast_to(&target, &save);
    }

    /// Socket `pid` left this node: tell its replicas.
    pub(super) fn drop_replicas(&self, ns: &str, pid: &str, keep: bool) {
        let key = (Arc::<str>::from(ns), pid.to_string());
        let Some(peers) = self.placement.0.lock().remove(&key) else { return };
        self.broadcast_to(&peers, &Msg::RecGone { ns: ns.to_string(), pid: pid.to_string(), keep });
    }

    /// A client is restored here from this node's replica of `origin`'s socket `pid`: the
    /// claim `origin` gets (it retires its socket), its answer not awaited.
    pub(super) fn release(&self, ns: &str, pid: &str, origin: NodeTag) {
        if let Some(peer) = self.peer_by_tag(origin) {
            self.send_msg(&peer, &claim_request(ns, pid, self.fresh_id()));
        }
    }

    /// Claim recovery session `pid` of `ns` from the peers (a client reconnected here with it):
    /// the first holder's answer, with how long ago the socket disconnected.
    pub async fn claim(self: &Arc<Self>, ns: &str, pid: &str) -> Option<(Session, u64)> {
        let mut calls: FuturesUnordered<_> = self
            .peer_ids()
            .iter()
            .map(|p| self.start_call(p, |id| claim_request(ns, pid, id)).wait())
            .collect();
        while let Some(answer) = calls.next().await {
            if let Some(Reply::Session(Some(c))) = answer {
                let Some(id) = SocketId::parse(&c.id) else { continue };
                self.metrics.recovery_claims.with_label_values(&["claimed"]).inc();
                return Some((
                    Session { id, rooms: c.rooms.into_iter().map(Into::into).collect() },
                    c.age_ms,
                ));
            }
        }
        self.metrics.recovery_claims.with_label_values(&["unknown"]).inc();
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str) -> NodeId {
        NodeId { name: Arc::from(name), generation: 1 }
    }

    #[test]
    fn replicas_spread_and_move_only_when_their_node_goes() {
        let nodes: Vec<NodeId> = ["a", "b", "c", "d"].iter().map(|n| node(n)).collect();
        let mut first = HashMap::new();
        for i in 0..400 {
            let pid = format!("pid{i}");
            let chosen = choose(&pid, nodes.clone(), 1);
            *first.entry(chosen[0].clone()).or_insert(0) += 1;
            // Remove a node that was not chosen: the choice stays.
            let other = nodes.iter().find(|n| **n != chosen[0]).unwrap().clone();
            let fewer: Vec<NodeId> = nodes.iter().filter(|n| **n != other).cloned().collect();
            assert_eq!(choose(&pid, fewer, 1), chosen);
        }
        assert_eq!(first.len(), 4);
        assert!(first.values().all(|n| *n > 50), "spread: {first:?}");
        assert_eq!(choose("p", nodes.clone(), 2).len(), 2);
        assert_eq!(choose("p", nodes[..1].to_vec(), 3), nodes[..1].to_vec());
    }
}
