//! The mesh wire format: a handshake, then length-prefixed frames, each one typed message.
//! Pure encode/decode, no I/O.
//!
//! ```text
//! preamble   "SIOHMESH" u16:version                (each side, plaintext, before the Noise
//!                                                  handshake of `noise.rs`)
//! handshake  "SIOHMESH" u16:version str:node-name u64:generation      (each side sends one,
//!                                                  as its Noise handshake payload)
//! frame      u32:len  u8:kind  fields…                                (len counts kind+fields)
//! str/bytes  u32:len  bytes
//! ```
//!
//! Invariants: a decoder never panics and never allocates more than the frame it was given
//! (lengths are checked against the remaining input first); frames above `MAX_FRAME` are
//! refused from their header; a message is encoded once into `Bytes` and that buffer is shared
//! by every peer queue it goes to.

use bytes::{BufMut, Bytes, BytesMut};

use super::membership::NodeId;
use crate::ids::{Room, SocketId};
use crate::state::{Args, Selector};

/// Mesh protocol version; a peer with another version is refused at the preamble. Version 3:
/// the link is a Noise channel keyed by the cluster secret (versions 1 and 2 were plaintext);
/// version 4 adds replicated recovery (`Logged`, `RecSave`, `RecGone`, `Op::Claim`).
pub const VERSION: u16 = 4;
/// Handshake magic.
pub const MAGIC: &[u8; 8] = b"SIOHMESH";
/// Largest frame accepted (header included in the check).
pub const MAX_FRAME: usize = 64 << 20;

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended inside a field.
    #[error("truncated mesh frame")]
    Truncated,
    /// An unknown message kind or operation.
    #[error("unknown mesh message kind {0}")]
    Kind(u8),
    /// Text that is not UTF-8, or an id of the wrong shape.
    #[error("malformed field in mesh frame")]
    Malformed,
    /// Not a mesh handshake.
    #[error("not a socketio-hub mesh peer")]
    Magic,
    /// Frame above `MAX_FRAME`.
    #[error("mesh frame of {0} bytes is above the limit")]
    TooLarge(usize),
}

pub use crate::state::{AppBinding, Claimed, Op, OpReply as Reply, SocketInfo};

/// What a relayed link message does to the relay's bookkeeping (`Msg::ToApp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relay {
    /// The session binds to the application server (the message is its `open`).
    Open,
    /// Any other message of a bound session.
    Msg,
    /// The session ended (the message is its `close`): the binding is released.
    Close,
}

