//! Client permissions: the reserved `hub:` events that let clients join, leave and emit to
//! rooms by themselves when the configuration or their token grants it (like Web PubSub's
//! client roles). Nothing is allowed unless granted.
//!
//! - `hub:join` (room or [rooms], ack?) and `hub:leave` (same): need a `join` grant.
//! - `hub:to` (room or [rooms], event, ...args, ack?): broadcast to the rooms, excluding the
//!   sender (`socket.to(room).emit`); needs an `emit` grant for every room.
//!
//! The ack is `{"ok":true}` or `{"ok":false,"error":"…"}`.

use std::sync::Arc;

use serde_json::value::RawValue;
use serde_json::Value;
use socketio_hub_config::pattern_matches;

use super::namespace::{Namespace, Selector};
use super::packet::{self, Args};
use super::socket::Socket;
use super::Hub;
use crate::engine::Delivery;
use crate::ids::Room;

#[derive(Clone, Copy)]
enum Grant {
    Join,
    Emit,
}

fn granted(socket: &Socket, grant: Grant, room: &str) -> bool {
    let (from_config, claim) = match grant {
        Grant::Join => (&socket.ns.join_grants, "sio.join"),
        Grant::Emit => (&socket.ns.emit_grants, "sio.emit"),
    };
    let by_config = from_config.iter().any(|p| pattern_matches(p, room));
    let by_token = socket
        .claims
        .as_ref()
        .and_then(|c| c.get(claim))
        .and_then(Value::as_array)
        .is_some_and(|ps| ps.iter().filter_map(Value::as_str).any(|p| pattern_matches(p, room)));
    by_config || by_token
}

fn rooms_arg(raw: Option<&&RawValue>) -> Result<Vec<Room>, String> {
    let raw = raw.ok_or("missing room")?;
    let value: Value = serde_json::from_str(raw.get()).map_err(|_| "invalid room")?;
    let names: Vec<&str> = match &value {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => {
            items.iter().map(|v| v.as_str().ok_or("room names must be strings")).collect::<Result<_, _>>()?
        }
        _ => return Err("room must be a string or an array of strings".into()),
    };
    if names.is_empty() || names.len() > 64 {
        return Err("between 1 and 64 rooms".into());
    }
    names.into_iter().map(|n| Ok(Room::from(n))).collect()
}

impl Hub {
    pub(super) fn on_hub_event(
        self: &Arc<Self>,
        socket: &Arc<Socket>,
        verb: &str,
        args: Args,
        ack: Option<u64>,
    ) {
        let result = self.hub_event(socket, verb, &args);
        let label = if result.is_ok() { "ok" } else { "denied" };
        self.metrics.client_commands.with_label_values(&[label]).inc();
        if let Err(e) = &result {
            tracing::debug!(socket = %socket.id, verb, error = %e, "client command refused");
        }
        if let Some(id) = ack {
            let body = match result {
                Ok(()) => serde_json::json!([{ "ok": true }]),
                Err(e) => serde_json::json!([{ "ok": false, "error": e }]),
            };
            let reply = Args { json: body.to_string(), attachments: Vec::new() };
            self.send_to(socket, &packet::ack(&socket.ns.name, id, &reply), Delivery::Reliable);
        }
    }

    fn hub_event(self: &Arc<Self>, socket: &Arc<Socket>, verb: &str, args: &Args) -> Result<(), String> {
        if let Some(why) = self.unavailable() {
            return Err(why.into());
        }
        let items: Vec<&RawValue> = serde_json::from_str(&args.json).map_err(|_| "invalid arguments")?;
        let ns = &socket.ns;
        match verb {
            "join" | "leave" => {
                let rooms = rooms_arg(items.first())?;
                for room in &rooms {
                    if !Namespace::is_public_room_name(room) {
                        return Err(format!("invalid room name {room:?}"));
                    }
                    if !granted(socket, Grant::Join, room) {
                        return Err(format!("not permitted to join room {room:?}"));
                    }
                }
                match verb {
                    "join" => ns.try_join(socket, &rooms).map_err(|hit| hit.to_string())?,
                    _ => ns.leave(socket, &rooms),
                }
                Ok(())
            }
            "to" => {
                let rooms = rooms_arg(items.first())?;
                if let Some(room) = rooms.iter().find(|r| !granted(socket, Grant::Emit, r)) {
                    return Err(format!("not permitted to emit to room {room:?}"));
                }
                let event: String = items
                    .get(1)
                    .and_then(|e| serde_json::from_str(e.get()).ok())
                    .ok_or("missing event name (a string)")?;
                if event.starts_with("hub:") {
                    return Err("cannot emit reserved hub: events".into());
                }
                let rest = Args::from_raw(&items[2..], args.attachments.clone());
                let sel =
                    Selector { rooms, except_rooms: Vec::new(), except_socket: Some(socket.id.clone()) };
                self.emit(ns, &sel, &event, &rest, Delivery::Reliable, None);
                Ok(())
            }
            other => Err(format!("unknown hub command {other:?}")),
        }
    }
}
