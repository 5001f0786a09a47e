//! A namespace: its sockets, its room index, and broadcasting.
//!
//! The room index maps a room to its members (holding the sockets themselves, so a
//! broadcast does no per-member lookup); each socket also lists its rooms, and both sides
//! change together under the index's write lock. A socket's own id room is implicit.
//! Invariant: no socket is in more than `limits.rooms_per_socket` rooms (when set): `join`
//! is the only way in, and it checks under the same lock.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use parking_lot::RwLock;
use socketio_hub_config::{pattern_matches, HubConfig};

use super::packet::{self, Args};
use super::recovery::{Recovery, Stamp};
use super::socket::{AckSink, Sent, Socket};
use crate::engine::{CloseReason, Delivery};
use crate::ids::{NodeTag, Room, SocketId};
use crate::limits::{LimitHit, RoomLimit};

/// In link mode the hub's own ack ids (broadcasts with acks) start here, far above the ids an
/// application server's socket.io counts up from 0, so a client's ACK tells by its id alone
/// whether the hub or the application waits for it (both stay below 2^53 for JavaScript).
pub const LINK_ACK_ID_BASE: u64 = 1 << 40;

/// Which sockets of a namespace a broadcast or bulk operation targets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    /// Rooms (or socket ids) to include; empty means every socket of the namespace.
    pub rooms: Vec<Room>,
    /// Rooms (or socket ids) whose members are excluded.
    pub except_rooms: Vec<Room>,
    /// A socket to exclude (the sender, for `socket.to(room).emit`).
    pub except_socket: Option<SocketId>,
}

impl Selector {
    /// Every socket in `rooms`.
    pub fn rooms(rooms: Vec<Room>) -> Self {
        Selector { rooms, ..Default::default() }
    }

    /// Whether a socket with `id` in `rooms` is targeted.
    pub fn matches(&self, id: &SocketId, rooms: &[Room]) -> bool {
        let has = |r: &Room| &**r == id.as_str() || rooms.contains(r);
        if self.except_socket.as_ref() == Some(id) || self.except_rooms.iter().any(has) {
            return false;
        }
        self.rooms.is_empty() || self.rooms.iter().any(has)
    }
}

/// Options of one emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmitFlags {
    /// Drop for clients whose transport cannot take it now.
    pub delivery: Delivery,
}

/// One namespace on this node.
pub struct Namespace {
    /// Name (`/`, `/chat`).
    pub name: Arc<str>,
    /// Connected sockets.
    pub sockets: DashMap<SocketId, Arc<Socket>>,
    /// Connected sockets by recovery id (recovery namespaces): a client that recovers on
    /// another node takes its socket over from this one (`Op::Claim`).
    pub by_pid: DashMap<Arc<str>, Arc<Socket>>,
    rooms: RwLock<HashMap<Room, HashMap<SocketId, Arc<Socket>>>>,
    /// Bumped whenever a room appears in or disappears from the index, so the cluster's
    /// room-set gossip re-reads only namespaces that changed (cluster hook).
    pub rooms_version: AtomicU64,
    /// Recovery buffers, when recovery is on.
    pub recovery: Option<Recovery>,
    /// Room patterns clients may join (from config grants).
    pub join_grants: Vec<String>,
    /// Room patterns clients may emit to (from config grants).
    pub emit_grants: Vec<String>,
    next_ack: AtomicU64,
    /// The other nodes, told at once when a room gains its first member here (cluster).
    peers: Option<Arc<dyn super::Peers>>,
    room_limit: RoomLimit,
    /// Served by the hub itself (`state::internal`): no upstream, no recovery, not observed.
    pub internal: bool,
    observer: Option<Arc<dyn super::SocketObserver>>,
}

