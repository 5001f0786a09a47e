//! Packets from clients: Engine.IO packets in, Socket.IO dispatch, binary reassembly.

use std::sync::Arc;

use bytes::Bytes;
use socketio_hub_protocol::socket::{self, PacketType};

use super::app::{Dispatch, EventCall};
use super::packet::{self, Args};
use super::socket::Socket;
use super::{sio, Hub, PartialBinary};
use crate::engine::{CloseReason, Conn, Delivery};

/// Disconnect reasons after which connection state recovery keeps the socket's state.
const RECOVERABLE: &[&str] = &[
    "transport error",
    "transport close",
    "forced close",
    "ping timeout",
    "server shutting down",
    "parse error",
];

impl Hub {
    pub(crate) fn protocol_error(&self, conn: &Arc<Conn>, what: &str) {
        tracing::debug!(sid = %conn.sid, what, "protocol error; closing session");
        self.metrics.bad_input.with_label_values(&["socketio"]).inc();
        self.close_conn(conn, CloseReason::ParseError);
    }

    pub(super) fn on_socketio_text(self: &Arc<Self>, conn: &Arc<Conn>, text: &str) {
        if sio(conn).partial.lock().is_some() {
            return self.protocol_error(conn, "text packet while binary attachments were pending");
        }
        let packet = match socket::decode(text, self.config.socketio.max_attachments) {
            Ok(p) => p,
            Err(e) => return self.protocol_error(conn, &e.to_string()),
        };
        if packet.kind.is_binary() && packet.attachments > 0 {
            *sio(conn).partial.lock() = Some(PartialBinary {
                text: text.to_string(),
                attachments: Vec::new(),
                expected: packet.attachments,
            });
            return;
        }
        self.dispatch(conn, text, packet, Vec::new());
    }

    pub(super) fn on_socketio_binary(self: &Arc<Self>, conn: &Arc<Conn>, data: Bytes) {
        let complete = {
            let mut partial = sio(conn).partial.lock();
            let Some(p) = partial.as_mut() else {
                drop(partial);
                return self.protocol_error(conn, "binary message with no packet expecting it");
            };
            p.attachments.push(data);
            if p.attachments.len() < p.expected {
                return;
            }
            partial.take()
        };
        if let Some(p) = complete {
            // The text decoded before it was stored, with the same limit.
            match socket::decode(&p.text, self.config.socketio.max_attachments) {
                Ok(packet) => self.dispatch(conn, &p.text, packet, p.attachments),
                Err(e) => self.protocol_error(conn, &e.to_string()),
            }
        }
    }

    fn dispatch(
        self: &Arc<Self>,
        conn: &Arc<Conn>,
        text: &str,
        packet: socket::Packet<'_>,
        attachments: Vec<Bytes>,
    ) {
        // The namespace the hub serves itself (the Admin UI's), in every dispatch mode.
        if let Some(internal) = self.internal_for(packet.nsp) {
            return self.internal_packet(&internal.clone(), conn, packet, attachments);
        }
        if let (Some(o), PacketType::Event | PacketType::BinaryEvent) = (self.observer.get(), packet.kind) {
            if let (Some(s), Ok(ev)) = (sio(conn).socket(packet.nsp), packet.event()) {
                o.event(&s, &ev.name, &ev.args);
            }
        }
        // Link mode: the application's own Socket.IO server handles the packet; the hub only
        // routes it (and keeps its room index from the application's answers).
        if let Dispatch::Link(router) = &self.dispatch {
            return router.client_packet(self, conn, text, &packet, attachments);
        }
        match packet.kind {
            PacketType::Connect => {
                let auth = match packet.connect_auth() {
                    Ok(a) => a.unwrap_or_default(),
                    Err(e) => return self.protocol_error(conn, &e.to_string()),
                };
                self.clone().spawn_connect(conn.clone(), packet.nsp.to_string(), auth);
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
                let ev = match packet.event() {
                    Ok(ev) => ev,
                    Err(e) => return self.protocol_error(conn, &e.to_string()),
                };
                let args = Args::from_raw(&ev.args, attachments);
                self.on_event(&s, &ev.name, args, packet.id);
            }
            PacketType::Ack | PacketType::BinaryAck => {
                let (Some(s), Some(id)) = (sio(conn).socket(packet.nsp), packet.id) else {
                    self.metrics.events_dropped.with_label_values(&["unexpected_ack"]).inc();
                    return;
                };
                match packet.ack_args() {
                    Ok(items) => {
                        if !s.on_ack(id, Args::from_raw(&items, attachments)) {
                            self.metrics.events_dropped.with_label_values(&["unexpected_ack"]).inc();
                        }
                    }
                    Err(e) => self.protocol_error(conn, &e.to_string()),
                }
            }
            PacketType::ConnectError => self.protocol_error(conn, "client sent CONNECT_ERROR"),
        }
    }