/// One mesh message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    /// Emit to local sockets selected in `ns`. With `ack`, the receiver answers `AckCount`
    /// then one `Ack` per client ack, tagged with that request id.
    Broadcast {
        /// Namespace.
        ns: String,
        /// Target.
        sel: Selector,
        /// Event name.
        event: String,
        /// Arguments.
        args: Args,
        /// Drop for clients that cannot take it now.
        volatile: bool,
        /// Request id to collect acks under.
        ack: Option<u64>,
    },
    /// A remote operation; answered by `Reply` with the same id.
    Request {
        /// Request id (unique per sender).
        id: u64,
        /// Namespace.
        ns: String,
        /// Target.
        sel: Selector,
        /// What to do.
        op: Op,
    },
    /// The answer to `Request { id }`.
    Reply {
        /// Request id.
        id: u64,
        /// The answer.
        reply: Reply,
    },
    /// Which local clients a `Broadcast { ack: Some(id) }` asked for an ack.
    AckCount {
        /// Request id.
        id: u64,
        /// Socket ids of the clients asked.
        sockets: Vec<String>,
    },
    /// One client's ack to `Broadcast { ack: Some(id) }`.
    Ack {
        /// Request id.
        id: u64,
        /// The socket that answered.
        socket: String,
        /// Its arguments.
        args: Args,
    },
    /// Rooms that just gained their first member on the sender: a fast path ahead of gossip,
    /// so broadcasts route to the sender without waiting for a gossip round.
    Rooms {
        /// Namespace.
        ns: String,
        /// The rooms.
        added: Vec<String>,
    },
    /// A link message for application server `instance` linked to the receiver, from a client
    /// session held by the sender (link mode, the session bound to another node's server).
    ToApp {
        /// The server's instance number on the receiver.
        instance: u64,
        /// The client session.
        sid: String,
        /// Binding bookkeeping.
        relay: Relay,
        /// The link message (JSON text).
        text: String,
        /// Its binary attachments.
        bins: Vec<Bytes>,
    },
    /// A session-scoped message of application server `instance` linked to the sender (a
    /// `packet`, `close`, `join` or `leave` link message) for a session the receiver holds.
    FromApp {
        /// The server's instance number on the sender.
        instance: u64,
        /// The link message (JSON text).
        text: String,
        /// Its binary attachments.
        bins: Vec<Bytes>,
    },
    /// Application server `instance` of the sender is gone: sessions bound to it re-bind.
    AppGone {
        /// The server's instance number on the sender.
        instance: u64,
    },
    /// The sender does not hold session `sid` for its server `instance` (it let the session
    /// go while the receiver looked dead): the session binds again.
    Unbound {
        /// The server's instance number on the sender.
        instance: u64,
        /// The client session.
        sid: String,
    },
    /// `serverSideEmit` for the application servers linked to the receiver; answered with
    /// `Reply { id, Count(servers reached) }`, and with `AppAck { req }` per answer when `req`.
    AppEmit {
        /// Request id of the count reply.
        id: u64,
        /// The sender's link request id that answers are relayed under.
        req: Option<u64>,
        /// Namespace.
        ns: String,
        /// The encoded EVENT packet.
        data: String,
        /// Its binary attachments.
        bins: Vec<Bytes>,
    },
    /// One application server's answer to `AppEmit { req }`.
    AppAck {
        /// The emitter's link request id.
        req: u64,
        /// The encoded ACK packet.
        data: String,
        /// Its binary attachments.
        bins: Vec<Bytes>,
    },
    /// A broadcast of a recovery namespace, sent to every peer and logged by each: stamped by
    /// its emitter (the sender) with the next number of the sender's stream of `ns`.
    Logged {
        /// Namespace.
        ns: String,
        /// Target.
        sel: Selector,
        /// Event name.
        event: String,
        /// Arguments.
        args: Args,
        /// Position in the sender's stream of `ns`.
        seq: u64,
    },
    /// The sender's socket `pid` has this id and these rooms: hold a replica of it.
    RecSave {
        /// Namespace.
        ns: String,
        /// Recovery session id.
        pid: String,
        /// Socket id.
        id: String,
        /// Rooms.
        rooms: Vec<String>,
    },
    /// The sender's socket `pid` left it: keep the replica for the window (`keep`), or drop it.
    RecGone {
        /// Namespace.
        ns: String,
        /// Recovery session id.
        pid: String,
        /// Whether the socket may still be recovered.
        keep: bool,
    },
    /// `socket.data` of sockets held by application server `instance` linked to the receiver;
    /// answered with `Reply { id, Data(json object id → data) }`.
    AppData {
        /// Request id.
        id: u64,
        /// The server's instance number on the receiver.
        instance: u64,
        /// Namespace.
        ns: String,
        /// Socket ids.
        ids: Vec<String>,
    },
}

const K_BROADCAST: u8 = 1;
const K_REQUEST: u8 = 2;
const K_REPLY: u8 = 3;
const K_ACK_COUNT: u8 = 4;
const K_ACK: u8 = 5;
const K_ROOMS: u8 = 7;
const K_TO_APP: u8 = 8;
const K_FROM_APP: u8 = 9;
const K_APP_GONE: u8 = 10;
const K_APP_EMIT: u8 = 11;
const K_APP_ACK: u8 = 12;
const K_APP_DATA: u8 = 13;
const K_UNBOUND: u8 = 14;
const K_LOGGED: u8 = 15;
const K_REC_SAVE: u8 = 16;
const K_REC_GONE: u8 = 17;

struct W(BytesMut);