impl Namespace {
    /// A new, empty namespace configured from `config`.
    pub fn new(
        name: &str,
        config: &HubConfig,
        (me, epoch): (NodeTag, tokio::time::Instant),
        peers: Option<Arc<dyn super::Peers>>,
    ) -> Self {
        let grants = config.permissions.iter().filter(|g| pattern_matches(&g.namespace, name));
        let (mut join_grants, mut emit_grants) = (Vec::new(), Vec::new());
        for g in grants {
            join_grants.extend(g.join.iter().cloned());
            emit_grants.extend(g.emit.iter().cloned());
        }
        let r = &config.socketio.recovery;
        Namespace {
            name: Arc::from(name),
            sockets: DashMap::new(),
            by_pid: DashMap::new(),
            rooms: RwLock::new(HashMap::new()),
            rooms_version: AtomicU64::new(0),
            recovery: r.enabled.then(|| {
                Recovery::new(me, epoch, r.max_disconnection_ms, r.max_buffered_packets, r.max_sessions)
                    .with_peers(peers.clone())
            }),
            join_grants,
            emit_grants,
            next_ack: AtomicU64::new(match config.upstream.mode {
                socketio_hub_config::UpstreamMode::Link => LINK_ACK_ID_BASE,
                _ => 1,
            }),
            peers,
            room_limit: RoomLimit::default(),
            internal: false,
            observer: None,
        }
    }

    /// Mark the namespace internal (served by the hub itself): it keeps no recovery log.
    pub fn internal(mut self) -> Self {
        self.internal = true;
        self.recovery = None;
        self
    }

    /// Report room changes to `observer` (Admin UI development mode).
    pub fn with_observer(mut self, observer: Option<Arc<dyn super::SocketObserver>>) -> Self {
        self.observer = observer;
        self
    }

    /// A fresh ack id for a server→client emit (unique in this namespace, so one id can serve
    /// every recipient of a broadcast).
    pub fn next_ack_id(&self) -> u64 {
        self.next_ack.fetch_add(1, Ordering::Relaxed)
    }

    /// The rooms-per-socket limit every join is held to (`limits.rooms_per_socket`).
    pub fn with_room_limit(mut self, limit: RoomLimit) -> Self {
        self.room_limit = limit;
        self
    }

    /// Add `socket` to `rooms`; a join that would take it past `limits.rooms_per_socket` is
    /// refused whole (and counted). Every join path (client `hub:join`, REST, server link,
    /// webhook connect answer, cluster) goes through here, so none can bypass the limit;
    /// `try_join` tells the caller.
    pub fn join(&self, socket: &Arc<Socket>, rooms: &[Room]) {
        let _ = self.try_join(socket, rooms);
    }

    /// `join`, saying whether the room limit refused it.
    pub fn try_join(&self, socket: &Arc<Socket>, rooms: &[Room]) -> Result<(), LimitHit> {
        let mut created = Vec::new();
        let changed;
        let mut joined: Vec<Room> = Vec::new();
        {
            let mut index = self.rooms.write();
            let mut mine = socket.rooms.lock();
            let mut adding: Vec<&Room> = Vec::with_capacity(rooms.len());
            for room in rooms {
                if &**room != socket.id.as_str() && !mine.contains(room) && !adding.contains(&room) {
                    adding.push(room);
                }
            }
            self.room_limit.admits(mine.len(), adding.len())?;
            changed = !adding.is_empty();
            if self.observer.is_some() {
                joined.extend(adding.iter().map(|r| (*r).clone()));
            }
            for room in adding {
                mine.push(room.clone());
                let members = index.entry(room.clone()).or_insert_with(|| {
                    self.rooms_version.fetch_add(1, Ordering::Relaxed);
                    created.push(room.to_string());
                    HashMap::new()
                });
                members.insert(socket.id.clone(), socket.clone());
            }
        }
        if let (Some(peers), false) = (&self.peers, created.is_empty()) {
            peers.rooms_created(&self.name, created);
        }
        if changed {
            self.replicate(socket);
        }
        if let (Some(o), false) = (&self.observer, joined.is_empty()) {
            o.rooms(&self.name, &socket.id, &joined, true);
        }
        Ok(())
    }

