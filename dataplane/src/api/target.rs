//! Which sockets a request is about: `namespace`, `rooms`, `exceptRooms`, `sockets` — the
//! selector shared by emit and the `sockets/*` routes.
//!
//! `sockets` are socket ids and behave like rooms (a socket's id is its own room), so they are
//! merged into the selector's rooms; no rooms and no sockets means the whole namespace. Looking
//! the namespace up never creates it: a namespace nobody joined on this node simply selects
//! nothing, and only a namespace the configuration does not serve is unknown (404).

use std::sync::Arc;

use super::error::ApiError;
use super::fields::Fields;
use crate::ids::{Room, SocketId};
use crate::state::{Hub, Namespace, Selector};

/// Most entries in each of `rooms`, `exceptRooms`, `sockets`.
pub const MAX_LIST: usize = 1024;
/// Longest namespace or room name, in bytes.
pub const MAX_NAME: usize = 256;

/// A parsed selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The namespace (`/` when not given).
    pub namespace: String,
    /// The sockets selected in it.
    pub selector: Selector,
}

impl Target {
    /// Take the selection fields from a body.
    pub fn take(f: &mut Fields) -> Result<Self, ApiError> {
        let namespace = namespace(f.optional::<String>("namespace")?)?;
        let mut rooms = room_list(f.list("rooms", MAX_LIST)?, "rooms")?;
        let except_rooms = room_list(f.list("exceptRooms", MAX_LIST)?, "exceptRooms")?;
        let sockets: Vec<String> = f.list("sockets", MAX_LIST)?;
        for (i, s) in sockets.iter().enumerate() {
            if SocketId::parse(s).is_none() {
                return Err(ApiError::field(format!("sockets[{i}]"), format!("{s:?} is not a socket id")));
            }
            rooms.push(Room::from(s.as_str()));
        }
        Ok(Target { namespace, selector: Selector { rooms, except_rooms, except_socket: None } })
    }

    /// The namespace on this node: `Ok(None)` when it is served but nobody joined it here.
    pub fn resolve(&self, hub: &Hub) -> Result<Option<Arc<Namespace>>, ApiError> {
        lookup(hub, &self.namespace)
    }
}

/// Look a namespace up without creating it.
pub fn lookup(hub: &Hub, name: &str) -> Result<Option<Arc<Namespace>>, ApiError> {
    if !hub.namespace_allowed(name) {
        return Err(ApiError::UnknownNamespace(name.to_string()));
    }
    Ok(hub.existing_namespace(name))
}

/// Validate a namespace name (`/` when absent).
pub fn namespace(name: Option<String>) -> Result<String, ApiError> {
    let name = name.unwrap_or_else(|| "/".into());
    if !name.starts_with('/') || name.len() > MAX_NAME {
        return Err(ApiError::field(
            "namespace",
            format!("{name:?} is not a namespace (it starts with \"/\" and has at most {MAX_NAME} bytes)"),
        ));
    }
    Ok(name)
}

fn room_list(names: Vec<String>, field: &str) -> Result<Vec<Room>, ApiError> {
    names
        .into_iter()
        .enumerate()
        .map(|(i, n)| {
            if n.is_empty() || n.len() > MAX_NAME {
                Err(ApiError::field(
                    format!("{field}[{i}]"),
                    format!("a room name has 1 to {MAX_NAME} bytes"),
                ))
            } else {
                Ok(Room::from(n))
            }
        })
        .collect()
}

/// Rooms sockets are to join or leave (`join` / `leave`): 1 to `MAX_LIST` public room names.
/// Socket-id-shaped names are refused: a socket joined to another's id room would take that
/// room over in the index and receive its direct messages.
pub fn rooms_to_change(names: Vec<String>, field: &'static str) -> Result<Vec<Room>, ApiError> {
    if names.is_empty() {
        return Err(ApiError::field(field, "give at least one room"));
    }
    names
        .into_iter()
        .enumerate()
        .map(|(i, n)| {
            if Namespace::is_public_room_name(&n) {
                Ok(Room::from(n))
            } else {
                Err(ApiError::field(
                    format!("{field}[{i}]"),
                    format!("{n:?} cannot be joined: a room name has 1 to {MAX_NAME} bytes and must not look like a socket id"),
                ))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(body: &str) -> Result<Target, ApiError> {
        let mut f = Fields::parse(body.as_bytes()).unwrap();
        let t = Target::take(&mut f)?;
        f.finish()?;
        Ok(t)
    }

    #[test]
    fn defaults_to_the_whole_main_namespace() {
        let t = take("{}").unwrap();
        assert_eq!(t.namespace, "/");
        assert_eq!(t.selector, Selector::default());
    }

    #[test]
    fn sockets_act_as_rooms() {
        let id = "AAAAbbbbccccddddeeee";
        let t =
            take(&format!(r#"{{"namespace":"/chat","rooms":["a"],"exceptRooms":["b"],"sockets":["{id}"]}}"#))
                .unwrap();
        assert_eq!(t.namespace, "/chat");
        assert_eq!(t.selector.rooms, vec![Room::from("a"), Room::from(id)]);
        assert_eq!(t.selector.except_rooms, vec![Room::from("b")]);
    }

    #[test]
    fn refuses_bad_selections() {
        let msg = |b: &str| take(b).unwrap_err().to_string();
        assert!(msg(r#"{"namespace":"chat"}"#).starts_with("namespace: \"chat\" is not a namespace"));
        assert_eq!(msg(r#"{"rooms":["a",""]}"#), "rooms[1]: a room name has 1 to 256 bytes");
        assert_eq!(msg(r#"{"sockets":["nope"]}"#), "sockets[0]: \"nope\" is not a socket id");
        assert_eq!(
            msg(r#"{"exceptRooms":"x"}"#),
            "exceptRooms: invalid type: string \"x\", expected a sequence"
        );
        let many = format!(r#"{{"rooms":{}}}"#, serde_json::to_string(&vec!["r"; MAX_LIST + 1]).unwrap());
        assert_eq!(msg(&many), "rooms: at most 1024 items, got 1025");
    }

    #[test]
    fn rooms_to_change_must_be_public_names() {
        assert_eq!(rooms_to_change(vec!["a".into()], "join").unwrap(), vec![Room::from("a")]);
        assert_eq!(rooms_to_change(vec![], "join").unwrap_err().to_string(), "join: give at least one room");
        let e = rooms_to_change(vec!["ok".into(), "AAAAbbbbccccddddeeee".into()], "leave").unwrap_err();
        assert!(e.to_string().starts_with("leave[1]: \"AAAAbbbbccccddddeeee\" cannot be joined"));
    }
}