impl W {
    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.0.put_u32(b.len() as u32);
        self.0.put_slice(b);
    }
    fn list<T: AsRef<str>>(&mut self, items: &[T]) {
        self.0.put_u32(items.len() as u32);
        for i in items {
            self.str(i.as_ref());
        }
    }
    fn args(&mut self, a: &Args) {
        self.str(&a.json);
        self.0.put_u32(a.attachments.len() as u32);
        for b in &a.attachments {
            self.bytes(b);
        }
    }
    fn bins(&mut self, bins: &[Bytes]) {
        self.0.put_u32(bins.len() as u32);
        for b in bins {
            self.bytes(b);
        }
    }
    fn sel(&mut self, s: &Selector) {
        self.list(&s.rooms);
        self.list(&s.except_rooms);
        self.str(s.except_socket.as_ref().map_or("", |s| s.as_str()));
    }
}

/// Encode a message as one complete frame (length prefix included).
pub fn encode(msg: &Msg) -> Bytes {
    let mut w = W(BytesMut::with_capacity(128));
    w.0.put_u32(0);
    match msg {
        Msg::Broadcast { ns, sel, event, args, volatile, ack } => {
            w.0.put_u8(K_BROADCAST);
            w.str(ns);
            w.sel(sel);
            w.str(event);
            w.args(args);
            w.0.put_u8(u8::from(*volatile));
            w.0.put_u64(ack.map_or(0, |a| a + 1));
        }
        Msg::Request { id, ns, sel, op } => {
            w.0.put_u8(K_REQUEST);
            w.0.put_u64(*id);
            w.str(ns);
            w.sel(sel);
            match op {
                Op::Join(rooms) => {
                    w.0.put_u8(1);
                    w.list(rooms);
                }
                Op::Leave(rooms) => {
                    w.0.put_u8(2);
                    w.list(rooms);
                }
                Op::Disconnect { close } => {
                    w.0.put_u8(3);
                    w.0.put_u8(u8::from(*close));
                }
                Op::Fetch => w.0.put_u8(4),
                Op::Claim(pid) => {
                    w.0.put_u8(5);
                    w.str(pid);
                }
            }
        }
        Msg::Reply { id, reply } => {
            w.0.put_u8(K_REPLY);
            w.0.put_u64(*id);
            match reply {
                Reply::Count(n) => {
                    w.0.put_u8(1);
                    w.0.put_u32(*n);
                }
                Reply::Data(json) => {
                    w.0.put_u8(3);
                    w.str(json);
                }
                Reply::Session(None) => w.0.put_u8(4),
                Reply::Session(Some(c)) => {
                    w.0.put_u8(5);
                    w.str(&c.id);
                    w.list(&c.rooms);
                    w.0.put_u64(c.age_ms);
                }
                Reply::Sockets(list) => {
                    w.0.put_u8(2);
                    w.0.put_u32(list.len() as u32);
                    for s in list {
                        w.str(&s.id);
                        w.str(&s.sid);
                        w.str(&s.namespace);
                        w.list(&s.rooms);
                        w.str(&s.handshake);
                        w.0.put_u8(u8::from(s.recovered));
                        match &s.app {
                            Some(a) => {
                                w.0.put_u8(1);
                                w.str(&a.node);
                                w.0.put_u64(a.instance);
                            }
                            None => w.0.put_u8(0),
                        }
                    }
                }
            }
        }
        Msg::Logged { ns, sel, event, args, seq } => {
            w.0.put_u8(K_LOGGED);
            w.str(ns);
            w.sel(sel);
            w.str(event);
            w.args(args);
            w.0.put_u64(*seq);
        }
        Msg::RecSave { ns, pid, id, rooms } => {
            w.0.put_u8(K_REC_SAVE);
            w.str(ns);
            w.str(pid);
            w.str(id);
            w.list(rooms);
        }
        Msg::RecGone { ns, pid, keep } => {
            w.0.put_u8(K_REC_GONE);
            w.str(ns);
            w.str(pid);
            w.0.put_u8(u8::from(*keep));
        }
        Msg::AckCount { id, sockets } => {
            w.0.put_u8(K_ACK_COUNT);
            w.0.put_u64(*id);
            w.list(sockets);
        }
        Msg::Ack { id, socket, args } => {
            w.0.put_u8(K_ACK);
            w.0.put_u64(*id);
            w.str(socket);
            w.args(args);
        }
        Msg::Rooms { ns, added } => {
            w.0.put_u8(K_ROOMS);
            w.str(ns);
            w.list(added);
        }
        Msg::ToApp { instance, sid, relay, text, bins } => {
            w.0.put_u8(K_TO_APP);
            w.0.put_u64(*instance);
            w.str(sid);
            w.0.put_u8(match relay {
                Relay::Msg => 0,
                Relay::Open => 1,
                Relay::Close => 2,
            });
            w.str(text);
            w.bins(bins);
        }
        Msg::FromApp { instance, text, bins } => {
            w.0.put_u8(K_FROM_APP);
            w.0.put_u64(*instance);
            w.str(text);
            w.bins(bins);
        }
        Msg::AppGone { instance } => {
            w.0.put_u8(K_APP_GONE);
            w.0.put_u64(*instance);
        }
        Msg::Unbound { instance, sid } => {
            w.0.put_u8(K_UNBOUND);
            w.0.put_u64(*instance);
            w.str(sid);
        }
        Msg::AppEmit { id, req, ns, data, bins } => {
            w.0.put_u8(K_APP_EMIT);
            w.0.put_u64(*id);
            w.0.put_u64(req.map_or(0, |r| r + 1));
            w.str(ns);
            w.str(data);
            w.bins(bins);
        }
        Msg::AppAck { req, data, bins } => {
            w.0.put_u8(K_APP_ACK);
            w.0.put_u64(*req);
            w.str(data);
            w.bins(bins);
        }
        Msg::AppData { id, instance, ns, ids } => {
            w.0.put_u8(K_APP_DATA);
            w.0.put_u64(*id);
            w.0.put_u64(*instance);
            w.str(ns);
            w.list(ids);
        }
    }
    let len = (w.0.len() - 4) as u32;
    w.0[..4].copy_from_slice(&len.to_be_bytes());
    w.0.freeze()
}