    /// Remove `socket` from `rooms`.
    pub fn leave(&self, socket: &Socket, rooms: &[Room]) {
        let mut left: Vec<Room> = Vec::new();
        {
            let mut index = self.rooms.write();
            let mut mine = socket.rooms.lock();
            for room in rooms {
                if let Some(pos) = mine.iter().position(|r| r == room) {
                    mine.swap_remove(pos);
                    self.unindex(&mut index, room, &socket.id);
                    left.push(room.clone());
                }
            }
        }
        if left.is_empty() {
            return;
        }
        self.replicate(socket);
        if let Some(o) = &self.observer {
            o.rooms(&self.name, &socket.id, &left, false);
        }
    }

    /// Recovery in a cluster: send a connected socket's id and rooms to its replicas (after
    /// every change, outside the room lock).
    pub(super) fn replicate(&self, socket: &Socket) {
        if let (Some(_), Some(pid), Some(peers)) = (&self.recovery, &socket.pid, &self.peers) {
            let session = super::recovery::Session { id: socket.id.clone(), rooms: socket.room_list() };
            peers.save_session(&self.name, pid, &session);
        }
    }

    /// Remove `socket` from every room; returns the rooms it was in.
    pub fn leave_all(&self, socket: &Socket) -> Vec<Room> {
        let rooms: Vec<Room> = {
            let mut index = self.rooms.write();
            let rooms: Vec<Room> = socket.rooms.lock().drain(..).collect();
            for room in &rooms {
                self.unindex(&mut index, room, &socket.id);
            }
            rooms
        };
        if let (Some(o), false) = (&self.observer, rooms.is_empty()) {
            o.rooms(&self.name, &socket.id, &rooms, false);
        }
        rooms
    }

