//! Engine.IO over HTTP: the handshake, long-polling GET/POST, WebSocket upgrade requests, and
//! the spec's error answers (`400 {"code":N,"message":…}`).

use std::collections::HashMap;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use socketio_hub_config::Transport;
use socketio_hub_protocol::engine::{self, OpenInfo};

use super::ws_engine::{Refused, SessionEndpoint};
use super::{cors, websocket, Response};
use crate::engine::{CloseReason, Conn, ConnHandshake, Delivery, Drained, TransportKind};
use crate::engine::{Engine, Refusal};
use crate::frame::Frame;

/// The Engine.IO error codes of the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineHttpError {
    /// 0
    UnknownTransport,
    /// 1
    UnknownSid,
    /// 2
    BadHandshakeMethod,
    /// 3
    BadRequest,
    /// 4
    Forbidden,
    /// 5
    UnsupportedProtocolVersion,
}

impl EngineHttpError {
    fn code(self) -> u8 {
        self as u8
    }
    fn message(self) -> &'static str {
        match self {
            EngineHttpError::UnknownTransport => "Transport unknown",
            EngineHttpError::UnknownSid => "Session ID unknown",
            EngineHttpError::BadHandshakeMethod => "Bad handshake method",
            EngineHttpError::BadRequest => "Bad request",
            EngineHttpError::Forbidden => "Forbidden",
            EngineHttpError::UnsupportedProtocolVersion => "Unsupported protocol version",
        }
    }
    fn label(self) -> &'static str {
        match self {
            EngineHttpError::UnknownTransport => "unknown_transport",
            EngineHttpError::UnknownSid => "unknown_sid",
            EngineHttpError::BadHandshakeMethod => "bad_handshake_method",
            EngineHttpError::BadRequest => "bad_request",
            EngineHttpError::Forbidden => "forbidden",
            EngineHttpError::UnsupportedProtocolVersion => "unsupported_protocol_version",
        }
    }
}

pub(super) fn is_engine_path(engine: &Engine, path: &str) -> bool {
    let p = &engine.settings.path;
    path == p || path == p.trim_end_matches('/')
}

fn with_cors(engine: &Engine, req_headers: &HeaderMap, mut resp: Response) -> Response {
    cors::decorate(&engine.settings.cors, req_headers, resp.headers_mut(), false);
    resp
}

fn error(engine: &Engine, req_headers: &HeaderMap, e: EngineHttpError) -> Response {
    engine.metrics.bad_input.with_label_values(&[e.label()]).inc();
    let status =
        if e == EngineHttpError::Forbidden { StatusCode::FORBIDDEN } else { StatusCode::BAD_REQUEST };
    let body = serde_json::json!({ "code": e.code(), "message": e.message() }).to_string();
    let mut resp = Response::new(Bytes::from(body).into());
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    with_cors(engine, req_headers, resp)
}

fn plain(
    engine: &Engine,
    req_headers: &HeaderMap,
    status: StatusCode,
    body: Bytes,
    content_type: &'static str,
) -> Response {
    let mut resp = Response::new(body.into());
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    with_cors(engine, req_headers, resp)
}

fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    q.map(|q| url_pairs(q).collect()).unwrap_or_default()
}

fn url_pairs(q: &str) -> impl Iterator<Item = (String, String)> + '_ {
    // Lenient, like socket.io: a malformed component is kept as it came.
    let decode = |s: &str| crate::urlencoded::decode(s).unwrap_or_else(|| s.to_string());
    q.split('&').filter(|p| !p.is_empty()).map(move |pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(k), decode(v))
    })
}

fn handshake_of(
    req: &Request<Incoming>,
    query: HashMap<String, String>,
    remote: SocketAddr,
) -> ConnHandshake {
    let mut headers: HashMap<String, String> = HashMap::new();
    for (name, value) in req.headers() {
        let v = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers
            .entry(name.as_str().to_string())
            .and_modify(|e| {
                e.push_str(", ");
                e.push_str(&v);
            })
            .or_insert(v);
    }
    let now = crate::clock::since_epoch();
    ConnHandshake {
        headers,
        query,
        address: remote,
        time: crate::clock::http_date(now.as_secs()),
        issued: now.as_millis() as u64,
        url: req.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default(),
    }
}

fn open_frame(engine: &Engine, conn: &Conn) -> Frame {
    let e = &engine.settings.engine;
    let upgrades: &[&str] =
        if conn.transport() == TransportKind::Polling && e.transports.contains(&Transport::Websocket) {
            &["websocket"]
        } else {
            &[]
        };
    let open = engine::encode_open(&OpenInfo {
        sid: conn.sid.as_str(),
        upgrades,
        ping_interval: e.ping_interval_ms,
        ping_timeout: e.ping_timeout_ms,
        max_payload: e.max_payload,
    });
    Frame::text(open.as_bytes())
}

