//! Partition handling as a pure state machine: who the cluster's members are, as this node
//! knows them, and whether this node sees a majority of them.
//!
//! Members are counted by node name, so a restarted node (new generation, same name) takes
//! its place again. A peer that goes away while not ready left (it drained, or never became
//! ready) and stops counting at once; a peer that goes away while ready failed — dead or cut
//! off, which no node can tell apart — and counts as a member for `forget_ms`, after which a
//! node left alone by crashes serves again.
//!
//! Invariants: `held` is true when this node and its live peers are at least half of the
//! members (a tie keeps serving: two nodes cannot tell a partition from a crash, and fencing
//! both would stop the service); `Verdict` fences only after the quorum was lost for a whole
//! grace period (a failure detector flaps: when one node is cut off, the others' heartbeats
//! reach each other by fewer paths and can look late for a round or two), and lifts the fence
//! as soon as the quorum is back.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::NodeId;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Member {
    Live,
    /// Went silent while ready, at this time (ms).
    Failed {
        since: u64,
    },
}

/// The members this node knows and their state.
#[derive(Debug, Default)]
pub struct Quorum {
    members: BTreeMap<Arc<str>, Member>,
}

impl Quorum {
    /// A membership change at `now`: the peers live now, and those that went down since the
    /// previous change while not ready (`left`). Any other member missing from `live` failed.
    pub fn update(&mut self, live: &[NodeId], left: &[NodeId], now: u64) {
        let is_live = |name: &str| live.iter().any(|p| &*p.name == name);
        for p in left {
            if !is_live(&p.name) {
                self.members.remove(&p.name);
            }
        }
        for (name, m) in self.members.iter_mut() {
            if *m == Member::Live && !is_live(name) {
                *m = Member::Failed { since: now };
            }
        }
        for p in live {
            self.members.insert(p.name.clone(), Member::Live);
        }
    }

    /// Forget members that failed `forget_ms` or more before `now`; whether any was.
    pub fn expire(&mut self, now: u64, forget_ms: u64) -> bool {
        let before = self.members.len();
        self.members.retain(|_, m| match m {
            Member::Live => true,
            Member::Failed { since } => now.saturating_sub(*since) < forget_ms,
        });
        self.members.len() != before
    }

    /// (nodes seen, members), this node included in both.
    pub fn counts(&self) -> (usize, usize) {
        let live = self.members.values().filter(|m| **m == Member::Live).count();
        (live + 1, self.members.len() + 1)
    }

    /// Whether this node sees at least half of the members.
    pub fn held(&self) -> bool {
        let (seen, members) = self.counts();
        2 * seen >= members
    }
}

/// The quorum and whether this node is fenced for want of it.
#[derive(Debug, Default)]
pub struct Verdict {
    /// The members.
    pub quorum: Quorum,
    lost_since: Option<u64>,
    fenced: bool,
}

impl Verdict {
    /// Judge at `now`: `Some(fenced)` when the node must be fenced or unfenced.
    pub fn judge(&mut self, now: u64, grace_ms: u64) -> Option<bool> {
        if self.quorum.held() {
            self.lost_since = None;
            return self.fenced.then(|| {
                self.fenced = false;
                false
            });
        }
        let since = *self.lost_since.get_or_insert(now);
        let fence = !self.fenced && now.saturating_sub(since) >= grace_ms;
        fence.then(|| {
            self.fenced = true;
            true
        })
    }

