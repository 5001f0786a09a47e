//! Development mode: the socket list (`all_sockets`) and the live events the UI's socket,
//! room and event views are built from (`socket_connected`, `socket_disconnected`,
//! `room_joined`, `room_left`, `event_received`).
//!
//! Each node reports what happens to its own sockets: the `SocketObserver` hooks only queue
//! (bounded, drops counted), and one task emits each event to the admin namespace of every node
//! through `Ops::emit`. That is a cluster broadcast per event — why this mode is opt-in.

use std::sync::Arc;

use serde_json::value::RawValue;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::ids::{Room, SocketId};
use crate::metrics::Metrics;
use crate::ops::Ops;
use crate::state::{Args, Hub, Selector, Socket, SocketInfo, SocketObserver};

/// Development events waiting to be broadcast, at most.
const QUEUE: usize = 8192;

/// One event for the admin namespace.
pub struct DevEvent {
    name: &'static str,
    args: Value,
}

/// Queues what happens to sockets for the broadcaster (`SocketObserver`).
pub struct Observer {
    admin_ns: String,
    tx: mpsc::Sender<DevEvent>,
    metrics: Arc<Metrics>,
}

fn now() -> String {
    crate::clock::rfc3339(crate::clock::since_epoch())
}

/// The part of a handshake the UI shows (no `auth`, no token claims).
fn ui_handshake(mut hs: Value) -> Value {
    if let Some(o) = hs.as_object_mut() {
        o.remove("auth");
        o.remove("claims");
    }
    hs
}

/// A client id for the UI's client view: a prefix of the session id, as the reference server
/// shows (enough to group sockets, not enough to take over a polling session).
fn client_id(sid: &str) -> String {
    sid.chars().take(12).collect()
}

/// The UI's `SerializedSocket` of a local socket.
pub fn serialize_local(socket: &Socket) -> Value {
    json!({
        "id": socket.id.as_str(),
        "clientId": client_id(socket.conn.sid.as_str()),
        "transport": socket.conn.transport().as_str(),
        "nsp": &*socket.ns.name,
        "data": {},
        "handshake": ui_handshake(socket.handshake_json()),
        "rooms": socket.rooms(),
    })
}

/// The UI's `SerializedSocket` of a fetched (possibly remote) socket; the transport is known
/// only for this node's sockets.
pub fn serialize_fetched(hub: &Hub, info: &SocketInfo) -> Value {
    let local = hub.existing_namespace(&info.namespace).and_then(|ns| {
        SocketId::parse(&info.id).and_then(|id| ns.sockets.get(&id).map(|s| s.conn.transport().as_str()))
    });
    json!({
        "id": info.id,
        "clientId": client_id(&info.sid),
        "transport": local.unwrap_or(""),
        "nsp": info.namespace,
        "data": {},
        "handshake": ui_handshake(serde_json::from_str(&info.handshake).unwrap_or(Value::Null)),
        "rooms": info.rooms,
    })
}

impl Observer {
    /// An observer for `admin_ns` and the receiver its broadcaster drains.
    pub fn new(admin_ns: &str, metrics: Arc<Metrics>) -> (Arc<Observer>, mpsc::Receiver<DevEvent>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (Arc::new(Observer { admin_ns: admin_ns.to_string(), tx, metrics }), rx)
    }

    fn queue(&self, name: &'static str, args: Value) {
        if self.tx.try_send(DevEvent { name, args }).is_err() {
            self.metrics.admin_ui_events_dropped.inc();
        }
    }
}

impl SocketObserver for Observer {
    fn connected(&self, socket: &Arc<Socket>) {
        self.queue("socket_connected", json!([serialize_local(socket), now()]));
    }

    fn disconnected(&self, socket: &Socket, reason: &str) {
        self.queue("socket_disconnected", json!([&*socket.ns.name, socket.id.as_str(), reason, now()]));
    }

    fn rooms(&self, ns: &str, id: &SocketId, rooms: &[Room], joined: bool) {
        let name = if joined { "room_joined" } else { "room_left" };
        let at = now();
        for room in rooms {
            self.queue(name, json!([ns, &**room, id.as_str(), at]));
        }
    }

    fn event(&self, socket: &Socket, event: &str, args: &[&RawValue]) {
        if *socket.ns.name == *self.admin_ns {
            return;
        }
        let mut all: Vec<Value> = vec![Value::from(event)];
        all.extend(args.iter().map(|a| serde_json::from_str(a.get()).unwrap_or(Value::Null)));
        self.queue("event_received", json!([&*socket.ns.name, socket.id.as_str(), all, now()]));
    }
}

/// Broadcast queued events to the admin sockets of every node, in order, until the hub stops.
pub async fn broadcast(ops: Ops, admin_ns: String, mut rx: mpsc::Receiver<DevEvent>) {
    let everyone = Selector::default();
    while let Some(ev) = rx.recv().await {
        let args = Args { json: ev.args.to_string(), attachments: Vec::new() };
        ops.emit(&admin_ns, &everyone, ev.name, &args, crate::engine::Delivery::Reliable);
    }
}

/// Every socket of every namespace of the cluster (the admin namespace included, as the
/// reference server lists it), for `all_sockets`.
pub async fn all_sockets(ops: &Ops) -> Vec<Value> {
    let everyone = Selector::default();
    let fetches: Vec<_> = ops.namespaces().iter().map(|ns| ops.fetch(ns, &everyone)).collect();
    let mut out = Vec::new();
    for fetched in futures_util::future::join_all(fetches).await {
        if !fetched.missing.is_empty() {
            tracing::debug!(missing = ?fetched.missing_names(), "admin ui socket list is partial");
        }
        out.extend(fetched.value.iter().map(|info| serialize_fetched(&ops.hub, info)));
    }
    out
}
