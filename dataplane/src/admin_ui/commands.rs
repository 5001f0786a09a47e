//! The Admin UI's commands, translated into the cluster-wide operations (`crate::ops`):
//!
//! - `emit(nsp, filter?, event, ...args)` → `Ops::emit` to the namespace, or to the room or
//!   socket id `filter`;
//! - `join(nsp, room, filter?)` / `leave(nsp, room, filter?)` → `Ops::join` / `Ops::leave`;
//! - `_disconnect(nsp, close, filter?)` → `Ops::disconnect` (with `close`, whole sessions).
//!
//! The UI sends them without acks; a refused command is logged and counted.

use serde_json::value::RawValue;
use serde_json::Value;

use crate::engine::Delivery;
use crate::ids::Room;
use crate::state::{Args, Namespace, Selector};

/// A parsed UI command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Emit `event(args)` to `sel` in `nsp`.
    Emit {
        /// Namespace.
        nsp: String,
        /// Target sockets.
        sel: Selector,
        /// Event name.
        event: String,
        /// Arguments.
        args: Args,
    },
    /// Make `sel` in `nsp` join (`join`) or leave `room`.
    Rooms {
        /// Namespace.
        nsp: String,
        /// Target sockets.
        sel: Selector,
        /// The room.
        room: Room,
        /// Join, else leave.
        join: bool,
    },
    /// Disconnect `sel` in `nsp`; with `close`, their sessions.
    Disconnect {
        /// Namespace.
        nsp: String,
        /// Target sockets.
        sel: Selector,
        /// Close the sessions too.
        close: bool,
    },
}