    fn on_event(self: &Arc<Self>, socket: &Arc<Socket>, name: &str, args: Args, ack: Option<u64>) {
        self.metrics.events_in.inc();
        if let Some(verb) = name.strip_prefix("hub:") {
            return self.on_hub_event(socket, verb, args, ack);
        }
        let Some(upstream) = self.upstream() else { return };
        let call = EventCall { socket: socket.clone(), event: name.to_string(), args, ack: ack.is_some() };
        let fut = upstream.event(call);
        let (hub, s) = (self.clone(), socket.clone());
        socket.enqueue_upstream(async move {
            let reply = fut.await;
            if let (Some(id), Some(args)) = (ack, reply) {
                hub.send_to(&s, &packet::ack(&s.ns.name, id, &args), Delivery::Reliable);
            }
        });
    }

    /// Queue frames for one socket, closing its session if it is too slow.
    pub fn send_to(&self, socket: &Arc<Socket>, frames: &packet::Outgoing, delivery: Delivery) -> bool {
        match socket.send(frames, delivery) {
            Ok(sent) => {
                self.metrics.packets_out.inc();
                sent == super::socket::Sent::Queued
            }
            Err(reason) => {
                self.close_conn(&socket.conn, reason);
                false
            }
        }
    }

    /// Remove a socket from its namespace and rooms, and tell the upstream.
    pub fn remove_socket(&self, socket: &Arc<Socket>, reason: &'static str, recoverable: bool) {
        let ns = &socket.ns;
        // Only this socket's own entry: a recovered socket that took over its id (the client
        // came back before its old session timed out) is not the one leaving.
        if ns.sockets.remove_if(&socket.id, |_, s| Arc::ptr_eq(s, socket)).is_none() {
            sio(&socket.conn).sockets.lock().retain(|s| !Arc::ptr_eq(s, socket));
            return;
        }
        if let Some(pid) = &socket.pid {
            ns.by_pid.remove_if(pid, |_, s| Arc::ptr_eq(s, socket));
        }
        let rooms = ns.leave_all(socket);
        socket.clear_acks();
        if let (Some(rec), Some(pid)) = (&ns.recovery, &socket.pid) {
            // A fenced node's clients recover on the majority side, not here.
            let keep = recoverable && RECOVERABLE.contains(&reason) && !self.engine.is_fenced();
            if keep {
                rec.save(pid, socket.id.clone(), rooms);
            }
            if let Some(peers) = self.peers.get() {
                peers.session_gone(&ns.name, pid, keep);
            }
        }
        sio(&socket.conn).sockets.lock().retain(|s| !Arc::ptr_eq(s, socket));
        self.metrics.sockets.dec();
        if ns.internal {
            return;
        }
        if let Some(o) = self.observer.get() {
            o.disconnected(socket, reason);
        }
        match &self.dispatch {
            Dispatch::App(upstream) => socket.enqueue_upstream(upstream.disconnected(socket.clone(), reason)),
            // A closing session is reported once, by `session_closed`.
            Dispatch::Link(router) if socket.conn.closed().is_none() => router.socket_removed(socket, reason),
            Dispatch::Link(_) => {}
        }
    }

    /// Retire a socket whose client came back elsewhere under the same recovery id (its
    /// transport is dead, not yet timed out): it leaves, not kept for recovery, and its session
    /// closes when nothing else is on it.
    pub fn retire_socket(&self, socket: &Arc<Socket>) {
        self.remove_socket(socket, "transport close", false);
        if sio(&socket.conn).sockets.lock().is_empty() {
            self.close_conn(&socket.conn, CloseReason::ForcedClose);
        }
    }

    /// Server-side disconnect of one socket (REST or app); with `close`, the whole session.
    pub fn disconnect_socket(&self, socket: &Arc<Socket>, close: bool) {
        self.send_to(socket, &packet::disconnect(&socket.ns.name), Delivery::Reliable);
        self.remove_socket(socket, "server namespace disconnect", false);
        if close {
            self.close_conn(&socket.conn, CloseReason::ForcedClose);
        }
    }
}
