//! One namespace's recovery log on one node: every logged broadcast of the cluster, stamped by
//! the node that emitted it (`Stamp`), in the order this node applied it, and what this node
//! holds of each emitter's stream.
//!
//! Invariants:
//! - each emitter's stream is applied in sequence order (its mesh link is ordered); a stamp at
//!   or below what was applied is a duplicate and is refused;
//! - `low..=high` of an emitter is what this node can replay of it: a gap in the sequence or an
//!   entry evicted by count moves `low` past it (and records when, in `lost_at`), so a replay
//!   that would need a missing packet is refused instead of silently skipping it;
//! - the log holds at most `max_packets` entries and none older than `max_age` ms.

use std::collections::{HashMap, VecDeque};

use super::offset::{Stamp, Vector};
use crate::ids::{NodeTag, Room, SocketId};
use crate::state::namespace::Selector;
use crate::state::packet::Outgoing;

struct Entry {
    stamp: Stamp,
    at: u64,
    target: Selector,
    frames: Outgoing,
}

#[derive(Debug, Clone, Copy)]
struct Emitter {
    /// Lowest sequence number still replayable (everything in `low..=high` is held or was
    /// evicted by age only).
    low: u64,
    /// Highest applied.
    high: u64,
    /// When the last one was applied.
    last_at: u64,
    /// When this node last lost part of the stream (a gap, a count eviction), if ever.
    lost_at: Option<u64>,
    /// Entries of it in the log.
    held: usize,
}

/// Why a replay cannot be complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incomplete {
    /// Packets of this emitter after the client's offset are no longer (or never were) here.
    Missing(NodeTag),
    /// The client's offset names a live emitter this node never heard from, and this node
    /// started too recently to tell that it sent nothing the client lacks.
    Unknown(NodeTag),
}

/// The log of one namespace.
pub struct Stream {
    me: NodeTag,
    next_own: u64,
    emitters: HashMap<u32, Emitter>,
    log: VecDeque<Entry>,
    started: u64,
    max_packets: usize,
    max_age: u64,
}

/// A client that disconnected this long after a node started can be replayed from it even when
/// its offset names an emitter this node never heard from: every live emitter sends its whole
/// stream to every peer once linked (a few gossip rounds after start), so that emitter sent
/// nothing the client lacked since then.
pub const SETTLE_MS: u64 = 3000;

impl Stream {
    /// An empty log for the node `me`, started at `now` (ms).
    pub fn new(me: NodeTag, max_packets: usize, max_age: u64, now: u64) -> Self {
        Stream {
            me,
            next_own: 0,
            emitters: HashMap::new(),
            log: VecDeque::new(),
            started: now,
            max_packets,
            max_age,
        }
    }

    /// Forget every packet and emitter, as a log started at `now` would (the node was fenced:
    /// what it holds has a gap it cannot see). Its own sequence goes on, so its next packets
    /// are never taken for ones its peers applied before.
    pub fn restart(&mut self, now: u64) {
        self.emitters.clear();
        self.log.clear();
        self.started = now;
    }

    /// Count the log as started at `now` (the node rejoined its cluster): for `SETTLE_MS`, a
    /// client naming an emitter this log has not heard from yet is not replayed from here.
    pub fn restart_clock(&mut self, now: u64) {
        self.started = now;
    }

    /// The stamp of the next broadcast emitted on this node.
    pub fn own_stamp(&mut self) -> Stamp {
        self.next_own += 1;
        Stamp { tag: self.me, seq: self.next_own }
    }

    /// Apply `stamp` (this node's or a peer's); `false` when it was already applied.
    pub fn apply(&mut self, stamp: Stamp, now: u64) -> bool {
        let young = now.saturating_sub(self.started) < SETTLE_MS;
        let started = self.started;
        let e = self.emitters.entry(stamp.tag.0).or_insert_with(|| Emitter {
            low: stamp.seq,
            high: stamp.seq.saturating_sub(1),
            last_at: now,
            // A stream first seen past its start lost its beginning: before this log existed
            // (a young log), or in transit.
            lost_at: (stamp.seq > 1).then_some(if young { started } else { now }),
            held: 0,
        });
        if stamp.seq <= e.high {
            return false;
        }
        if stamp.seq > e.high + 1 {
            e.low = stamp.seq;
            e.lost_at = Some(now);
        }
        e.high = stamp.seq;
        e.last_at = now;
        true
    }

    /// This node's last stamp (where its stream stands).
    pub fn own_high(&self) -> u64 {
        self.next_own
    }

    /// Emitter `tag`'s stream stands at `seq` (told when the link to it came up, in order
    /// with its packets): everything after `seq` will arrive here, nothing before is needed
    /// by a client whose offset names `seq` or more.
    pub fn mark(&mut self, tag: NodeTag, seq: u64, now: u64) {
        self.emitters.entry(tag.0).or_insert(Emitter {
            low: seq + 1,
            high: seq,
            last_at: now,
            lost_at: None,
            held: 0,
        });
    }