/// The body length announced by a frame header, checked against `MAX_FRAME`.
pub fn frame_len(header: [u8; 4]) -> Result<usize, DecodeError> {
    let n = u32::from_be_bytes(header) as usize;
    if n > MAX_FRAME {
        return Err(DecodeError::TooLarge(n));
    }
    if n == 0 {
        return Err(DecodeError::Truncated);
    }
    Ok(n)
}

struct R<'a> {
    buf: &'a [u8],
    whole: &'a Bytes,
    at: usize,
}

impl<'a> R<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() - self.at < n {
            return Err(DecodeError::Truncated);
        }
        let s = &self.buf[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().map_err(|_| DecodeError::Truncated)?))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into().map_err(|_| DecodeError::Truncated)?))
    }
    fn bytes(&mut self) -> Result<Bytes, DecodeError> {
        let n = self.u32()? as usize;
        let start = self.at;
        self.take(n)?;
        // Attachments share the frame's buffer instead of being copied.
        Ok(self.whole.slice(start..start + n))
    }
    fn str(&mut self) -> Result<String, DecodeError> {
        let n = self.u32()? as usize;
        let b = self.take(n)?;
        std::str::from_utf8(b).map(str::to_string).map_err(|_| DecodeError::Malformed)
    }
    fn count(&mut self, min_item: usize) -> Result<usize, DecodeError> {
        let n = self.u32()? as usize;
        // Every item takes at least `min_item` bytes, so a huge count cannot allocate past the input.
        if n.saturating_mul(min_item) > self.buf.len() - self.at {
            return Err(DecodeError::Truncated);
        }
        Ok(n)
    }
    fn list(&mut self) -> Result<Vec<Room>, DecodeError> {
        let n = self.count(4)?;
        (0..n).map(|_| self.str().map(Room::from)).collect()
    }
    fn strings(&mut self) -> Result<Vec<String>, DecodeError> {
        let n = self.count(4)?;
        (0..n).map(|_| self.str()).collect()
    }
    fn bins(&mut self) -> Result<Vec<Bytes>, DecodeError> {
        let n = self.count(4)?;
        (0..n).map(|_| self.bytes()).collect()
    }
    fn args(&mut self) -> Result<Args, DecodeError> {
        let json = self.str()?;
        let n = self.count(4)?;
        let attachments = (0..n).map(|_| self.bytes()).collect::<Result<_, _>>()?;
        Ok(Args { json, attachments })
    }
    fn sel(&mut self) -> Result<Selector, DecodeError> {
        let rooms = self.list()?;
        let except_rooms = self.list()?;
        let except = self.str()?;
        let except_socket = match except.as_str() {
            "" => None,
            s => Some(SocketId::parse(s).ok_or(DecodeError::Malformed)?),
        };
        Ok(Selector { rooms, except_rooms, except_socket })
    }
}

