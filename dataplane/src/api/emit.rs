//! `POST /api/v1/emit`: an event to the selected sockets, optionally collecting their acks.
//!
//! Without `ack` the answer is 202 `{"delivered": N}` as soon as the packet is queued (N counts
//! sockets on this node it was queued for; volatile packets dropped for busy clients are not
//! counted). With `ack` the request is held until every recipient answered or `timeoutMs`
//! passed, then 200 `{"responses": [...], "timedOut": [...]}`. Reserved names are refused:
//! `hub:*` are the hub's client commands and the rest are Socket.IO's own events, which a
//! client library would never hand to the application.

use std::time::Duration;

use serde_json::{json, Map, Value};
use warp::http::StatusCode;

use super::error::ApiError;
use super::fields::Fields;
use super::target::Target;
use super::{json_response, Response};
use crate::cluster::acks::AckEvent;
use crate::engine::Delivery;
use crate::ops::Ops;
use crate::state::Args;

/// Event names a client would not receive as ordinary events.
pub const RESERVED_EVENTS: &[&str] =
    &["connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"];
/// Longest ack timeout a request may ask for: 5 minutes.
pub const MAX_ACK_TIMEOUT_MS: u64 = 300_000;

/// A parsed emit request.
#[derive(Debug)]
pub struct EmitRequest {
    /// Who receives it.
    pub target: Target,
    /// The event name.
    pub event: String,
    /// Its arguments, binary already extracted.
    pub args: Args,
    /// `volatile: true` → may be dropped for clients that cannot take it now.
    pub delivery: Delivery,
    /// With `ack`: how long to wait for answers.
    pub ack_timeout: Option<Duration>,
}

/// Parse and validate an emit body. `max_attachments` bounds binary values; `default_ack_ms`
/// applies when `ack` gives no `timeoutMs`.
pub fn parse(body: &[u8], max_attachments: usize, default_ack_ms: u64) -> Result<EmitRequest, ApiError> {
    let mut f = Fields::parse(body)?;
    let target = Target::take(&mut f)?;
    let event = event_name(f.required("event")?)?;
    let args: Vec<Value> = f.optional("args")?.unwrap_or_default();
    let volatile = f.optional::<bool>("volatile")?.unwrap_or(false);
    let ack = f.optional::<Map<String, Value>>("ack")?;
    f.finish()?;
    let ack_timeout = ack.map(|a| ack_timeout(a, default_ack_ms)).transpose()?;
    let args = Args::from_json_values(args, max_attachments)?;
    let delivery = if volatile { Delivery::Volatile } else { Delivery::Reliable };
    Ok(EmitRequest { target, event, args, delivery, ack_timeout })
}

/// Check an event name: not empty, not reserved.
pub fn event_name(name: String) -> Result<String, ApiError> {
    if name.is_empty() {
        return Err(ApiError::field("event", "must not be empty"));
    }
    if name.starts_with("hub:") {
        return Err(ApiError::field(
            "event",
            format!("{name:?} is reserved: hub: events are client commands"),
        ));
    }
    if RESERVED_EVENTS.contains(&name.as_str()) {
        return Err(ApiError::field("event", format!("{name:?} is a reserved Socket.IO event name")));
    }
    Ok(name)
}

fn ack_timeout(ack: Map<String, Value>, default_ms: u64) -> Result<Duration, ApiError> {
    let mut f = Fields::from_map(ack);
    let ms = f.optional::<u64>("timeoutMs").map_err(|e| match e {
        ApiError::Field { problem, .. } => ApiError::field("ack.timeoutMs", problem),
        other => other,
    })?;
    if let Err(ApiError::UnknownField { field, expected }) = f.finish() {
        return Err(ApiError::field("ack", format!("unknown field {field:?}; expected {expected}")));
    }
    let ms = ms.unwrap_or(default_ms);
    if !(1..=MAX_ACK_TIMEOUT_MS).contains(&ms) {
        return Err(ApiError::field("ack.timeoutMs", format!("must be between 1 and {MAX_ACK_TIMEOUT_MS}")));
    }
    Ok(Duration::from_millis(ms))
}