    /// The offset a packet applied now carries: every emitter this node holds.
    pub fn vector(&self) -> Vector {
        Vector(self.emitters.iter().map(|(t, e)| (*t, e.high)).collect())
    }

    /// Log a packet applied with `stamp`, evicting what the bounds no longer allow.
    pub fn log(&mut self, stamp: Stamp, target: Selector, frames: Outgoing, now: u64) {
        if let Some(e) = self.emitters.get_mut(&stamp.tag.0) {
            e.held += 1;
        }
        self.log.push_back(Entry { stamp, at: now, target, frames });
        self.evict(now);
    }

    fn evict(&mut self, now: u64) {
        while let Some(front) = self.log.front() {
            let by_age = now.saturating_sub(front.at) > self.max_age;
            if !by_age && self.log.len() <= self.max_packets {
                break;
            }
            let gone = self.log.pop_front().expect("front exists");
            if let Some(e) = self.emitters.get_mut(&gone.stamp.tag.0) {
                e.low = e.low.max(gone.stamp.seq + 1);
                e.held = e.held.saturating_sub(1);
                if !by_age {
                    e.lost_at = Some(gone.at);
                }
            }
        }
        // An emitter quiet for a whole window with nothing left in the log leaves the vector;
        // a client that still names it had everything it sent.
        let max_age = self.max_age;
        self.emitters.retain(|_, e| e.held > 0 || now.saturating_sub(e.last_at) <= max_age);
    }

    /// What a socket with `id` in `rooms`, whose last packet carried `offset`, missed — in
    /// the order this node applied it — or why that cannot be told. `disconnected_at` is when
    /// the socket went away (on this node's clock); `live` tells the emitters still in the
    /// cluster (a gone one sent everything it ever will before this node could hear it).
    #[allow(clippy::too_many_arguments)]
    pub fn replay(
        &mut self,
        offset: &Vector,
        id: &SocketId,
        rooms: &[Room],
        disconnected_at: u64,
        now: u64,
        live: impl Fn(NodeTag) -> bool,
    ) -> Result<Vec<Outgoing>, Incomplete> {
        self.evict(now);
        for (tag, e) in &self.emitters {
            let tag = NodeTag(*tag);
            let complete = match offset.get(tag) {
                Some(seen) => seen >= e.high || seen + 1 >= e.low,
                // The client had nothing of this stream: everything held is news to it, and
                // nothing may have been lost within the window.
                None => e.lost_at.is_none_or(|at| now.saturating_sub(at) > self.max_age),
            };
            if !complete {
                tracing::debug!(?tag, low = e.low, high = e.high, lost_at = ?e.lost_at, now, started = self.started, "replay: stream incomplete");
                return Err(Incomplete::Missing(tag));
            }
        }
        for tag in offset.0.keys() {
            let young = disconnected_at < self.started + SETTLE_MS;
            // This node's own stream is complete here by definition.
            let own = *tag == self.me.0;
            if !own && !self.emitters.contains_key(tag) && young && live(NodeTag(*tag)) {
                tracing::debug!(tag, disconnected_at, started = self.started, known = ?self.emitters.keys().collect::<Vec<_>>(), "replay: unknown emitter");
                return Err(Incomplete::Unknown(NodeTag(*tag)));
            }
        }
        Ok(self
            .log
            .iter()
            .filter(|l| offset.get(l.stamp.tag).is_none_or(|seen| l.stamp.seq > seen))
            .filter(|l| l.target.matches(id, rooms))
            .map(|l| l.frames.clone())
            .collect())
    }

    /// Entries held (metrics, tests).
    pub fn len(&self) -> usize {
        self.log.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.log.is_empty()
    }