/// Decode a frame body (what follows the length prefix).
pub fn decode(body: &Bytes) -> Result<Msg, DecodeError> {
    let mut r = R { buf: body, whole: body, at: 0 };
    let msg = match r.u8()? {
        K_BROADCAST => Msg::Broadcast {
            ns: r.str()?,
            sel: r.sel()?,
            event: r.str()?,
            args: r.args()?,
            volatile: r.u8()? != 0,
            ack: r.u64()?.checked_sub(1),
        },
        K_REQUEST => {
            let id = r.u64()?;
            let ns = r.str()?;
            let sel = r.sel()?;
            let op = match r.u8()? {
                1 => Op::Join(r.list()?),
                2 => Op::Leave(r.list()?),
                3 => Op::Disconnect { close: r.u8()? != 0 },
                4 => Op::Fetch,
                5 => Op::Claim(r.str()?),
                k => return Err(DecodeError::Kind(k)),
            };
            Msg::Request { id, ns, sel, op }
        }
        K_REPLY => {
            let id = r.u64()?;
            let reply = match r.u8()? {
                1 => Reply::Count(r.u32()?),
                2 => {
                    let n = r.count(16)?;
                    let mut list = Vec::with_capacity(n);
                    for _ in 0..n {
                        list.push(SocketInfo {
                            id: r.str()?,
                            sid: r.str()?,
                            namespace: r.str()?,
                            rooms: r.strings()?,
                            handshake: r.str()?,
                            recovered: r.u8()? != 0,
                            app: match r.u8()? {
                                0 => None,
                                1 => Some(AppBinding { node: r.str()?, instance: r.u64()? }),
                                k => return Err(DecodeError::Kind(k)),
                            },
                        });
                    }
                    Reply::Sockets(list)
                }
                3 => Reply::Data(r.str()?),
                4 => Reply::Session(None),
                5 => Reply::Session(Some(Claimed { id: r.str()?, rooms: r.strings()?, age_ms: r.u64()? })),
                k => return Err(DecodeError::Kind(k)),
            };
            Msg::Reply { id, reply }
        }
        K_ACK_COUNT => Msg::AckCount { id: r.u64()?, sockets: r.strings()? },
        K_ACK => Msg::Ack { id: r.u64()?, socket: r.str()?, args: r.args()? },
        K_TO_APP => Msg::ToApp {
            instance: r.u64()?,
            sid: r.str()?,
            relay: match r.u8()? {
                0 => Relay::Msg,
                1 => Relay::Open,
                2 => Relay::Close,
                k => return Err(DecodeError::Kind(k)),
            },
            text: r.str()?,
            bins: r.bins()?,
        },
        K_FROM_APP => Msg::FromApp { instance: r.u64()?, text: r.str()?, bins: r.bins()? },
        K_APP_GONE => Msg::AppGone { instance: r.u64()? },
        K_UNBOUND => Msg::Unbound { instance: r.u64()?, sid: r.str()? },
        K_APP_EMIT => Msg::AppEmit {
            id: r.u64()?,
            req: r.u64()?.checked_sub(1),
            ns: r.str()?,
            data: r.str()?,
            bins: r.bins()?,
        },
        K_APP_ACK => Msg::AppAck { req: r.u64()?, data: r.str()?, bins: r.bins()? },
        K_APP_DATA => Msg::AppData { id: r.u64()?, instance: r.u64()?, ns: r.str()?, ids: r.strings()? },
        K_ROOMS => Msg::Rooms { ns: r.str()?, added: r.strings()? },
        K_LOGGED => {
            Msg::Logged { ns: r.str()?, sel: r.sel()?, event: r.str()?, args: r.args()?, seq: r.u64()? }
        }
        K_REC_SAVE => Msg::RecSave { ns: r.str()?, pid: r.str()?, id: r.str()?, rooms: r.strings()? },
        K_REC_GONE => Msg::RecGone { ns: r.str()?, pid: r.str()?, keep: r.u8()? != 0 },
        k => return Err(DecodeError::Kind(k)),
    };
    if r.at != body.len() {
        return Err(DecodeError::Malformed);
    }
    Ok(msg)
}