impl Command {
    /// The metric label of a command name (fixed set).
    pub fn label(name: &str) -> &'static str {
        match name {
            "emit" => "emit",
            "join" => "join",
            "leave" => "leave",
            "_disconnect" => "disconnect",
            _ => "unknown",
        }
    }

    /// Parse the UI's `name(args)`.
    pub fn parse(name: &str, args: &Args) -> Result<Command, String> {
        let items: Vec<&RawValue> = serde_json::from_str(&args.json).map_err(|_| "invalid arguments")?;
        let value =
            |i: usize| -> Option<Value> { items.get(i).and_then(|r| serde_json::from_str(r.get()).ok()) };
        let nsp = match value(0) {
            Some(Value::String(n)) if n.starts_with('/') && n.len() <= 256 => n,
            _ => return Err("the first argument must be a namespace like \"/\"".into()),
        };
        let filter = |i: usize| -> Result<Selector, String> {
            match value(i) {
                None | Some(Value::Null) => Ok(Selector::default()),
                Some(Value::String(f)) if !f.is_empty() && f.len() <= 256 => {
                    Ok(Selector::rooms(vec![Room::from(f)]))
                }
                Some(Value::String(f)) if f.is_empty() => Ok(Selector::default()),
                _ => Err(format!("argument {} must be a room or socket id", i + 1)),
            }
        };
        match name {
            "emit" => {
                let sel = filter(1)?;
                let event = match value(2) {
                    Some(Value::String(e)) if !e.is_empty() && e.len() <= 256 => e,
                    _ => return Err("the third argument must be an event name".into()),
                };
                let rest = items.get(3..).unwrap_or(&[]);
                Ok(Command::Emit { nsp, sel, event, args: Args::from_raw(rest, args.attachments.clone()) })
            }
            "join" | "leave" => {
                let room = match value(1) {
                    Some(Value::String(r)) if !r.is_empty() && r.len() <= 256 => r,
                    _ => return Err("the second argument must be a room name".into()),
                };
                let join = name == "join";
                // A socket id room is that socket's private room: joining it would let another
                // socket read its direct messages.
                if join && !Namespace::is_public_room_name(&room) {
                    return Err(format!("cannot join {room:?}, a socket's own room"));
                }
                Ok(Command::Rooms { nsp, sel: filter(2)?, room: Room::from(room), join })
            }
            "_disconnect" => {
                let close = match value(1) {
                    Some(Value::Bool(b)) => b,
                    None | Some(Value::Null) => false,
                    _ => return Err("the second argument must be true or false".into()),
                };
                Ok(Command::Disconnect { nsp, sel: filter(2)?, close })
            }
            other => Err(format!("unknown command {other:?}")),
        }
    }

    /// Run the command on every node (applied here and sent to the peers before this
    /// returns; the peers' answers are collected in a task, for the log).
    pub fn run(self, ops: &crate::ops::Ops) {
        match self {
            Command::Emit { nsp, sel, event, args } => {
                ops.emit(&nsp, &sel, &event, &args, Delivery::Reliable);
            }
            Command::Rooms { nsp, sel, room, join } => {
                if join {
                    let done = ops.join(&nsp, &sel, vec![room]);
                    tokio::spawn(async move {
                        let r = done.await;
                        let (sockets, refused) = (r.value.joined, r.value.refused.len());
                        tracing::debug!(nsp, sockets, refused, missing = ?r.missing_names(), "admin ui join");
                    });
                } else {
                    let done = ops.leave(&nsp, &sel, vec![room]);
                    tokio::spawn(async move {
                        let r = done.await;
                        tracing::debug!(nsp, sockets = r.value, missing = ?r.missing_names(), "admin ui leave");
                    });
                }
            }
            Command::Disconnect { nsp, sel, close } => {
                let done = ops.disconnect(&nsp, &sel, close);
                tokio::spawn(async move {
                    let r = done.await;
                    tracing::debug!(nsp, close, sockets = r.value, missing = ?r.missing_names(), "admin ui disconnect");
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(json: &str) -> Args {
        Args { json: json.into(), attachments: Vec::new() }
    }

    #[test]
    fn the_ui_commands_parse() {
        let c = Command::parse("emit", &args(r#"["/chat","room1","hello",1,{"a":2}]"#)).unwrap();
        assert_eq!(
            c,
            Command::Emit {
                nsp: "/chat".into(),
                sel: Selector::rooms(vec![Room::from("room1")]),
                event: "hello".into(),
                args: args(r#"[1,{"a":2}]"#),
            }
        );
        let c = Command::parse("emit", &args(r#"["/",null,"ping"]"#)).unwrap();
        assert!(
            matches!(c, Command::Emit { sel, args, .. } if sel == Selector::default() && args.json == "[]")
        );
        let c = Command::parse("join", &args(r#"["/","vip","Xa1bXa1bXa1bXa1bXa1b"]"#)).unwrap();
        assert!(matches!(c, Command::Rooms { join: true, ref room, .. } if &**room == "vip"));
        let c = Command::parse("leave", &args(r#"["/","vip"]"#)).unwrap();
        assert!(matches!(c, Command::Rooms { join: false, ref sel, .. } if *sel == Selector::default()));
        let c = Command::parse("_disconnect", &args(r#"["/",true,"room1"]"#)).unwrap();
        assert!(matches!(c, Command::Disconnect { close: true, .. }));
    }

    #[test]
    fn bad_commands_are_refused_with_a_reason() {
        for (name, json, needle) in [
            ("emit", r#"[]"#, "namespace"),
            ("emit", r#"["chat",null,"x"]"#, "namespace"),
            ("emit", r#"["/",null]"#, "event name"),
            ("emit", r#"["/",5,"x"]"#, "room or socket id"),
            ("join", r#"["/"]"#, "room name"),
            ("_disconnect", r#"["/","yes"]"#, "true or false"),
            ("fetch", r#"["/"]"#, "unknown command"),
            ("emit", "not json", "invalid arguments"),
        ] {
            let e = Command::parse(name, &args(json)).unwrap_err();
            assert!(e.contains(needle), "{name} {json}: {e}");
        }
    }
}