    fn unindex(&self, index: &mut HashMap<Room, HashMap<SocketId, Arc<Socket>>>, room: &Room, id: &SocketId) {
        if let Some(members) = index.get_mut(room) {
            members.remove(id);
            if members.is_empty() {
                index.remove(room);
                self.rooms_version.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// How many rooms have members on this node.
    pub fn room_count(&self) -> usize {
        self.rooms.read().len()
    }

    /// The rooms with members on this node (cluster: what it gossips).
    pub fn room_names(&self) -> Vec<Room> {
        self.rooms.read().keys().cloned().collect()
    }

    /// Call `f` once for each socket `sel` targets.
    pub fn select(&self, sel: &Selector, mut f: impl FnMut(&Arc<Socket>)) {
        let index = self.rooms.read();
        let mut excluded: HashSet<SocketId> = HashSet::new();
        excluded.extend(sel.except_socket.iter().cloned());
        for room in &sel.except_rooms {
            match index.get(room) {
                Some(members) => excluded.extend(members.keys().cloned()),
                None => excluded.extend(SocketId::parse(room)),
            }
        }
        let keep = |s: &Arc<Socket>| excluded.is_empty() || !excluded.contains(&s.id);
        if sel.rooms.is_empty() {
            for entry in self.sockets.iter() {
                if keep(entry.value()) {
                    f(entry.value());
                }
            }
            return;
        }
        // One room needs no de-duplication; several do, so a socket in two rooms gets one copy.
        let mut seen: Option<HashSet<SocketId>> = (sel.rooms.len() > 1).then(HashSet::new);
        let mut visit = |s: &Arc<Socket>| {
            if keep(s) && seen.as_mut().is_none_or(|seen| seen.insert(s.id.clone())) {
                f(s);
            }
        };
        for room in &sel.rooms {
            match index.get(room) {
                Some(members) => members.values().for_each(&mut visit),
                None => {
                    if let Some(s) =
                        SocketId::parse(room).and_then(|id| self.sockets.get(&id).map(|s| s.clone()))
                    {
                        visit(&s);
                    }
                }
            }
        }
    }

    /// Emit `event(args)` to the sockets `sel` targets. The packet is encoded once.
    ///
    /// With `ack`, every recipient is asked for an ack with one shared id, delivered to the
    /// sink; the returned id lets the caller forget them on timeout. Returns the sockets the
    /// packet was queued for and the sessions to close (slow clients).
    pub fn broadcast(
        &self,
        sel: &Selector,
        event: &str,
        args: &Args,
        flags: EmitFlags,
        ack: Option<&AckSink>,
    ) -> Broadcast {
        let id = ack.map(|_| self.next_ack_id());
        let frames = packet::event(&self.name, id, event, args, None);
        self.deliver(sel, &frames, flags.delivery, id.zip(ack))
    }

    /// Whether an emit with `delivery` and `ack` goes into the recovery log (recovery on,
    /// reliable, no acks: what socket.io's recovery replays).
    pub fn logs(&self, delivery: Delivery, ack: bool) -> bool {
        self.recovery.is_some() && delivery == Delivery::Reliable && !ack
    }

    /// A logged broadcast: stamped `stamp` by a peer that emitted it, or stamped here (then
    /// `forward` sends it to the peers under the same lock, so every node applies this node's
    /// stream in stamp order). The packet carries the log's offset vector; it is logged and
    /// queued to the local sockets `sel` targets before the lock is released. A stamp applied
    /// before is ignored. Requires `logs(..)`.
    pub fn broadcast_logged(
        &self,
        stamp: Option<Stamp>,
        sel: &Selector,
        event: &str,
        args: &Args,
        forward: impl FnOnce(Stamp),
    ) -> Broadcast {
        let Some(rec) = &self.recovery else { return Broadcast::nothing() };
        rec.with_stream(|stream, now| {
            let stamp = match stamp {
                Some(s) => s,
                None => {
                    let s = stream.own_stamp();
                    forward(s);
                    s
                }
            };
            if !stream.apply(stamp, now) {
                return Broadcast::nothing();
            }
            let offset = stream.vector().text();
            let frames = packet::event(&self.name, None, event, args, Some(&offset));
            stream.log(stamp, sel.clone(), frames.clone(), now);
            self.deliver(sel, &frames, Delivery::Reliable, None)
        })
    }

    fn deliver(
        &self,
        sel: &Selector,
        frames: &packet::Outgoing,
        delivery: Delivery,
        ack: Option<(u64, &AckSink)>,
    ) -> Broadcast {
        let id = ack.map(|(id, _)| id);
        let mut result = Broadcast { ack_id: id, delivered: 0, awaiting_ack: Vec::new(), slow: Vec::new() };
        self.select(sel, |s| {
            if let Some((id, sink)) = ack {
                s.expect_ack(id, sink.clone());
            }
            match s.send(frames, delivery) {
                Ok(Sent::Queued) => {
                    result.delivered += 1;
                    if id.is_some() {
                        result.awaiting_ack.push(s.clone());
                    }
                }
                Ok(Sent::Dropped) => {
                    if let Some(id) = id {
                        s.forget_ack(id);
                    }
                }
                Err(reason) => result.slow.push((s.clone(), reason)),
            }
        });
        result
    }

    /// Every room with members on this node and its size (what the cluster gossips).
    pub fn rooms_summary(&self) -> Vec<(Room, usize)> {
        let mut rooms: Vec<_> = self.rooms.read().iter().map(|(r, m)| (r.clone(), m.len())).collect();
        rooms.sort();
        rooms
    }

    /// Whether a client-requested room name is acceptable at all: not empty, not too long, and
    /// not shaped like a socket id (joining another socket's private room would let a client
    /// read its direct messages).
    pub fn is_public_room_name(room: &str) -> bool {
        !room.is_empty() && room.len() <= 256 && SocketId::parse(room).is_none()
    }
}

impl Broadcast {
    fn nothing() -> Self {
        Broadcast { ack_id: None, delivered: 0, awaiting_ack: Vec::new(), slow: Vec::new() }
    }
}

/// What a broadcast reached.
pub struct Broadcast {
    /// The ack id used, when acks were requested.
    pub ack_id: Option<u64>,
    /// How many sockets the packet was queued for.
    pub delivered: usize,
    /// With acks: the sockets asked for one (to forget the id on timeout).
    pub awaiting_ack: Vec<Arc<Socket>>,
    /// Sockets whose queue overflowed: their sessions must be closed.
    pub slow: Vec<(Arc<Socket>, CloseReason)>,
}