/// Bytes of the preamble: magic and version.
pub const PREAMBLE_LEN: usize = 8 + 2;

/// The plaintext preamble each side sends before the Noise handshake.
pub fn preamble() -> [u8; PREAMBLE_LEN] {
    let mut out = [0u8; PREAMBLE_LEN];
    out[..8].copy_from_slice(MAGIC);
    out[8..].copy_from_slice(&VERSION.to_be_bytes());
    out
}

/// The protocol version a preamble announces, or `Magic` when it is not a mesh peer.
pub fn preamble_version(p: &[u8; PREAMBLE_LEN]) -> Result<u16, DecodeError> {
    if &p[..8] != MAGIC {
        return Err(DecodeError::Magic);
    }
    Ok(u16::from_be_bytes([p[8], p[9]]))
}

/// Parse a whole handshake (as carried in a Noise payload): its version and node id.
pub fn parse_handshake(hs: &[u8]) -> Result<(u16, NodeId), DecodeError> {
    let head: &[u8; HANDSHAKE_HEAD] =
        hs.get(..HANDSHAKE_HEAD).and_then(|h| h.try_into().ok()).ok_or(DecodeError::Truncated)?;
    let (version, len) = handshake_head(head)?;
    let tail = &hs[HANDSHAKE_HEAD..];
    if tail.len() != len + 8 {
        return Err(DecodeError::Malformed);
    }
    Ok((version, handshake_tail(tail)?))
}

/// The handshake each side sends first.
pub fn handshake(me: &NodeId) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + me.name.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&(me.name.len() as u32).to_be_bytes());
    out.extend_from_slice(me.name.as_bytes());
    out.extend_from_slice(&me.generation.to_be_bytes());
    out
}

/// The fixed part of a handshake: magic, version, name length.
pub const HANDSHAKE_HEAD: usize = 8 + 2 + 4;

/// Parse the fixed head: the protocol version and the name length that follows.
pub fn handshake_head(head: &[u8; HANDSHAKE_HEAD]) -> Result<(u16, usize), DecodeError> {
    if &head[..8] != MAGIC {
        return Err(DecodeError::Magic);
    }
    let version = u16::from_be_bytes([head[8], head[9]]);
    let len = u32::from_be_bytes([head[10], head[11], head[12], head[13]]) as usize;
    if len > 1024 {
        return Err(DecodeError::TooLarge(len));
    }
    Ok((version, len))
}

