//! Namespaces the hub serves itself (the Admin UI's, `crate::admin_ui`), whatever the dispatch
//! mode, and the observer that sees what happens to every other socket (the Admin UI's
//! development mode). Both are interfaces this layer owns; `admin_ui` implements them.
//!
//! Invariants: a packet for the internal namespace never reaches an upstream or a server link
//! (and an internal socket's connect and disconnect are not reported to them); an internal
//! namespace keeps no recovery log; without an internal namespace or an observer, the packet
//! path costs one `OnceLock` load each.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Map, Value};
use socketio_hub_protocol::socket::{Packet, PacketType};

use super::connect::PreparedConnect;
use super::packet::{self, Args};
use super::socket::Socket;
use super::{sio, Hub};
use crate::engine::{Conn, Delivery};
use crate::ids::{Room, SocketId};

/// A namespace whose sockets the hub serves itself, without the application.
pub trait InternalNamespace: Send + Sync + 'static {
    /// Its name (`/admin`).
    fn name(&self) -> &str;
    /// A client asks to join it with `auth`: refuse with `Hub::reject` or register with
    /// `Hub::admit_internal`.
    fn connect(&self, hub: &Arc<Hub>, conn: &Arc<Conn>, auth: Map<String, Value>);
    /// An event from one of its sockets.
    fn event(&self, hub: &Arc<Hub>, socket: &Arc<Socket>, event: &str, args: Args);
}

/// Sees every socket of the other namespaces come and go, change rooms and send events.
/// Called on the packet path, possibly under a namespace's room lock: an implementation only
/// queues, never emits or blocks.
pub trait SocketObserver: Send + Sync + 'static {
    /// `socket` was registered (its CONNECT reply queued).
    fn connected(&self, socket: &Arc<Socket>);
    /// `socket` left, for `reason`.
    fn disconnected(&self, socket: &Socket, reason: &str);
    /// The socket `id` of namespace `ns` joined (`joined`) or left `rooms`.
    fn rooms(&self, ns: &str, id: &SocketId, rooms: &[Room], joined: bool);
    /// `socket` sent `event(args)`.
    fn event(&self, socket: &Socket, event: &str, args: &[&serde_json::value::RawValue]);
}

impl Hub {
    /// The internal namespace `nsp` names, if it is one.
    pub(super) fn internal_for(&self, nsp: &str) -> Option<&Arc<dyn InternalNamespace>> {
        self.internal.get().filter(|i| i.name() == nsp)
    }

    /// Whether `name` is the internal namespace.
    pub fn is_internal(&self, name: &str) -> bool {
        self.internal_for(name).is_some()
    }

    /// A packet for the internal namespace (every dispatch mode).
    pub(super) fn internal_packet(
        self: &Arc<Self>,
        internal: &Arc<dyn InternalNamespace>,
        conn: &Arc<Conn>,
        packet: Packet<'_>,
        attachments: Vec<Bytes>,
    ) {
        match packet.kind {
            PacketType::Connect => {
                let auth = match packet.connect_auth() {
                    Ok(a) => a.unwrap_or_default(),
                    Err(e) => return self.protocol_error(conn, &e.to_string()),
                };
                internal.connect(self, conn, auth);
            }
            PacketType::Disconnect => {
                if let Some(s) = sio(conn).socket(packet.nsp) {
                    self.remove_socket(&s, "client namespace disconnect", false);
                }
            }
            PacketType::Event | PacketType::BinaryEvent => {
                let Some(s) = sio(conn).socket(packet.nsp) else {
                    self.metrics.events_dropped.with_label_values(&["unknown_namespace"]).inc();
                    return;
                };
                match packet.event() {
                    Ok(ev) => {
                        self.metrics.events_in.inc();
                        internal.event(self, &s, &ev.name, Args::from_raw(&ev.args, attachments));
                    }
                    Err(e) => self.protocol_error(conn, &e.to_string()),
                }
            }
            // The hub asks its internal sockets for no acks.
            PacketType::Ack | PacketType::BinaryAck => {
                self.metrics.events_dropped.with_label_values(&["unexpected_ack"]).inc();
            }
            PacketType::ConnectError => self.protocol_error(conn, "client sent CONNECT_ERROR"),
        }
    }

    /// Register a socket of the internal namespace `nsp` on `conn` (the internal namespace
    /// decided to accept it) and queue its CONNECT reply. `None` when the session closed,
    /// already joined `nsp`, or is at its namespaces limit (refused with CONNECT_ERROR).
    pub fn admit_internal(&self, conn: &Arc<Conn>, nsp: &str) -> Option<Arc<Socket>> {
        if sio(conn).socket(nsp).is_some() {
            return None;
        }
        if let Some(hit) =
            self.engine.limits().and_then(|l| l.check_namespaces(sio(conn).sockets().len()).err())
        {
            let data = serde_json::json!({ "reason": hit.label() });
            self.reject(conn, nsp, "limit", &hit.to_string(), Some(&data));
            return None;
        }
        // The internal namespace is exempt from `limits.namespaces`: always there.
        let ns = self.namespace(nsp)?;
        let prep = PreparedConnect::internal(nsp, SocketId::new(self.engine.tag), ns);
        self.admit(conn, prep, Vec::new())
    }

    /// Send `event(args)` to one socket (closing its session if it is too slow).
    pub fn emit_to(&self, socket: &Arc<Socket>, event: &str, args: &Args) -> bool {
        self.send_to(socket, &packet::event(&socket.ns.name, None, event, args, None), Delivery::Reliable)
    }
}
