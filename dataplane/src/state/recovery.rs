//! Connection state recovery: a bounded log of broadcast packets with offsets, and the rooms
//! of recently disconnected sockets, so a client that reconnects within the window gets its
//! id, rooms and missed packets back (`socket.recovered` on the client).
//!
//! Invariants: the log holds at most `max_packets` entries and nothing older than
//! `max_age_ms`; saved sessions expire after `max_age_ms`; a replay returns packets in
//! offset order and only those the socket would have received.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use super::namespace::Selector;
use super::packet::Outgoing;
use crate::ids::{Room, SocketId};

struct Logged {
    offset: u64,
    at: u64,
    target: Selector,
    frames: Outgoing,
}

struct Saved {
    id: SocketId,
    rooms: Vec<Room>,
    at: u64,
}

/// What a successful recovery gives back.
pub struct Restored {
    /// The socket's previous id.
    pub id: SocketId,
    /// Its rooms.
    pub rooms: Vec<Room>,
    /// Packets it missed, in order.
    pub missed: Vec<Outgoing>,
}

/// Why a recovery attempt restored nothing (a metric label each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Miss {
    /// No saved session under that id here: never disconnected from this node (a client that
    /// reconnects to another node of a cluster lands here), already restored, or evicted.
    Unknown,
    /// Saved, but longer ago than `max_disconnection_ms`.
    Expired,
    /// The client's offset is not one this hub hands out.
    BadOffset,
    /// The log no longer reaches back to the client's offset (more than `max_buffered_packets`
    /// broadcasts since): replaying would skip packets.
    Truncated,
}

impl Miss {
    /// Every reason, for metrics that start each series at 0.
    pub const ALL: [Miss; 4] = [Miss::Unknown, Miss::Expired, Miss::BadOffset, Miss::Truncated];

    /// Low-cardinality metric label.
    pub fn label(self) -> &'static str {
        match self {
            Miss::Unknown => "unknown",
            Miss::Expired => "expired",
            Miss::BadOffset => "bad_offset",
            Miss::Truncated => "truncated",
        }
    }
}

/// Recovery state of one namespace.
pub struct Recovery {
    max_age_ms: u64,
    max_packets: usize,
    next: AtomicU64,
    log: Mutex<VecDeque<Logged>>,
    saved: Mutex<HashMap<String, Saved>>,
    clock: tokio::time::Instant,
}

impl Recovery {
    /// Keep packets and sessions for `max_age_ms`, at most `max_packets` packets.
    pub fn new(max_age_ms: u64, max_packets: usize) -> Self {
        Recovery {
            max_age_ms,
            max_packets,
            next: AtomicU64::new(1),
            log: Mutex::new(VecDeque::new()),
            saved: Mutex::new(HashMap::new()),
            clock: tokio::time::Instant::now(),
        }
    }

    fn now(&self) -> u64 {
        self.clock.elapsed().as_millis() as u64
    }

    /// The offset for the next logged packet.
    pub fn next_offset(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// Log a broadcast packet sent with `offset`.
    pub fn log(&self, offset: u64, target: Selector, frames: Outgoing) {
        let now = self.now();
        let mut log = self.log.lock();
        // Offsets are taken before the lock, so two broadcasts may arrive out of order;
        // keep the log sorted so replay order is offset order.
        let pos = log.iter().rposition(|l| l.offset < offset).map_or(0, |p| p + 1);
        log.insert(pos, Logged { offset, at: now, target, frames });
        while log.len() > self.max_packets || log.front().is_some_and(|l| now - l.at > self.max_age_ms) {
            log.pop_front();
        }
    }

    /// Remember a socket that disconnected for a recoverable reason, under its `pid`.
    pub fn save(&self, pid: &str, id: SocketId, rooms: Vec<Room>) {
        let now = self.now();
        let mut saved = self.saved.lock();
        saved.retain(|_, s| now - s.at <= self.max_age_ms);
        saved.insert(pid.to_string(), Saved { id, rooms, at: now });
    }

    /// Restore the session `pid` that last saw `offset`, if it is still within the window and
    /// the log still reaches back to that offset.
    pub fn restore(&self, pid: &str, offset: Option<&str>) -> Result<Restored, Miss> {
        let now = self.now();
        let saved = self.saved.lock().remove(pid).ok_or(Miss::Unknown)?;
        if now - saved.at > self.max_age_ms {
            return Err(Miss::Expired);
        }
        // A client that never received a logged packet sends no offset.
        let offset: u64 = match offset {
            Some(o) => o.parse().map_err(|_| Miss::BadOffset)?,
            None => 0,
        };
        let log = self.log.lock();
        // Every offset is logged as it is taken and only the oldest are evicted, so the log
        // holds everything after `offset` exactly when its oldest entry is not newer than
        // `offset + 1`; otherwise packets were lost and recovery would be a lie.
        let complete = match log.front() {
            Some(oldest) => oldest.offset <= offset + 1,
            None => offset + 1 >= self.next.load(Ordering::Relaxed),
        };
        if !complete {
            return Err(Miss::Truncated);
        }
        let missed = log
            .iter()
            .filter(|l| l.offset > offset && l.target.matches(&saved.id, &saved.rooms))
            .map(|l| l.frames.clone())
            .collect();
        Ok(Restored { id: saved.id, rooms: saved.rooms, missed })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Frame;
    use crate::ids::NodeTag;

    fn frames(s: &str) -> Outgoing {
        let mut o = Outgoing::new();
        o.push(Frame::text(s.as_bytes()));
        o
    }

    #[tokio::test(start_paused = true)]
    async fn replays_only_what_the_socket_missed() {
        let r = Recovery::new(1000, 100);
        let id = SocketId::new(NodeTag(1));
        let room: Room = "a".into();
        let o1 = r.next_offset();
        r.log(o1, Selector::default(), frames("one"));
        r.save("pid1", id.clone(), vec![room.clone()]);
        let o2 = r.next_offset();
        r.log(o2, Selector::rooms(vec![room.clone()]), frames("two"));
        let o3 = r.next_offset();
        r.log(o3, Selector::rooms(vec!["b".into()]), frames("three"));
        let restored = r.restore("pid1", Some(&o1.to_string())).unwrap();
        assert_eq!(restored.id, id);
        assert_eq!(restored.missed, vec![frames("two")]);
        assert_eq!(
            r.restore("pid1", Some(&o1.to_string())).err(),
            Some(Miss::Unknown),
            "a session is restored once"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn expires() {
        let r = Recovery::new(1000, 100);
        r.save("p", SocketId::new(NodeTag(1)), vec![]);
        tokio::time::advance(std::time::Duration::from_millis(1500)).await;
        assert_eq!(r.restore("p", None).err(), Some(Miss::Expired));
    }

    #[tokio::test(start_paused = true)]
    async fn tells_a_bad_offset_from_a_truncated_log() {
        let r = Recovery::new(60_000, 2);
        r.save("p", SocketId::new(NodeTag(1)), vec![]);
        assert_eq!(r.restore("p", Some("not-a-number")).err(), Some(Miss::BadOffset));
        r.save("p", SocketId::new(NodeTag(1)), vec![]);
        for _ in 0..3 {
            let o = r.next_offset();
            r.log(o, Selector::default(), frames("x"));
        }
        // Offset 0: the client saw nothing, but only the last two of three packets are kept.
        assert_eq!(r.restore("p", None).err(), Some(Miss::Truncated));
    }
}
