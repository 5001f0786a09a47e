//! How the Socket.IO layer reaches application logic — the *dispatch mode* of the hub — as
//! interfaces this layer owns and the `upstream` module implements (so `state` depends on no
//! implementation of them):
//!
//! - `Dispatch::App`: the hub runs the Socket.IO server logic itself (CONNECT, EVENT, ACK) and
//!   asks an `Upstream` (no application, or webhooks) only for decisions and events;
//! - `Dispatch::Link`: application servers run their own Socket.IO server over a server link;
//!   the hub hands each client packet, raw, to a `PacketRouter` and keeps sessions and rooms.
//!
//! Invariant: no upstream call is unbounded — every implementation answers within its
//! configured timeout, and a failure becomes a CONNECT_ERROR or a dropped event with a metric.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Map, Value};
use socketio_hub_protocol::socket::Packet;

use super::{Args, Hub, Socket};
use crate::engine::{CloseReason, Conn, ConnHandshake};
use crate::ids::{Room, SocketId};

/// A boxed, sendable future.
pub type BoxFut<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A client asks to join a namespace.
#[derive(Debug, Clone)]
pub struct ConnectRequest {
    /// The id the socket will have.
    pub socket_id: SocketId,
    /// The namespace.
    pub namespace: String,
    /// The session's handshake.
    pub handshake: Arc<ConnHandshake>,
    /// The CONNECT auth payload.
    pub auth: Map<String, Value>,
    /// Verified token claims.
    pub claims: Option<Map<String, Value>>,
}

/// The application's answer to a connect.
#[derive(Debug, Clone, PartialEq)]
pub enum ConnectDecision {
    /// Accept, joining these rooms first.
    Accept {
        /// Rooms to join before the CONNECT reply.
        rooms: Vec<Room>,
    },
    /// Refuse: the client gets CONNECT_ERROR with this message and data.
    Reject {
        /// `err.message` on the client.
        message: String,
        /// `err.data` on the client.
        data: Option<Value>,
    },
}

/// An event from a client for the application.
pub struct EventCall {
    /// The sender.
    pub socket: Arc<Socket>,
    /// Event name.
    pub event: String,
    /// Arguments.
    pub args: Args,
    /// Whether the client waits for an ack.
    pub ack: bool,
}

/// The application side of the hub when the hub runs the Socket.IO logic (`Dispatch::App`).
pub trait Upstream: Send + Sync + 'static {
    /// Decide whether a socket may join a namespace.
    fn connect(&self, req: ConnectRequest) -> BoxFut<ConnectDecision>;
    /// A socket joined (after its CONNECT reply was queued).
    fn connected(&self, socket: Arc<Socket>) -> BoxFut<()>;
    /// A client event; resolves to the ack arguments when the client asked for an ack and the
    /// application gave one.
    fn event(&self, call: EventCall) -> BoxFut<Option<Args>>;
    /// A socket left, for `reason` (Socket.IO's reason strings).
    fn disconnected(&self, socket: Arc<Socket>, reason: &'static str) -> BoxFut<()>;
}

/// Application servers that run the Socket.IO logic themselves (`Dispatch::Link`) and take
/// every client packet raw. The hub still owns sessions, heartbeats, upgrades and rooms.
pub trait PacketRouter: Send + Sync + 'static {
    /// A complete client packet (`text` as received, with its binary attachments).
    fn client_packet(
        &self,
        hub: &Arc<Hub>,
        conn: &Arc<Conn>,
        text: &str,
        packet: &Packet<'_>,
        attachments: Vec<Bytes>,
    );
    /// The client's session ended (after its sockets were removed).
    fn session_closed(&self, conn: &Arc<Conn>, reason: CloseReason);
    /// A socket left its namespace while its session stays (client or server namespace
    /// disconnect): its application server must learn it.
    fn socket_removed(&self, socket: &Arc<Socket>, reason: &'static str);
    /// A bulk operation (REST, another server, a client command) changed `socket`'s rooms: its
    /// application server keeps `socket.rooms` in step.
    fn rooms_changed(&self, socket: &Socket, join: bool, rooms: &[Room]);
    /// The application asked `socket` to join `rooms` (its own `socket.join`, or rooms joined
    /// before its CONNECT answer) and `limits.rooms_per_socket` refused: its view, which added
    /// them already, must drop those the socket is not in.
    fn rooms_refused(&self, socket: &Socket, rooms: &[Room], hit: crate::limits::LimitHit);
    /// The application server `conn` is bound to now, if any.
    fn binding(&self, conn: &Conn) -> Option<super::ops::AppBinding>;
}

/// How client packets reach application logic.
#[derive(Clone)]
pub enum Dispatch {
    /// The hub handles CONNECT/EVENT/ACK and asks the upstream.
    App(Arc<dyn Upstream>),
    /// Application servers over server links take the packets raw.
    Link(Arc<dyn PacketRouter>),
}
