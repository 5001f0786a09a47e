//! How the application's logic is reached: one interface, several implementations.
//!
//! - `NoUpstream`: no application; clients use only what permissions grant (the emulator).
//! - `Webhook`: serverless mode, signed HTTP calls to the application.
//! - `Link`: default mode, application servers dial in over a server link and run their own
//!   Socket.IO server; the hub routes raw packets to them (`PacketRouter`).
//!
//! Invariant: the hub never waits on an upstream without a bound: every implementation
//! answers within its configured timeout, and a failure becomes a CONNECT_ERROR or a dropped
//! event with a metric, never a hung socket.

pub mod link;
mod none;
mod webhook;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::{Map, Value};

pub use link::Link;
pub use none::NoUpstream;
pub use webhook::Webhook;

use bytes::Bytes;
use socketio_hub_protocol::socket::Packet;

use crate::engine::{CloseReason, Conn, ConnHandshake};
use crate::ids::{Room, SocketId};
use crate::state::{Args, Hub, Socket};

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

/// The application side of the hub.
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
    /// Link mode: the upstream takes every Socket.IO packet of a client as it came, instead of
    /// the hub handling CONNECT, EVENT and ACK itself. `None` (the default) for the others.
    fn packet_router(&self) -> Option<&dyn PacketRouter> {
        None
    }
}

/// An upstream that runs the Socket.IO server logic itself (link mode) and wants the clients'
/// packets raw. The hub still owns sessions, heartbeats, upgrades and the room index.
pub trait PacketRouter: Send + Sync {
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
}