    /// Bytes of frames held (metrics: what recovery costs in memory).
    pub fn bytes(&self) -> usize {
        self.log.iter().map(|l| l.frames.iter().map(|f| f.cost()).sum::<usize>()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Frame;

    fn frames(s: &str) -> Outgoing {
        let mut o = Outgoing::new();
        o.push(Frame::text(s.as_bytes()));
        o
    }

    const A: NodeTag = NodeTag(0xa);
    const B: NodeTag = NodeTag(0xb);

    fn st(tag: NodeTag, seq: u64) -> Stamp {
        Stamp { tag, seq }
    }

    /// Two nodes apply the same two streams in different interleavings; a client of the first
    /// is replayed from the second with nothing lost and nothing twice.
    #[test]
    fn another_node_replays_exactly_what_was_missed() {
        let (id, all) = (SocketId::new(NodeTag(1)), Selector::default());
        let mut x = Stream::new(NodeTag(0xc), 100, 60_000, 0);
        let mut y = Stream::new(NodeTag(0xd), 100, 60_000, 0);
        let order_x = [st(A, 1), st(B, 1), st(A, 2), st(B, 2), st(A, 3)];
        let order_y = [st(B, 1), st(B, 2), st(A, 1), st(A, 2), st(A, 3)];
        let name = |s: &Stamp| format!("{:?}{}", s.tag, s.seq);
        let mut offset_after_third = Vector::default();
        for (i, s) in order_x.iter().enumerate() {
            assert!(x.apply(*s, 2000));
            x.log(*s, all.clone(), frames(&name(s)), 2000);
            if i == 2 {
                offset_after_third = x.vector();
            }
        }
        for s in &order_y {
            assert!(y.apply(*s, 2000));
            y.log(*s, all.clone(), frames(&name(s)), 2000);
        }
        // The client of x got A1 B1 A2; y replays B2 A3 (in y's order), not B1 or A1/A2.
        let missed = y.replay(&offset_after_third, &id, &[], 2500, 3000, |_| true).unwrap();
        let expect: Vec<Outgoing> = [st(B, 2), st(A, 3)].iter().map(|s| frames(&name(s))).collect();
        assert_eq!(missed, expect);
    }

    #[test]
    fn duplicates_are_refused_and_gaps_make_replay_incomplete() {
        let id = SocketId::new(NodeTag(1));
        let mut x = Stream::new(NodeTag(0xc), 100, 60_000, 0);
        assert!(x.apply(st(A, 1), 5000));
        assert!(!x.apply(st(A, 1), 5000), "applied twice");
        assert!(x.apply(st(A, 3), 5001), "a gap is applied");
        x.log(st(A, 3), Selector::default(), frames("a3"), 5001);
        let seen_1 = Vector([(A.0, 1)].into());
        assert_eq!(x.replay(&seen_1, &id, &[], 5002, 5003, |_| true), Err(Incomplete::Missing(A)));
        let seen_2 = Vector([(A.0, 2)].into());
        assert_eq!(x.replay(&seen_2, &id, &[], 5002, 5003, |_| true).unwrap(), vec![frames("a3")]);
    }

    #[test]
    fn count_eviction_makes_older_offsets_incomplete() {
        let id = SocketId::new(NodeTag(1));
        let mut x = Stream::new(NodeTag(0xc), 2, 60_000, 0);
        for seq in 1..=3 {
            x.apply(st(A, seq), 5000);
            x.log(st(A, seq), Selector::default(), frames(&seq.to_string()), 5000);
        }
        assert_eq!(x.len(), 2);
        assert!(x.replay(&Vector([(A.0, 0)].into()), &id, &[], 5000, 5000, |_| true).is_err());
        assert_eq!(x.replay(&Vector([(A.0, 1)].into()), &id, &[], 5000, 5000, |_| true).unwrap().len(), 2);
        // No offset for A at all: A lost entries within the window, so refuse.
        assert!(x.replay(&Vector::default(), &id, &[], 5000, 5000, |_| true).is_err());
    }

    #[test]
    fn replay_filters_by_rooms_and_unknown_emitters_need_a_settled_log() {
        let id = SocketId::new(NodeTag(1));
        let mut x = Stream::new(NodeTag(0xc), 100, 60_000, 10_000);
        for (seq, room) in [(1, "a"), (2, "b")] {
            x.apply(st(A, seq), 10_000);
            x.log(st(A, seq), Selector::rooms(vec![room.into()]), frames(room), 10_000);
        }
        let offset = Vector([(A.0, 0), (B.0, 7)].into());
        assert_eq!(
            x.replay(&offset, &id, &["b".into()], 10_500, 10_600, |_| true),
            Err(Incomplete::Unknown(B))
        );
        assert_eq!(
            x.replay(&offset, &id, &["b".into()], 14_000, 14_100, |_| true).unwrap(),
            vec![frames("b")]
        );
        // An emitter that left the cluster sent all it ever will: a young log may replay.
        let offset = Vector([(A.0, 0), (B.0, 7)].into());
        assert_eq!(
            x.replay(&offset, &id, &["b".into()], 10_500, 10_600, |t| t != B).unwrap(),
            vec![frames("b")]
        );
    }

    #[test]
    fn a_quiet_emitter_leaves_the_vector_after_a_window() {
        let mut x = Stream::new(NodeTag(0xc), 100, 1000, 0);
        x.apply(st(A, 1), 0);
        x.log(st(A, 1), Selector::default(), frames("a"), 0);
        x.apply(st(B, 1), 5000);
        x.log(st(B, 1), Selector::default(), frames("b"), 5000);
        assert_eq!(x.vector(), Vector([(B.0, 1)].into()));
    }
}
