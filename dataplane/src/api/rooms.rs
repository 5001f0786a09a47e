//! `GET /api/v1/rooms?namespace=/` and `GET /api/v1/namespaces`: what exists on this node.
//!
//! Rooms are the named rooms with at least one member (a socket's own id room is not listed);
//! namespaces are those that have had sockets since the node started, with their current
//! socket counts.

use serde_json::json;
use warp::http::StatusCode;

use super::error::ApiError;
use super::fields::Fields;
use super::target::{self, lookup};
use super::{json_response, Response};
use crate::state::Hub;

/// Parse the `rooms` query: an optional `namespace` (default `/`).
pub fn parse_rooms_query(mut q: Fields) -> Result<String, ApiError> {
    let ns = target::namespace(q.optional("namespace")?)?;
    q.finish()?;
    Ok(ns)
}

/// Serve `GET /rooms`.
pub fn rooms(hub: &Hub, query: Fields) -> Result<Response, ApiError> {
    let name = parse_rooms_query(query)?;
    let rooms: Vec<_> = lookup(hub, &name)?
        .map(|ns| ns.rooms_summary())
        .unwrap_or_default()
        .into_iter()
        .map(|(room, size)| json!({ "name": &*room, "size": size }))
        .collect();
    Ok(json_response(StatusCode::OK, &json!({ "rooms": rooms })))
}

/// Serve `GET /namespaces`.
pub fn namespaces(hub: &Hub, query: Fields) -> Result<Response, ApiError> {
    query.finish()?;
    let mut list: Vec<(String, usize)> =
        hub.namespaces.iter().map(|e| (e.key().to_string(), e.value().sockets.len())).collect();
    list.sort();
    let list: Vec<_> =
        list.into_iter().map(|(name, sockets)| json!({ "name": name, "sockets": sockets })).collect();
    Ok(json_response(StatusCode::OK, &json!({ "namespaces": list })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::query;

    #[test]
    fn rooms_query() {
        assert_eq!(parse_rooms_query(query::parse("").unwrap()).unwrap(), "/");
        assert_eq!(parse_rooms_query(query::parse("namespace=%2Fchat").unwrap()).unwrap(), "/chat");
        assert!(parse_rooms_query(query::parse("namespace=chat").unwrap()).is_err());
        let e = parse_rooms_query(query::parse("ns=/").unwrap()).unwrap_err();
        assert_eq!(e.to_string(), "unknown field \"ns\"; expected one of: namespace");
    }
}