/// Parse the tail of a handshake (name then generation).
pub fn handshake_tail(tail: &[u8]) -> Result<NodeId, DecodeError> {
    if tail.len() < 8 {
        return Err(DecodeError::Truncated);
    }
    let (name, generation) = tail.split_at(tail.len() - 8);
    let name = std::str::from_utf8(name).map_err(|_| DecodeError::Malformed)?;
    let generation = u64::from_be_bytes(generation.try_into().map_err(|_| DecodeError::Truncated)?);
    Ok(NodeId { name: name.into(), generation })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::NodeTag;
    use proptest::prelude::*;

    fn round_trip(msg: Msg) {
        let frame = encode(&msg);
        let len = frame_len(frame[..4].try_into().unwrap()).unwrap();
        assert_eq!(len, frame.len() - 4);
        assert_eq!(decode(&frame.slice(4..)).unwrap(), msg);
    }

    fn args() -> Args {
        Args {
            json: r#"[1,{"_placeholder":true,"num":0}]"#.into(),
            attachments: vec![Bytes::from_static(b"\x00\x01\x02")],
        }
    }

    #[test]
    fn every_message_round_trips() {
        let sock = SocketId::new(NodeTag(5));
        let sel = Selector {
            rooms: vec![Room::from("a"), Room::from("é")],
            except_rooms: vec![Room::from("b")],
            except_socket: Some(sock.clone()),
        };
        round_trip(Msg::Broadcast {
            ns: "/chat".into(),
            sel: sel.clone(),
            event: "hello".into(),
            args: args(),
            volatile: true,
            ack: Some(0),
        });
        round_trip(Msg::Broadcast {
            ns: "/".into(),
            sel: Selector::default(),
            event: "e".into(),
            args: Args::default(),
            volatile: false,
            ack: None,
        });
        for op in
            [Op::Join(vec![Room::from("x")]), Op::Leave(vec![]), Op::Disconnect { close: true }, Op::Fetch]
        {
            round_trip(Msg::Request { id: 9, ns: "/".into(), sel: sel.clone(), op });
        }
        round_trip(Msg::Reply { id: 1, reply: Reply::Count(3) });
        round_trip(Msg::Reply {
            id: 2,
            reply: Reply::Sockets(vec![
                SocketInfo {
                    id: sock.to_string(),
                    sid: "s1".into(),
                    namespace: "/".into(),
                    rooms: vec![sock.to_string(), "r".into()],
                    handshake: "{}".into(),
                    recovered: true,
                    app: Some(AppBinding { node: "n1/7".into(), instance: 3 }),
                },
                SocketInfo {
                    id: sock.to_string(),
                    sid: "s2".into(),
                    namespace: "/".into(),
                    rooms: vec![],
                    handshake: "{}".into(),
                    recovered: false,
                    app: None,
                },
            ]),
        });
        round_trip(Msg::Reply { id: 3, reply: Reply::Data(r#"{"a":1}"#.into()) });
        round_trip(Msg::AckCount { id: 4, sockets: vec![sock.to_string()] });
        round_trip(Msg::Ack { id: 4, socket: sock.to_string(), args: args() });
        let bins = vec![Bytes::from_static(b"\x01"), Bytes::new()];
        for relay in [Relay::Open, Relay::Msg, Relay::Close] {
            round_trip(Msg::ToApp {
                instance: 2,
                sid: "sid".into(),
                relay,
                text: "{}".into(),
                bins: bins.clone(),
            });
        }
        round_trip(Msg::FromApp { instance: 2, text: r#"{"t":"close"}"#.into(), bins: vec![] });
        round_trip(Msg::AppGone { instance: 9 });
        round_trip(Msg::Unbound { instance: 9, sid: "s".into() });
        round_trip(Msg::AppEmit {
            id: 1,
            req: Some(0),
            ns: "/".into(),
            data: "2[]".into(),
            bins: bins.clone(),
        });
        round_trip(Msg::AppEmit { id: 1, req: None, ns: "/".into(), data: "2[]".into(), bins: vec![] });
        round_trip(Msg::AppAck { req: 5, data: "3[]".into(), bins });
        round_trip(Msg::AppData { id: 4, instance: 1, ns: "/".into(), ids: vec!["x".into()] });
        round_trip(Msg::Rooms { ns: "/chat".into(), added: vec!["a".into(), "b".into()] });
    }

    #[test]
    fn recovery_messages_round_trip() {
        round_trip(Msg::Logged {
            ns: "/".into(),
            sel: Selector::rooms(vec!["r".into()]),
            event: "e".into(),
            args: Args { json: "[1]".into(), attachments: vec![Bytes::from_static(b"\x01")] },
            seq: u64::MAX,
        });
        round_trip(Msg::RecSave { ns: "/".into(), pid: "p".into(), id: "i".into(), rooms: vec!["a".into()] });
        round_trip(Msg::RecGone { ns: "/".into(), pid: "p".into(), keep: true });
        round_trip(Msg::Request { id: 3, ns: "/".into(), sel: Selector::default(), op: Op::Claim("p".into()) });
        round_trip(Msg::Reply { id: 3, reply: Reply::Session(None) });
        let claimed = Claimed { id: "i".into(), rooms: vec!["a".into(), "b".into()], age_ms: 7 };
        round_trip(Msg::Reply { id: 4, reply: Reply::Session(Some(claimed)) });
    }

    #[test]
    fn refuses_bad_frames() {
        assert_eq!(
            frame_len((MAX_FRAME as u32 + 1).to_be_bytes()),
            Err(DecodeError::TooLarge(MAX_FRAME + 1))
        );
        assert_eq!(decode(&Bytes::from_static(&[99])), Err(DecodeError::Kind(99)));
        assert_eq!(decode(&Bytes::from_static(&[K_ACK_COUNT, 0, 0])), Err(DecodeError::Truncated));
        // A list claiming 2^32-1 entries in a few bytes is refused before allocating.
        let huge = [K_REQUEST, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, b'/', 0xff, 0xff, 0xff, 0xff];
        assert_eq!(decode(&Bytes::copy_from_slice(&huge)), Err(DecodeError::Truncated));
        let mut trailing = encode(&Msg::AckCount { id: 1, sockets: vec![] }).slice(4..).to_vec();
        trailing.push(0);
        assert_eq!(decode(&Bytes::from(trailing)), Err(DecodeError::Malformed));
    }

    #[test]
    fn handshake_round_trips_and_checks_magic() {
        let me = NodeId { name: "n1".into(), generation: 42 };
        let hs = handshake(&me);
        let head: [u8; HANDSHAKE_HEAD] = hs[..HANDSHAKE_HEAD].try_into().unwrap();
        let (version, len) = handshake_head(&head).unwrap();
        assert_eq!((version, len), (VERSION, 2));
        assert_eq!(handshake_tail(&hs[HANDSHAKE_HEAD..]).unwrap(), me);
        let mut bad = head;
        bad[0] = b'X';
        assert_eq!(handshake_head(&bad), Err(DecodeError::Magic));
        assert_eq!(parse_handshake(&hs), Ok((VERSION, me)));
        assert_eq!(parse_handshake(&hs[..hs.len() - 1]), Err(DecodeError::Malformed));
        assert_eq!(parse_handshake(&hs[..3]), Err(DecodeError::Truncated));
    }

    #[test]
    fn the_preamble_names_magic_and_version() {
        assert_eq!(&preamble(), b"SIOHMESH\x00\x04");
        assert_eq!(preamble_version(&preamble()), Ok(VERSION));
        // A plaintext (version 1 or 2) node's handshake starts with the same ten bytes.
        assert_eq!(preamble_version(b"SIOHMESH\x00\x02"), Ok(2));
        assert_eq!(preamble_version(b"GET / HTTP"), Err(DecodeError::Magic));
    }

    proptest! {
        #[test]
        fn decoding_never_panics(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(&Bytes::from(body));
        }

        #[test]
        fn broadcasts_round_trip(
            ns in "/[a-z]{0,8}",
            rooms in proptest::collection::vec(".{0,12}", 0..4),
            event in ".{0,16}",
            json in ".{0,32}",
            bins in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..16), 0..3),
            volatile: bool,
            ack in proptest::option::of(0u64..u64::MAX - 1),
        ) {
            let msg = Msg::Broadcast {
                ns,
                sel: Selector::rooms(rooms.into_iter().map(Room::from).collect()),
                event,
                args: Args { json, attachments: bins.into_iter().map(Bytes::from).collect() },
                volatile,
                ack,
            };
            let frame = encode(&msg);
            prop_assert_eq!(decode(&frame.slice(4..)).unwrap(), msg);
        }
    }
}