/// Handle one request for the Socket.IO path (`forward`: the cluster, when there is one).
pub(super) async fn handle(
    engine: Arc<Engine>,
    mut req: Request<Incoming>,
    remote: SocketAddr,
    forward: Option<&Arc<dyn super::Forward>>,
) -> Response {
    let headers = req.headers().clone();
    if req.method() == Method::OPTIONS {
        let mut resp = Response::new(Bytes::new().into());
        *resp.status_mut() = StatusCode::NO_CONTENT;
        cors::decorate(&engine.settings.cors, &headers, resp.headers_mut(), true);
        return resp;
    }
    let query = parse_query(req.uri().query());
    if query.get("EIO").map(String::as_str) != Some("4") {
        return error(&engine, &headers, EngineHttpError::UnsupportedProtocolVersion);
    }
    let transport = match query.get("transport").map(String::as_str) {
        Some("polling") if engine.settings.engine.transports.contains(&Transport::Polling) => {
            TransportKind::Polling
        }
        Some("websocket") if engine.settings.engine.transports.contains(&Transport::Websocket) => {
            TransportKind::Websocket
        }
        _ => return error(&engine, &headers, EngineHttpError::UnknownTransport),
    };
    if cors::is_forbidden(&engine.settings.cors, &headers) {
        return error(&engine, &headers, EngineHttpError::Forbidden);
    }
    let sid = query.get("sid").cloned();
    let wants_ws = websocket::is_upgrade(&headers);
    if transport == TransportKind::Websocket && (!wants_ws || req.method() != Method::GET) {
        return error(&engine, &headers, EngineHttpError::BadRequest);
    }
    let ws_accept = match transport {
        TransportKind::Websocket => match websocket::accept_key(&headers) {
            Ok(key) => Some(key),
            Err(e) => {
                tracing::debug!(error = %e, "bad WebSocket handshake");
                return error(&engine, &headers, EngineHttpError::BadRequest);
            }
        },
        TransportKind::Polling => None,
    };
    let max_message = engine.settings.engine.max_payload;

    let Some(sid) = sid else {
        if req.method() != Method::GET {
            return error(&engine, &headers, EngineHttpError::BadHandshakeMethod);
        }
        let handshake = handshake_of(&req, query, remote);
        let conn = match engine.open_session(transport, handshake) {
            Ok(c) => c,
            Err(refusal) => {
                let (status, msg) = match refusal {
                    Refusal::Full => (StatusCode::SERVICE_UNAVAILABLE, "session limit reached".to_string()),
                    Refusal::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, "server shutting down".into()),
                    Refusal::Fenced => {
                        (StatusCode::SERVICE_UNAVAILABLE, "node cut off from its cluster; try another".into())
                    }
                    // Counted by the limits themselves (`socketio_hub_limit_refusals_total`).
                    Refusal::Limited(hit) => (StatusCode::TOO_MANY_REQUESTS, hit.to_string()),
                };
                engine.metrics.bad_input.with_label_values(&["refused"]).inc();
                return plain(&engine, &headers, status, Bytes::from(msg), "text/plain; charset=UTF-8");
            }
        };
        let open = open_frame(&engine, &conn);
        return match transport {
            TransportKind::Polling => plain(
                &engine,
                &headers,
                StatusCode::OK,
                Bytes::copy_from_slice(open.payload()),
                "text/plain; charset=UTF-8",
            ),
            TransportKind::Websocket => {
                // The OPEN packet is the first frame the new WebSocket carries.
                if let Err(reason) = conn.push(&[open], Delivery::Reliable) {
                    engine.close(&conn, reason);
                }
                let accept = ws_accept.unwrap_or_default();
                let endpoint = SessionEndpoint::fresh(engine.clone(), conn);
                with_cors(&engine, &headers, websocket::upgrade(&mut req, &accept, max_message, endpoint))
            }
        };
    };

    // Cluster: a session minted by another node is served by that node (no sticky sessions).
    if let (Some(fwd), Some(id)) = (forward, crate::ids::Sid::parse(&sid)) {
        if !id.is_owned_by(engine.tag) {
            return fwd.forward(req, id).await;
        }
    }
    let Some(conn) = crate::ids::Sid::parse(&sid).and_then(|s| engine.sessions.get(&s).map(|c| c.clone()))
    else {
        return error(&engine, &headers, EngineHttpError::UnknownSid);
    };
    if engine.expire_overdue(&conn) {
        // A deadline passed before the deadline task got to it: the session is gone.
        return error(&engine, &headers, EngineHttpError::UnknownSid);
    }
    if let Some(accept) = ws_accept {
        // A second WebSocket for the session is accepted and closed, like the reference server.
        let resp = if conn.claim_upgrade() {
            websocket::upgrade(&mut req, &accept, max_message, SessionEndpoint::probe(engine.clone(), conn))
        } else {
            websocket::upgrade(&mut req, &accept, max_message, Refused)
        };
        return with_cors(&engine, &headers, resp);
    }
    if conn.transport() != TransportKind::Polling {
        // The session was upgraded; a late poll for the old transport is refused.
        return error(&engine, &headers, EngineHttpError::BadRequest);
    }
    match *req.method() {
        Method::GET => poll(&engine, &headers, conn).await,
        Method::POST => post(&engine, &headers, conn, req).await,
        _ => error(&engine, &headers, EngineHttpError::BadRequest),
    }
}

