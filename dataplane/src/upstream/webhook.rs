//! Serverless mode: CloudEvents-style webhooks to the application, signed with the access keys.
//!
//! Contract (docs/webhooks.md): `POST <webhook_url>` with a JSON body whose `type` is
//! `connect`, `connected`, `event` or `disconnected`, and headers `ce-specversion`, `ce-type`
//! (`socketio.<type>`), `ce-id`, `ce-source`, `ce-time`, `ce-timestamp` (Unix seconds) and
//! `ce-signature` (`v1=<hex>` per access key, comma-separated: an HMAC-SHA256 of
//! `<ce-timestamp>\n<ce-id>\n<ce-type>\n<ce-source>\n<body>`, `auth::AccessKeys::sign_webhook`).
//!
//! Invariant: a `ce-id` is never reused by this hub, even across restarts under the same node
//! name: it is `<ce-source>-<boot>-<n>`, `boot` 64 random bits drawn at start. So a receiver
//! that remembers the ids it saw within its timestamp tolerance refuses every replay.
//!
//! `connect` blocks the client: 2xx accepts (optional `{"rooms":[…]}`), 4xx rejects with the
//! body's `message`/`data`, anything else rejects with "upstream unavailable". `event` blocks
//! only when the client asked for an ack: the 2xx body (a JSON array) is the ack's arguments.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::Semaphore;

use super::{BoxFut, ConnectDecision, ConnectRequest, EventCall, Upstream};
use crate::auth::{AccessKeys, WebhookParts};
use crate::ids::Room;
use crate::metrics::Metrics;
use crate::state::{Args, Namespace, Socket};

/// Every webhook kind (`ce-type: socketio.<kind>`), the `type` label of the webhook metrics.
pub(crate) const CALL_KINDS: [&str; 4] = ["connect", "connected", "event", "disconnected"];
/// Every `reason` label of `webhook_failures_total` (`CallError::label`).
pub(crate) const FAILURE_REASONS: [&str; 5] = ["saturated", "timeout", "unreachable", "status", "garbage"];

/// Why a webhook call failed (a metric label each).
#[derive(Debug, thiserror::Error)]
enum CallError {
    #[error("too many webhook requests in flight")]
    Saturated,
    #[error("timed out")]
    Timeout,
    #[error("unreachable: {0}")]
    Unreachable(String),
    #[error("answered {0}")]
    Status(u16, Option<Value>),
    #[error("answered with a body that is not JSON")]
    Garbage,
}

impl CallError {
    fn label(&self) -> &'static str {
        match self {
            CallError::Saturated => "saturated",
            CallError::Timeout => "timeout",
            CallError::Unreachable(_) => "unreachable",
            CallError::Status(..) => "status",
            CallError::Garbage => "garbage",
        }
    }
}

struct Inner {
    url: String,
    client: reqwest::Client,
    keys: AccessKeys,
    metrics: Arc<Metrics>,
    in_flight: Semaphore,
    source: String,
    /// `<source>-<boot>-`: the prefix of every `ce-id` of this process.
    id_prefix: String,
    max_attachments: usize,
    next_id: AtomicU64,
}

/// The webhook upstream.
#[derive(Clone)]
pub struct Webhook {
    inner: Arc<Inner>,
}

impl Webhook {
    /// Calls `url` with at most `max_in_flight` requests at once, each bounded by `timeout`.
    pub fn new(
        url: String,
        timeout: Duration,
        max_in_flight: usize,
        keys: AccessKeys,
        metrics: Arc<Metrics>,
        node: &str,
        max_attachments: usize,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // Keep as many idle connections as calls may be in flight, so a burst reuses its
            // connections instead of opening new ones (which under load makes every call slower).
            .pool_max_idle_per_host(max_in_flight)
            .tcp_nodelay(true)
            .build()?;
        let source = format!("/socketio-hub/{node}");
        let id_prefix = format!("{source}-{:016x}-", rand::random::<u64>());
        Ok(Webhook {
            inner: Arc::new(Inner {
                url,
                client,
                keys,
                metrics,
                in_flight: Semaphore::new(max_in_flight),
                source,
                id_prefix,
                max_attachments,
                next_id: AtomicU64::new(1),
            }),
        })
    }
}

impl Inner {
    async fn call(&self, kind: &'static str, body: Value) -> Result<Option<Value>, CallError> {
        debug_assert!(CALL_KINDS.contains(&kind), "webhook kind {kind} missing from CALL_KINDS");
        let _permit = self.in_flight.try_acquire().map_err(|_| CallError::Saturated)?;
        let body = body.to_string();
        let id = format!("{}{}", self.id_prefix, self.next_id.fetch_add(1, Ordering::Relaxed));
        let ce_type = format!("socketio.{kind}");
        let now = crate::clock::since_epoch();
        let parts = WebhookParts { timestamp: now.as_secs(), id: &id, kind: &ce_type, source: &self.source };
        let signature = self.keys.sign_webhook(&parts, body.as_bytes());
        let started = Instant::now();
        let result = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("ce-specversion", "1.0")
            .header("ce-type", &ce_type)
            .header("ce-id", &id)
            .header("ce-source", &self.source)
            .header("ce-time", crate::clock::rfc3339(now))
            .header("ce-timestamp", now.as_secs().to_string())
            .header("ce-signature", signature)
            .body(body)
            .send()
            .await;
        let outcome = match result {
            Err(e) if e.is_timeout() => Err(CallError::Timeout),
            Err(e) => Err(CallError::Unreachable(e.to_string())),
            Ok(resp) => {
                let status = resp.status();
                match resp.bytes().await {
                    Err(e) if e.is_timeout() => Err(CallError::Timeout),
                    Err(e) => Err(CallError::Unreachable(e.to_string())),
                    Ok(bytes) => {
                        let json = if bytes.iter().all(u8::is_ascii_whitespace) {
                            Ok(None)
                        } else {
                            serde_json::from_slice::<Value>(&bytes).map(Some).map_err(|_| CallError::Garbage)
                        };
                        match (status.is_success(), json) {
                            (true, j) => j,
                            (false, j) => Err(CallError::Status(status.as_u16(), j.ok().flatten())),
                        }
                    }
                }
            }
        };
        self.metrics.webhook_seconds.with_label_values(&[kind]).observe(started.elapsed().as_secs_f64());
        if let Err(e) = &outcome {
            self.metrics.webhook_failures.with_label_values(&[kind, e.label()]).inc();
            if !matches!(e, CallError::Status(400..=499, _)) {
                tracing::warn!(kind, url = %self.url, error = %e, "webhook failed");
            }
        }
        outcome
    }
}