/// Serve `POST /emit` (on every node of a cluster, through `Ops`).
pub async fn handle(ops: &Ops, body: &[u8]) -> Result<Response, ApiError> {
    let c = &ops.hub.config.socketio;
    let req = parse(body, c.max_attachments, c.ack_timeout_ms)?;
    req.target.resolve(&ops.hub)?;
    let (ns, sel) = (&req.target.namespace, &req.target.selector);
    let Some(timeout) = req.ack_timeout else {
        // `delivered` counts this node's recipients; the peers' are not waited for.
        let delivered = ops.emit(ns, sel, &req.event, &req.args, req.delivery);
        return Ok(json_response(StatusCode::ACCEPTED, &json!({ "delivered": delivered })));
    };
    let mut responses = Vec::new();
    let summary = ops
        .emit_with_acks(ns, sel, &req.event, &req.args, req.delivery, timeout)
        .run(|event| {
            if let AckEvent::Ack { socket, args } = event {
                responses.push(json!({ "sid": socket, "args": args_json(&args) }));
            }
        })
        .await;
    let missing: Vec<String> = summary.missing.iter().map(|n| n.to_string()).collect();
    let body = json!({ "responses": responses, "timedOut": summary.timed_out });
    Ok(json_response(StatusCode::OK, &super::sockets::with_missing(body, missing)))
}

/// A client's ack arguments as JSON, binary as `{"_binary": base64}`.
fn args_json(args: &Args) -> Value {
    match args.to_json_values() {
        Ok(values) => Value::Array(values),
        // The decoder checked the placeholders; should one still be off, show the raw array.
        Err(_) => serde_json::from_str(&args.json).unwrap_or_else(|_| json!([])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(body: &str) -> Result<EmitRequest, ApiError> {
        parse(body.as_bytes(), 2, 10_000)
    }

    fn err(body: &str) -> String {
        parse_str(body).unwrap_err().to_string()
    }

    #[test]
    fn parses_a_full_request() {
        let r = parse_str(
            r#"{"namespace":"/chat","rooms":["a"],"exceptRooms":["b"],"event":"e","args":[1,{"x":{"_binary":"AQI="}}],"volatile":true,"ack":{"timeoutMs":1500}}"#,
        )
        .unwrap();
        assert_eq!(r.target.namespace, "/chat");
        assert_eq!(r.event, "e");
        assert_eq!(r.args.json, r#"[1,{"x":{"_placeholder":true,"num":0}}]"#);
        assert_eq!(r.args.attachments, vec![bytes::Bytes::from_static(&[1, 2])]);
        assert_eq!(r.delivery, Delivery::Volatile);
        assert_eq!(r.ack_timeout, Some(Duration::from_millis(1500)));
    }

    #[test]
    fn defaults() {
        let r = parse_str(r#"{"event":"e"}"#).unwrap();
        assert_eq!((r.target.namespace.as_str(), r.args.json.as_str()), ("/", "[]"));
        assert_eq!((r.delivery, r.ack_timeout), (Delivery::Reliable, None));
        let r = parse_str(r#"{"event":"e","ack":{}}"#).unwrap();
        assert_eq!(r.ack_timeout, Some(Duration::from_millis(10_000)));
    }

    #[test]
    fn refuses_reserved_and_missing_event_names() {
        assert_eq!(err(r#"{"args":[]}"#), "event: is required");
        assert_eq!(err(r#"{"event":""}"#), "event: must not be empty");
        assert!(err(r#"{"event":"hub:join"}"#).contains("reserved"));
        for name in RESERVED_EVENTS {
            assert!(err(&format!(r#"{{"event":"{name}"}}"#)).contains("reserved Socket.IO event"), "{name}");
        }
        assert_eq!(err(r#"{"event":7}"#), "event: invalid type: integer `7`, expected a string");
    }

    #[test]
    fn refuses_bad_args_and_acks() {
        assert_eq!(err(r#"{"event":"e","args":{"a":1}}"#), "args: invalid type: map, expected a sequence");
        assert_eq!(
            err(r#"{"event":"e","args":[{"_binary":"!!"}]}"#),
            "args: invalid base64 in a _binary value"
        );
        let three = r#"{"event":"e","args":[{"_binary":""},{"_binary":""},{"_binary":""}]}"#;
        assert_eq!(err(three), "args: too many binary values (3; the limit is 2)");
        assert_eq!(err(r#"{"event":"e","ack":true}"#), "ack: invalid type: boolean `true`, expected a map");
        assert_eq!(
            err(r#"{"event":"e","ack":{"timeoutMs":0}}"#),
            "ack.timeoutMs: must be between 1 and 300000"
        );
        assert_eq!(
            err(r#"{"event":"e","ack":{"timeoutMs":"1"}}"#),
            "ack.timeoutMs: invalid type: string \"1\", expected u64"
        );
        assert_eq!(
            err(r#"{"event":"e","ack":{"timeout":1}}"#),
            "ack: unknown field \"timeout\"; expected timeoutMs"
        );
        assert_eq!(
            err(r#"{"event":"e","volatile":"yes"}"#),
            "volatile: invalid type: string \"yes\", expected a boolean"
        );
        assert!(err(r#"{"event":"e","room":["a"]}"#)
            .starts_with("unknown field \"room\"; expected one of: namespace, rooms"));
    }
}
