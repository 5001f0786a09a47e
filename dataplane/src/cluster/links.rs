//! This node's outbound mesh links, one per peer, and the links of peers the failure detector
//! just declared down, kept for a linger period (half the quorum grace, see `Cluster`).
//!
//! Why linger: a failure detector flaps under load (a peer looks dead for a round or two and is
//! back). Closing its link on the first `Down` dropped every frame meant for it meanwhile — a
//! gap in each recovery stream it logs, which then refuses every replay across the gap. A
//! lingering link keeps taking the frames that every peer must get (the recovery log), in
//! order, and a peer that comes back under the same id and address gets its link back with the
//! queue intact. A peer that stays down has its link closed after the linger, its queue with it.
//! The linger is shorter than the quorum grace: a peer down that long may be fenced, and a
//! fenced node's log restarts — frames queued for it while it was cut off would reach it after
//! the heal and be delivered to clients that already had them.
//!
//! Invariant: a peer has at most one link, live or lingering.

use std::collections::HashMap;
use std::net::SocketAddr;

use super::mesh::Link;
use super::NodeId;

struct Held {
    link: Link,
    addr: SocketAddr,
}

/// The links.
#[derive(Default)]
pub struct Links {
    live: HashMap<NodeId, Held>,
    /// Down peers' links, with when they went down (ms).
    lingering: HashMap<NodeId, (Held, u64)>,
}

impl Links {
    /// Link to `peer` at `addr`: its lingering link when it has one to that address, else a
    /// new one from `open`.
    pub fn up(&mut self, peer: &NodeId, addr: SocketAddr, open: impl FnOnce() -> Link) {
        let held = match self.lingering.remove(peer) {
            Some((held, _)) if held.addr == addr => held,
            _ => Held { link: open(), addr },
        };
        self.live.insert(peer.clone(), held);
    }

    /// `peer` is down at `now`: its link lingers (`moved`: it only changed address, close it).
    pub fn down(&mut self, peer: &NodeId, now: u64, moved: bool) {
        if let Some(held) = self.live.remove(peer) {
            if !moved {
                self.lingering.insert(peer.clone(), (held, now));
            }
        }
    }

    /// The link to `peer`, live or lingering.
    pub fn get(&self, peer: &NodeId) -> Option<&Link> {
        self.live.get(peer).or_else(|| self.lingering.get(peer).map(|(h, _)| h)).map(|h| &h.link)
    }

    /// Peers with a lingering link.
    pub fn lingering(&self) -> impl Iterator<Item = &NodeId> {
        self.lingering.keys()
    }

    /// Peers with a live link.
    pub fn live_peers(&self) -> impl Iterator<Item = &NodeId> {
        self.live.keys()
    }

    /// Close lingering links older than `linger_ms` at `now`.
    pub fn expire(&mut self, now: u64, linger_ms: u64) {
        self.lingering.retain(|_, (_, since)| now.saturating_sub(*since) < linger_ms);
    }

    /// Close every link.
    pub fn clear(&mut self) {
        self.live.clear();
        self.lingering.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::cluster::metrics::ClusterMetrics;
    use crate::cluster::secret::ClusterKeys;

    const LINGER: u64 = 500;

    fn node(name: &str) -> NodeId {
        NodeId { name: Arc::from(name), generation: 1 }
    }

    #[tokio::test]
    async fn a_flapping_peer_gets_its_link_back_and_a_gone_one_is_closed() {
        let metrics = Arc::new(ClusterMetrics::register(&prometheus::Registry::new()));
        let keys = Arc::new(ClusterKeys::derive(Some(b"links-test-secret-of-thirty-two-b"), "t"));
        let opened = std::cell::Cell::new(0);
        let open = |peer: &NodeId, addr| {
            opened.set(opened.get() + 1);
            Link::open(node("me"), keys.clone(), peer.clone(), addr, 4, metrics.clone())
        };
        let (a, b) = (node("a"), node("b"));
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let mut links = Links::default();
        links.up(&a, addr, || open(&a, addr));
        links.up(&b, addr, || open(&b, addr));
        assert_eq!(opened.get(), 2);
        // a looks dead: its link lingers, still takes frames, and comes back as it was.
        links.down(&a, 1_000, false);
        assert!(links.get(&a).is_some());
        assert_eq!(links.lingering().collect::<Vec<_>>(), vec![&a]);
        assert_eq!(links.live_peers().count(), 1);
        links.up(&a, addr, || open(&a, addr));
        assert_eq!(opened.get(), 2, "revived, not reopened");
        assert_eq!(links.lingering().count(), 0);
        // b moved to another address: closed at once, a new link for the new one.
        links.down(&b, 2_000, true);
        assert!(links.get(&b).is_none());
        // a goes for good: closed once the linger is over.
        links.down(&a, 3_000, false);
        links.expire(3_000 + LINGER - 1, LINGER);
        assert!(links.get(&a).is_some());
        links.expire(3_000 + LINGER, LINGER);
        assert!(links.get(&a).is_none());
        // Back at another address after the linger: a new link.
        links.up(&a, "127.0.0.1:10".parse().unwrap(), || open(&a, addr));
        assert_eq!(opened.get(), 3);
    }
}
