//! What one node does to its own sockets for a cluster-wide operation: the typed operations
//! (`Op`), their answers (`OpReply`), and `Hub::apply_local`. The `ops` module fans an
//! operation out to every node; the mesh carries these types between nodes.
//!
//! Invariant: the selection is collected before acting, because joining, leaving and
//! disconnecting take the namespace's room lock that selection holds for reading; in link mode
//! a room change made here is reported to the socket's application server
//! (`PacketRouter::rooms_changed`), whoever asked for it — and only a change that happened: a
//! socket `limits.rooms_per_socket` refused is named in `OpReply::Joined::refused` instead.

use std::sync::Arc;

use super::app::Dispatch;
use super::{Hub, Selector};
use crate::ids::Room;
use crate::limits::LimitHit;

/// An operation on the sockets a selector picks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Add them to rooms.
    Join(Vec<Room>),
    /// Remove them from rooms.
    Leave(Vec<Room>),
    /// Disconnect them; with `close`, close the whole session.
    Disconnect {
        /// Close the Engine.IO session too.
        close: bool,
    },
    /// Describe them (fetchSockets).
    Fetch,
    /// Hand over recovery session `pid` (a client reconnected to the asking node): every node
    /// holding it answers with it and forgets it.
    Claim(String),
}

/// A recovery session handed to the node a client reconnected to (`Op::Claim`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// Socket id.
    pub id: String,
    /// Rooms.
    pub rooms: Vec<String>,
    /// How long ago the socket disconnected (0: its node had not said so).
    pub age_ms: u64,
}

/// Which application server a socket's session is bound to (link mode).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AppBinding {
    /// The node holding that server's link (`NodeId` text; empty on a single node).
    pub node: String,
    /// The server's instance number on that node.
    pub instance: u64,
}

/// A socket described for `fetchSockets`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketInfo {
    /// Socket id.
    pub id: String,
    /// Engine.IO session id.
    pub sid: String,
    /// Namespace.
    pub namespace: String,
    /// Rooms, its own id room first.
    pub rooms: Vec<String>,
    /// The handshake as JSON text.
    pub handshake: String,
    /// Whether connection state recovery restored it.
    pub recovered: bool,
    /// Link mode: the application server holding it (whose `socket.data` it has).
    pub app: Option<AppBinding>,
}

/// What an operation did on one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpReply {
    /// How many sockets the operation touched.
    Count(u32),
    /// The sockets fetched.
    Sockets(Vec<SocketInfo>),
    /// `socket.data` from an application server: a JSON object, socket id → data.
    Data(String),
    /// The recovery session claimed, if this node held it.
    Session(Option<Claimed>),
    /// What a join did: how many sockets joined, and which the room limit refused (each left
    /// as it was). The mesh carries a join with no refusal as `Count`.
    Joined {
        /// Sockets that joined.
        joined: u32,
        /// Ids of the sockets `limits.rooms_per_socket` refused.
        refused: Vec<String>,
        /// That limit (0 when nothing was refused).
        limit: u32,
    },
}

impl Hub {
    /// Apply `op` to this node's sockets selected by `sel` in namespace `ns`.
    pub fn apply_local(self: &Arc<Self>, ns: &str, sel: &Selector, op: &Op) -> OpReply {
        let Some(namespace) = self.existing_namespace(ns) else {
            return match op {
                Op::Fetch => OpReply::Sockets(Vec::new()),
                Op::Claim(_) => OpReply::Session(None),
                _ => OpReply::Count(0),
            };
        };
        if let Op::Claim(pid) = op {
            // The client came back on another node while this one still holds its socket (the
            // old transport is dead, not yet timed out here): the socket moves — it leaves here,
            // not kept for recovery, and hands over its current id and rooms.
            if let Some(old) = namespace.by_pid.get(pid.as_str()).map(|s| s.clone()) {
                let claimed = Claimed {
                    id: old.id.to_string(),
                    rooms: old.room_list().iter().map(|r| r.to_string()).collect(),
                    age_ms: 0,
                };
                self.retire_socket(&old);
                return OpReply::Session(Some(claimed));
            }
            let taken = namespace.recovery.as_ref().and_then(|r| r.take(pid));
            return OpReply::Session(taken.map(|(s, age_ms)| Claimed {
                id: s.id.to_string(),
                rooms: s.rooms.iter().map(|r| r.to_string()).collect(),
                age_ms,
            }));
        }
        let mut sockets = Vec::new();
        namespace.select(sel, |s| sockets.push(s.clone()));
        let router = match &self.dispatch {
            Dispatch::Link(r) => Some(r),
            Dispatch::App(_) => None,
        };
        match op {
            Op::Join(rooms) => {
                let (mut joined, mut refused, mut limit) = (0u32, Vec::new(), 0u32);
                for s in &sockets {
                    let mine: Vec<Room> = rooms.iter().filter(|r| ***r != *s.id.as_str()).cloned().collect();
                    match namespace.try_join(s, &mine) {
                        Ok(()) => {
                            joined += 1;
                            // Only a join that happened reaches the app's view of the rooms.
                            if let Some(r) = router {
                                r.rooms_changed(s, true, &mine);
                            }
                        }
                        Err(hit) => {
                            if let LimitHit::RoomsPerSocket(max) = hit {
                                limit = u32::try_from(max).unwrap_or(u32::MAX);
                            }
                            refused.push(s.id.to_string());
                        }
                    }
                }
                OpReply::Joined { joined, refused, limit }
            }
            Op::Leave(rooms) => {
                for s in &sockets {
                    let mine: Vec<Room> = rooms.iter().filter(|r| ***r != *s.id.as_str()).cloned().collect();
                    namespace.leave(s, &mine);
                    if let Some(r) = router {
                        r.rooms_changed(s, false, &mine);
                    }
                }
                OpReply::Count(sockets.len() as u32)
            }
            Op::Disconnect { close } => {
                for s in &sockets {
                    self.disconnect_socket(s, *close);
                }
                OpReply::Count(sockets.len() as u32)
            }
            Op::Fetch => OpReply::Sockets(
                sockets
                    .iter()
                    .map(|s| SocketInfo {
                        id: s.id.to_string(),
                        sid: s.conn.sid.to_string(),
                        namespace: ns.to_string(),
                        rooms: s.rooms(),
                        handshake: s.handshake_json().to_string(),
                        recovered: s.recovered,
                        app: router.and_then(|r| r.binding(&s.conn)),
                    })
                    .collect(),
            ),
            // Answered before selecting.
            Op::Claim(_) => OpReply::Session(None),
        }
    }
}