    /// Whether the node is fenced.
    pub fn fenced(&self) -> bool {
        self.fenced
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(name: &str, generation: u64) -> NodeId {
        NodeId { name: Arc::from(name), generation }
    }

    #[test]
    fn a_node_cut_off_from_two_peers_loses_the_quorum_and_gets_it_back() {
        let mut q = Quorum::default();
        assert!(q.held(), "alone from the start: a cluster of one");
        q.update(&[n("b", 1), n("c", 1)], &[], 0);
        assert_eq!(q.counts(), (3, 3));
        q.update(&[], &[], 100);
        assert!(!q.held(), "1 of 3");
        q.update(&[n("b", 1), n("c", 1)], &[], 200);
        assert!(q.held());
    }

    #[test]
    fn the_majority_side_keeps_the_quorum() {
        let mut q = Quorum::default();
        q.update(&[n("b", 1), n("c", 1)], &[], 0);
        q.update(&[n("b", 1)], &[], 100);
        assert_eq!(q.counts(), (2, 3));
        assert!(q.held());
    }

    #[test]
    fn a_tie_keeps_serving() {
        let mut q = Quorum::default();
        q.update(&[n("b", 1)], &[], 0);
        q.update(&[], &[], 100);
        assert_eq!(q.counts(), (1, 2));
        assert!(q.held(), "two nodes cannot tell a partition from a crash");
        let mut q = Quorum::default();
        q.update(&[n("b", 1), n("c", 1), n("d", 1)], &[], 0);
        q.update(&[n("b", 1)], &[], 100);
        assert!(q.held(), "2 of 4");
    }

    #[test]
    fn peers_that_drained_do_not_count() {
        let mut q = Quorum::default();
        q.update(&[n("b", 1), n("c", 1)], &[], 0);
        // A rolling update: b and c drain and leave one after the other; a stays serving.
        q.update(&[n("c", 1)], &[n("b", 1)], 100);
        q.update(&[], &[n("c", 1)], 200);
        assert_eq!(q.counts(), (1, 1));
        assert!(q.held());
    }

    #[test]
    fn a_restarted_peer_takes_its_place_by_name() {
        let mut q = Quorum::default();
        q.update(&[n("b", 1), n("c", 1)], &[], 0);
        q.update(&[n("c", 1)], &[], 100);
        // b comes back as a new generation, under its name.
        q.update(&[n("b", 2), n("c", 1)], &[], 200);
        assert_eq!(q.counts(), (3, 3));
        // And a new generation seen while the old one is reported left still counts.
        q.update(&[n("b", 3), n("c", 1)], &[n("b", 2)], 300);
        assert_eq!(q.counts(), (3, 3));
    }

    #[test]
    fn failed_members_are_forgotten_after_the_window() {
        let mut q = Quorum::default();
        q.update(&[n("b", 1), n("c", 1)], &[], 0);
        q.update(&[n("c", 1)], &[], 1_000);
        q.update(&[], &[], 2_000);
        assert!(!q.held());
        assert!(!q.expire(30_999, 30_000));
        assert!(q.expire(31_000, 30_000), "b forgotten");
        assert_eq!(q.counts(), (1, 2));
        assert!(q.held(), "1 of 2: a tie");
        assert!(q.expire(32_000, 30_000));
        assert_eq!(q.counts(), (1, 1));
    }

    #[test]
    fn the_fence_waits_out_a_flap_and_lifts_at_once() {
        let mut v = Verdict::default();
        v.quorum.update(&[n("b", 1), n("c", 1)], &[], 0);
        assert_eq!(v.judge(0, 1_000), None);
        // b and c look dead for 300 ms: no fence.
        v.quorum.update(&[], &[], 100);
        assert_eq!(v.judge(100, 1_000), None);
        v.quorum.update(&[n("b", 1), n("c", 1)], &[], 400);
        assert_eq!(v.judge(400, 1_000), None);
        // Cut off for good: fenced once the grace period has passed, once.
        v.quorum.update(&[], &[], 500);
        assert_eq!(v.judge(500, 1_000), None, "the grace period starts again");
        assert_eq!(v.judge(1_499, 1_000), None);
        assert_eq!(v.judge(1_500, 1_000), Some(true));
        assert_eq!(v.judge(1_600, 1_000), None);
        assert!(v.fenced());
        v.quorum.update(&[n("b", 1)], &[], 2_000);
        assert_eq!(v.judge(2_000, 1_000), Some(false), "lifted as soon as a majority is seen");
        assert_eq!(v.judge(2_100, 1_000), None);
    }

    #[test]
    fn a_member_missing_from_the_live_set_counts_as_failed() {
        let mut q = Quorum::default();
        q.update(&[n("b", 1), n("c", 1)], &[], 0);
        q.update(&[], &[], 100);
        assert_eq!(q.counts(), (1, 3));
        assert!(!q.expire(100, 30_000));
    }
}