/// Ends the poll registration when the GET is answered, and closes the session when the
/// client went away mid-wait instead (hyper drops the future): like the reference server, a
/// cancelled poll is a transport error ("poll connection closed prematurely").
struct PollGuard<'a> {
    engine: &'a Engine,
    conn: &'a Arc<Conn>,
    answered: bool,
}

impl Drop for PollGuard<'_> {
    fn drop(&mut self) {
        self.conn.end_poll();
        if !self.answered && self.conn.transport() == TransportKind::Polling {
            tracing::debug!(sid = %self.conn.sid, "poll cancelled by the client");
            self.engine.close(self.conn, CloseReason::TransportError);
        }
    }
}

async fn poll(engine: &Arc<Engine>, headers: &HeaderMap, conn: Arc<Conn>) -> Response {
    if !conn.start_poll() {
        // Two GETs at once: the spec says the session is broken.
        engine.close(&conn, CloseReason::TransportError);
        return error(engine, headers, EngineHttpError::BadRequest);
    }
    let mut guard = PollGuard { engine, conn: &conn, answered: false };
    let drained = poll_fn(|cx| conn.poll_drain(cx, true)).await;
    guard.answered = true;
    drop(guard);
    let mut body = Vec::new();
    match drained {
        Drained::Frames(frames) => {
            for f in &frames {
                if f.is_binary() {
                    body.reserve(2 + f.payload().len() * 4 / 3 + 4);
                    engine::append_binary_to_payload(&mut body, f.payload());
                } else {
                    engine::append_text_to_payload(&mut body, f.payload());
                }
            }
        }
        Drained::Upgrading => engine::append_text_to_payload(&mut body, b"6"),
        // The client closed it (a `1` in a POST): the pending poll ends with a noop, as the
        // reference server's polling transport does; any other close is announced.
        Drained::Closed(CloseReason::TransportClose) => engine::append_text_to_payload(&mut body, b"6"),
        Drained::Closed(_) => engine::append_text_to_payload(&mut body, b"1"),
    }
    engine.metrics.bytes_out.inc_by(body.len() as u64);
    plain(engine, headers, StatusCode::OK, Bytes::from(body), "text/plain; charset=UTF-8")
}

async fn post(
    engine: &Arc<Engine>,
    headers: &HeaderMap,
    conn: Arc<Conn>,
    req: Request<Incoming>,
) -> Response {
    let max = engine.settings.engine.max_payload;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > max) {
        return too_large(engine, headers, &conn);
    }
    let body = match Limited::new(req.into_body(), max).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
                return too_large(engine, headers, &conn);
            }
            return error(engine, headers, EngineHttpError::BadRequest);
        }
    };
    let Ok(text) = std::str::from_utf8(&body) else {
        engine.close(&conn, CloseReason::ParseError);
        return error(engine, headers, EngineHttpError::BadRequest);
    };
    for packet in engine::decode_payload(text, max) {
        match packet {
            Ok(p) => engine.on_packet(&conn, p),
            Err(e) => {
                tracing::debug!(sid = %conn.sid, error = %e, "bad polling payload");
                engine.close(&conn, CloseReason::ParseError);
                return error(engine, headers, EngineHttpError::BadRequest);
            }
        }
    }
    plain(engine, headers, StatusCode::OK, Bytes::from_static(b"ok"), "text/html")
}

fn too_large(engine: &Arc<Engine>, headers: &HeaderMap, conn: &Arc<Conn>) -> Response {
    engine.metrics.bad_input.with_label_values(&["payload_too_large"]).inc();
    engine.close(conn, CloseReason::ParseError);
    let body = serde_json::json!({ "code": 3, "message": "Payload too large" }).to_string();
    plain(engine, headers, StatusCode::PAYLOAD_TOO_LARGE, Bytes::from(body), "application/json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_query_strings() {
        let q = parse_query(Some("EIO=4&transport=polling&name=a%20b+c&x"));
        assert_eq!(q["name"], "a b c");
        assert_eq!(q["x"], "");
        assert_eq!(parse_query(Some("a=%zz%4"))["a"], "%zz%4");
    }
}
