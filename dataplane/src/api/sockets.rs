//! `POST /api/v1/sockets/{join,leave,disconnect,fetch}`: bulk operations on the sockets a
//! selector picks (socket.io's `socketsJoin`, `socketsLeave`, `disconnectSockets`,
//! `fetchSockets`).
//!
//! The selection is collected before acting, because joining, leaving and disconnecting take
//! the namespace's room lock that selection holds for reading.

use serde_json::{json, Value};
use warp::http::StatusCode;

use super::error::ApiError;
use super::fields::Fields;
use super::target::{rooms_to_change, Target, MAX_LIST};
use super::{json_response, Response};
use crate::ids::Room;
use crate::limits::LimitHit;
use crate::ops::{Joined, Ops, Partial};

/// Whether sockets join or leave rooms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// `POST /sockets/join` with `join: [...]`.
    Join,
    /// `POST /sockets/leave` with `leave: [...]`.
    Leave,
}

impl Change {
    fn field(self) -> &'static str {
        match self {
            Change::Join => "join",
            Change::Leave => "leave",
        }
    }
}

/// Parse a join or leave body: the selection and the rooms.
pub fn parse_change(body: &[u8], change: Change) -> Result<(Target, Vec<Room>), ApiError> {
    let mut f = Fields::parse(body)?;
    let target = Target::take(&mut f)?;
    let rooms = rooms_to_change(f.list(change.field(), MAX_LIST)?, change.field())?;
    f.finish()?;
    Ok((target, rooms))
}

/// Parse a disconnect body: the selection and `close` (end the whole connection, default false).
pub fn parse_disconnect(body: &[u8]) -> Result<(Target, bool), ApiError> {
    let mut f = Fields::parse(body)?;
    let target = Target::take(&mut f)?;
    let close = f.optional::<bool>("close")?.unwrap_or(false);
    f.finish()?;
    Ok((target, close))
}

/// Parse a fetch body: the selection.
pub fn parse_fetch(body: &[u8]) -> Result<Target, ApiError> {
    let mut f = Fields::parse(body)?;
    let target = Target::take(&mut f)?;
    f.finish()?;
    Ok(target)
}

fn matched(n: Partial<usize>) -> Response {
    json_response(StatusCode::OK, &with_missing(json!({ "matched": n.value }), n.missing_names()))
}

/// Add `missingNodes` (the nodes that did not answer in time) to an answer, when there are any.
pub fn with_missing(mut body: Value, missing: Vec<String>) -> Value {
    if !missing.is_empty() {
        body["missingNodes"] = json!(missing);
    }
    body
}

/// Serve `POST /sockets/join` or `/sockets/leave` (on every node of a cluster).
pub async fn change(ops: &Ops, body: &[u8], change: Change) -> Result<Response, ApiError> {
    let (target, rooms) = parse_change(body, change)?;
    target.resolve(&ops.hub)?;
    let (ns, sel) = (&target.namespace, &target.selector);
    match change {
        Change::Join => Ok(joined(ops.join(ns, sel, rooms).await)),
        Change::Leave => Ok(matched(ops.leave(ns, sel, rooms).await)),
    }
}

/// A join's answer: `matched` counts the sockets that joined; sockets the room limit refused
/// are listed under `refused` (absent when none was).
fn joined(j: Partial<Joined>) -> Response {
    let missing = j.missing_names();
    let mut body = json!({ "matched": j.value.joined });
    if !j.value.refused.is_empty() {
        body["refused"] = json!({
            "sockets": j.value.refused,
            "limit": j.value.limit,
            "error": LimitHit::RoomsPerSocket(j.value.limit).to_string(),
        });
    }
    json_response(StatusCode::OK, &with_missing(body, missing))
}

/// Serve `POST /sockets/disconnect` (on every node of a cluster).
pub async fn disconnect(ops: &Ops, body: &[u8]) -> Result<Response, ApiError> {
    let (target, close) = parse_disconnect(body)?;
    target.resolve(&ops.hub)?;
    Ok(matched(ops.disconnect(&target.namespace, &target.selector, close).await))
}

/// Serve `POST /sockets/fetch` (sockets of every node of a cluster, this node's first).
pub async fn fetch(ops: &Ops, body: &[u8]) -> Result<Response, ApiError> {
    let target = parse_fetch(body)?;
    target.resolve(&ops.hub)?;
    let fetched = ops.fetch(&target.namespace, &target.selector).await;
    let missing = fetched.missing_names();
    let sockets: Vec<Value> = fetched
        .value
        .into_iter()
        .map(|s| {
            json!({
                "id": s.id,
                "namespace": s.namespace,
                "rooms": s.rooms,
                "handshake": serde_json::from_str::<Value>(&s.handshake).unwrap_or(Value::Null),
                "recovered": s.recovered,
            })
        })
        .collect();
    Ok(json_response(StatusCode::OK, &with_missing(json!({ "sockets": sockets }), missing)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_join_and_leave() {
        let (t, rooms) = parse_change(br#"{"rooms":["src"],"join":["dst","x"]}"#, Change::Join).unwrap();
        assert_eq!(t.selector.rooms, vec![Room::from("src")]);
        assert_eq!(rooms, vec![Room::from("dst"), Room::from("x")]);
        let (_, rooms) = parse_change(br#"{"leave":["dst"]}"#, Change::Leave).unwrap();
        assert_eq!(rooms, vec![Room::from("dst")]);
        let e = parse_change(br#"{"rooms":["src"]}"#, Change::Join).unwrap_err();
        assert_eq!(e.to_string(), "join: give at least one room");
        let e = parse_change(br#"{"join":["a"]}"#, Change::Leave).unwrap_err();
        assert!(e.to_string().starts_with("leave: give at least one room"), "{e}");
    }

    #[test]
    fn parses_disconnect_and_fetch() {
        assert!(!parse_disconnect(b"{}").unwrap().1);
        assert!(parse_disconnect(br#"{"close":true}"#).unwrap().1);
        assert_eq!(
            parse_disconnect(br#"{"close":1}"#).unwrap_err().to_string(),
            "close: invalid type: integer `1`, expected a boolean"
        );
        assert_eq!(parse_fetch(br#"{"namespace":"/x"}"#).unwrap().namespace, "/x");
        assert!(parse_fetch(br#"{"join":["a"]}"#)
            .unwrap_err()
            .to_string()
            .starts_with("unknown field \"join\""));
    }
}