fn base(kind: &str, namespace: &str, sid: &str) -> Value {
    json!({ "type": kind, "namespace": namespace, "sid": sid })
}

impl Upstream for Webhook {
    fn connect(&self, req: ConnectRequest) -> BoxFut<ConnectDecision> {
        let inner = self.inner.clone();
        Box::pin(async move {
            let hs = &req.handshake;
            let mut body = base("connect", &req.namespace, req.socket_id.as_str());
            body["handshake"] = json!({
                "auth": req.auth,
                "query": hs.query,
                "headers": hs.headers,
                "address": hs.address.ip().to_string(),
                "time": hs.time,
                "issued": hs.issued,
                "url": hs.url,
                "claims": req.claims,
            });
            match inner.call("connect", body).await {
                Ok(answer) => {
                    let rooms = answer
                        .as_ref()
                        .and_then(|a| a.get("rooms"))
                        .and_then(Value::as_array)
                        .map(|rs| {
                            // A room named like a socket id would capture that socket's direct
                            // messages; such names (and empty ones) are refused here.
                            rs.iter()
                                .filter_map(Value::as_str)
                                .filter(|r| {
                                    let ok = Namespace::is_public_room_name(r);
                                    if !ok {
                                        tracing::warn!(room = %r, "webhook connect answer names an invalid room; ignored");
                                    }
                                    ok
                                })
                                .map(Room::from)
                                .collect()
                        })
                        .unwrap_or_default();
                    ConnectDecision::Accept { rooms }
                }
                Err(CallError::Status(400..=499, body)) => {
                    let message = body
                        .as_ref()
                        .and_then(|b| b.get("message"))
                        .and_then(Value::as_str)
                        .unwrap_or("connection refused by the application")
                        .to_string();
                    let data = body.and_then(|mut b| b.get_mut("data").map(Value::take));
                    ConnectDecision::Reject { message, data }
                }
                Err(e) => ConnectDecision::Reject {
                    message: format!("upstream unavailable: {e}"),
                    data: Some(json!({ "reason": e.label() })),
                },
            }
        })
    }

    fn connected(&self, socket: Arc<Socket>) -> BoxFut<()> {
        let inner = self.inner.clone();
        Box::pin(async move {
            let mut body = base("connected", &socket.ns.name, socket.id.as_str());
            body["rooms"] = json!(socket.rooms());
            let _ = inner.call("connected", body).await;
        })
    }

    fn event(&self, call: EventCall) -> BoxFut<Option<Args>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            let args = match call.args.to_json_values() {
                Ok(a) => a,
                Err(e) => {
                    tracing::debug!(error = %e, "event with inconsistent binary placeholders dropped");
                    inner.metrics.events_dropped.with_label_values(&["bad_binary"]).inc();
                    return None;
                }
            };
            let s = &call.socket;
            let mut body = base("event", &s.ns.name, s.id.as_str());
            body["event"] = json!(call.event);
            body["args"] = Value::Array(args);
            body["ack"] = json!(call.ack);
            let answer = inner.call("event", body).await.ok()?;
            if !call.ack {
                return None;
            }
            let values = match answer {
                Some(Value::Array(items)) => items,
                Some(other) => vec![other],
                None => Vec::new(),
            };
            match Args::from_json_values(values, inner.max_attachments) {
                Ok(a) => Some(a),
                Err(e) => {
                    tracing::warn!(error = %e, "webhook ack refused");
                    inner.metrics.webhook_failures.with_label_values(&["event", "garbage"]).inc();
                    None
                }
            }
        })
    }

    fn disconnected(&self, socket: Arc<Socket>, reason: &'static str) -> BoxFut<()> {
        let inner = self.inner.clone();
        Box::pin(async move {
            let mut body = base("disconnected", &socket.ns.name, socket.id.as_str());
            body["reason"] = json!(reason);
            let _ = inner.call("disconnected", body).await;
        })
    }
}

#[cfg(test)]
mod label_tests {
    use super::{CallError, FAILURE_REASONS};

    #[test]
    fn every_failure_label_is_listed_for_the_metrics() {
        let all = [
            CallError::Saturated,
            CallError::Timeout,
            CallError::Unreachable(String::new()),
            CallError::Status(500, None),
            CallError::Garbage,
        ];
        for e in all {
            assert!(FAILURE_REASONS.contains(&e.label()), "{} missing from FAILURE_REASONS", e.label());
        }
    }
}
