//! The server-link endpoint, `GET /api/v1/link?v=1` (a WebSocket upgrade authenticated with an
//! access-key JWT), and the application server's side of the conversation: one writer task
//! draining the server's bounded queue, and one reader that applies its messages in order.
//!
//! A refused link gets an HTTP status and a JSON `{"error": …}` body a person can act on
//! (401 wrong key, 400 bad version, 404 link mode off), so SDKs can stop instead of retrying.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{header, HeaderMap, HeaderValue, StatusCode};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use socketio_hub_protocol::socket::{self, PacketType};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use warp::filters::BoxedFilter;
use warp::Filter;

use super::wire::{self, AppMsg, Reassembly};
use super::{servers, AppRef, HubRequest, Instance, Link, LinkSession, Out, Registry, MAX_QUEUED};
use crate::cluster::Msg;
use crate::engine::{CloseReason, Delivery};
use crate::frame::{Frame, FrameBuilder};
use crate::ids::{Room, Sid, SocketId};
use crate::state::{Hub, Outgoing, Selector};
use crate::transport::Response;

/// How often the hub pings each application server (and measures the link's latency).
const PING_EVERY: Duration = Duration::from_secs(5);
/// How often a link checks whether its node was fenced.
const FENCE_CHECK_EVERY: Duration = Duration::from_millis(250);
/// A link silent for this long is considered dead.
const SILENCE_LIMIT: Duration = Duration::from_secs(20);
/// Largest link message (a client packet can be at most the engine's max payload).
const MAX_MESSAGE: usize = 64 << 20;

/// The route (always mounted: with link mode off it answers 404 with the reason).
pub fn route(link: Option<Link>) -> BoxedFilter<(Response,)> {
    warp::path!("api" / "v1" / "link")
        .and(warp::get())
        .and(warp::header::headers_cloned())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::ext::optional::<OnUpgrade>())
        .map(move |headers: HeaderMap, query: String, upgrade: Option<OnUpgrade>| {
            accept(link.clone(), &headers, &query, upgrade)
        })
        .boxed()
}

fn refuse(status: StatusCode, message: String) -> Response {
    let mut resp = Response::new(json!({ "error": message }).to_string().into());
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn accept(link: Option<Link>, headers: &HeaderMap, query: &str, upgrade: Option<OnUpgrade>) -> Response {
    let Some(link) = link else {
        return refuse(
            StatusCode::NOT_FOUND,
            "server links are disabled on this hub: set upstream.mode = \"link\"".into(),
        );
    };
    let reg = &link.reg;
    let params: HashMap<String, String> = url_params(query);
    if params.get("v").map(String::as_str) != Some("1") {
        reg.metrics.refused.with_label_values(&["version"]).inc();
        return refuse(
            StatusCode::BAD_REQUEST,
            format!(
                "unsupported link protocol version {:?}; this hub speaks v={}",
                params.get("v"),
                wire::VERSION
            ),
        );
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(token) = token else {
        reg.metrics.refused.with_label_values(&["unauthorized"]).inc();
        return refuse(StatusCode::UNAUTHORIZED, "missing Authorization: Bearer <access-key JWT>".into());
    };
    if let Err(e) = reg.keys.verify_link_token(token) {
        reg.metrics.refused.with_label_values(&["unauthorized"]).inc();
        return refuse(StatusCode::UNAUTHORIZED, crate::auth::link_refusal(&e));
    }
    if let Some(why) = reg.hub().and_then(|h| h.unavailable()) {
        reg.metrics.refused.with_label_values(&["unavailable"]).inc();
        return refuse(StatusCode::SERVICE_UNAVAILABLE, why.into());
    }
    let key = headers.get(header::SEC_WEBSOCKET_KEY);
    let version_ok = headers.get(header::SEC_WEBSOCKET_VERSION).map(|v| v.as_bytes()) == Some(b"13");
    let (Some(key), true, Some(upgrade)) = (key, version_ok, upgrade) else {
        reg.metrics.refused.with_label_values(&["bad_request"]).inc();
        return refuse(StatusCode::BAD_REQUEST, "expected a WebSocket upgrade (version 13)".into());
    };
    let accept_key = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let name = params.get("name").cloned().unwrap_or_default();
    let link2 = link.clone();
    tokio::spawn(async move {
        match upgrade.await {
            Ok(upgraded) => {
                let config = WebSocketConfig::default().max_message_size(Some(MAX_MESSAGE));
                let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                    .await;
                serve(link2.reg.clone(), ws, name).await;
            }
            Err(e) => tracing::debug!(error = %e, "server link upgrade failed"),
        }
    });
    let mut resp = Response::new(Default::default());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept_key) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    resp
}

fn url_params(query: &str) -> HashMap<String, String> {
    query
        .split('&')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (!k.is_empty()).then(|| (k.to_string(), v.to_string()))
        })
        .collect()
}

pub(super) fn now_micros() -> u64 {
    crate::clock::since_epoch().as_micros() as u64
}

type Ws = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Run one application server's link until it closes.
async fn serve(reg: Arc<Registry>, ws: Ws, name: String) {
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::channel::<Out>(MAX_QUEUED);
    let id = reg.next_instance.fetch_add(1, Ordering::Relaxed);
    let name = if name.is_empty() { format!("instance-{id}") } else { name };
    let inst = Arc::new(Instance {
        id,
        name: name.clone(),
        tx,
        bound: AtomicUsize::new(0),
        alive: AtomicBool::new(true),
        metrics: reg.metrics.clone(),
    });
    let hello = json!({
        "t": "hello",
        "v": wire::VERSION,
        "instance": id,
        "node": reg.node,
        "maxAttachments": reg.max_attachments,
    });
    let _ = inst.send(Out::json(hello.to_string()));
    let last_heard = Arc::new(AtomicU64::new(now_micros()));
    let metrics = reg.metrics.clone();
    let heard = last_heard.clone();
    let hub = reg.hub.get().cloned();
    let writer = tokio::spawn(async move {
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut fence_check = tokio::time::interval(FENCE_CHECK_EVERY);
        loop {
            tokio::select! {
                _ = fence_check.tick() => {
                    // A fenced node's server links go too: the SDK reconnects through the
                    // Service, to a node on the majority side.
                    if hub.as_ref().and_then(Weak::upgrade).is_some_and(|h| h.unavailable().is_some()) {
                        tracing::warn!("fenced: closing the server link");
                        let _ = sink.close().await;
                        return;
                    }
                }
                out = rx.recv() => {
                    let Some(mut out) = out else { break };
                    // Write everything already queued, then flush once.
                    loop {
                        metrics.in_flight.dec();
                        if sink.feed(Message::text(out.text)).await.is_err() {
                            return;
                        }
                        for b in out.bins.drain(..) {
                            if sink.feed(Message::binary(b)).await.is_err() {
                                return;
                            }
                        }
                        match rx.try_recv() {
                            Ok(next) => out = next,
                            Err(_) => break,
                        }
                    }
                    if sink.flush().await.is_err() {
                        return;
                    }
                }
                _ = ping.tick() => {
                    let silent = now_micros().saturating_sub(heard.load(Ordering::Relaxed));
                    if silent > SILENCE_LIMIT.as_micros() as u64 {
                        tracing::warn!("server link silent for {} s; closing it", silent / 1_000_000);
                        let _ = sink.close().await;
                        return;
                    }
                    let msg = json!({ "t": "ping", "ts": now_micros() }).to_string();
                    if sink.send(Message::text(msg)).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = sink.close().await;
    });
    reg.add_instance(inst.clone());
    tracing::info!(instance = id, name = %name, "application server connected");
    let mut reassembly = Reassembly::new(reg.max_attachments);
    let mut reader_writer_gone = false;
    while let Some(msg) = stream.next().await {
        let msg = match msg {
            Ok(m) => m,
            Err(e) => {
                tracing::info!(instance = id, error = %e, "server link read failed");
                break;
            }
        };
        last_heard.store(now_micros(), Ordering::Relaxed);
        let complete = match msg {
            Message::Text(t) => reassembly.text(t.as_str()),
            Message::Binary(b) => reassembly.binary(b),
            Message::Close(_) => break,
            _ => continue,
        };
        match complete {
            Ok(Some((msg, bins))) => apply(&reg, &inst, msg, bins),
            Ok(None) => {}
            Err(e) => {
                reg.metrics.bad_messages.with_label_values(&["framing"]).inc();
                tracing::warn!(instance = id, error = %e, "server link protocol error; closing it");
                let _ = inst.send(Out::json(json!({ "t": "error", "message": e.to_string() }).to_string()));
                break;
            }
        }
        if writer.is_finished() {
            reader_writer_gone = true;
            break;
        }
    }
    if reader_writer_gone {
        tracing::info!(instance = id, "server link write side failed");
    }
    reg.remove_instance(&inst);
    // Let the writer flush an error message, then stop it.
    tokio::time::sleep(Duration::from_millis(50)).await;
    writer.abort();
}

/// Apply one message of `inst`, synchronously (that is what keeps per-link order: whatever
/// an operation sends to other nodes is sent before this returns).
fn apply(reg: &Arc<Registry>, inst: &Arc<Instance>, msg: AppMsg, bins: Vec<Bytes>) {
    let (Some(hub), Some(ops)) = (reg.hub(), reg.ops.get()) else { return };
    let kind = msg.kind();
    let result: Result<(), String> = match msg {
        m @ (AppMsg::Packet { .. } | AppMsg::Close { .. } | AppMsg::Join { .. } | AppMsg::Leave { .. }) => {
            apply_session(reg, &hub, &AppTarget::Local(inst.clone()), m, bins)
        }
        AppMsg::Broadcast { nsp, rooms, except, data, volatile, req, timeout, .. } => servers::broadcast(
            reg,
            ops,
            inst,
            &nsp,
            selector(rooms, except),
            &data,
            bins,
            volatile,
            req,
            timeout,
        ),
        AppMsg::SocketsJoin { nsp, rooms, except, targets } => {
            // The answer is not needed: applied here and sent to the peers already.
            drop(ops.join(&nsp, &selector(rooms, except), targets.into_iter().map(Room::from).collect()));
            Ok(())
        }
        AppMsg::SocketsLeave { nsp, rooms, except, targets } => {
            drop(ops.leave(&nsp, &selector(rooms, except), targets.into_iter().map(Room::from).collect()));
            Ok(())
        }
        AppMsg::DisconnectSockets { nsp, rooms, except, close } => {
            drop(ops.disconnect(&nsp, &selector(rooms, except), close));
            Ok(())
        }
        AppMsg::FetchSockets { req, nsp, rooms, except } => {
            servers::fetch_sockets(reg, ops, inst, req, &nsp, &selector(rooms, except));
            Ok(())
        }
        AppMsg::ServerSideEmit { nsp, data, req, timeout, .. } => {
            servers::server_side_emit(reg, inst, &nsp, data, bins, req, timeout);
            Ok(())
        }
        AppMsg::SsAck { req, data, .. } => {
            servers::server_ack(reg, req, data, bins);
            Ok(())
        }
        AppMsg::Reply { req, data } => {
            if let Some((_, HubRequest::Data(tx))) = reg.requests.remove(&req) {
                let _ = tx.send(data);
            }
            Ok(())
        }
        AppMsg::Pong { ts } => {
            reg.metrics.latency.observe(now_micros().saturating_sub(ts) as f64 / 1e6);
            Ok(())
        }
    };
    if let Err(e) = result {
        reg.metrics.bad_messages.with_label_values(&[kind]).inc();
        tracing::debug!(instance = inst.id, kind, error = %e, "invalid link message ignored");
    }
}

/// Who a session message comes from: a server linked here, or one linked to another node
/// (relayed over the mesh).
pub(super) enum AppTarget {
    /// A server linked to this node.
    Local(Arc<Instance>),
    /// A server linked to another node.
    Remote(AppRef),
}

impl AppTarget {
    fn app_ref(&self) -> AppRef {
        match self {
            AppTarget::Local(i) => AppRef::Local(i.id),
            AppTarget::Remote(r) => r.clone(),
        }
    }
}

/// A message for one session (`packet`, `close`, `join`, `leave`): applied here when the
/// session is held here and bound to the sender, relayed to the node holding it when the
/// sender is a server linked here, ignored as stale otherwise.
pub(super) fn apply_session(
    reg: &Registry,
    hub: &Arc<Hub>,
    from: &AppTarget,
    msg: AppMsg,
    bins: Vec<Bytes>,
) -> Result<(), String> {
    let app = from.app_ref();
    match &msg {
        AppMsg::Packet { sid, data, volatile, .. } => match reg.session_of(sid, &app) {
            Some(session) => packet(reg, hub, &session, data, bins, *volatile),
            None => relay(reg, from, sid, &msg, bins, None),
        },
        AppMsg::Close { sid } => match reg.session_of(sid, &app) {
            Some(session) => {
                hub.close_conn(&session.conn, CloseReason::ForcedClose);
                Ok(())
            }
            None => relay(reg, from, sid, &msg, bins, None),
        },
        AppMsg::Join { nsp, id, sid, rooms } | AppMsg::Leave { nsp, id, sid, rooms } => {
            let join = matches!(msg, AppMsg::Join { .. });
            if rooms_op(reg, hub, &app, nsp, id, sid.as_deref(), rooms, join) {
                return Ok(());
            }
            let Some(sid) = sid else { return Ok(()) };
            relay(reg, from, sid, &msg, bins, join.then_some((nsp.as_str(), rooms.as_slice())))
        }
        _ => Err("not a session message".into()),
    }
}

/// Send a session message of a server linked here to the node holding the session (when the
/// session is bound to that server); with `hint`, that node is routed to for those rooms from
/// now, so a broadcast right after the join includes the socket.
fn relay(
    reg: &Registry,
    from: &AppTarget,
    sid: &str,
    msg: &AppMsg,
    bins: Vec<Bytes>,
    hint: Option<(&str, &[String])>,
) -> Result<(), String> {
    // A relayed message is applied on the node holding the session or nowhere.
    let AppTarget::Local(inst) = from else { return Ok(()) };
    let Some(sid) = Sid::parse(sid) else { return Ok(()) };
    let Some(node) = reg.relayed.get(&sid).filter(|r| Arc::ptr_eq(&r.inst, inst)).map(|r| r.node.clone())
    else {
        // Closed, or moved to another server: stale.
        return Ok(());
    };
    let Some(cluster) = reg.cluster.get() else { return Ok(()) };
    if let Some((ns, rooms)) = hint {
        cluster.hint_rooms(&node, ns, rooms);
    }
    let text = serde_json::to_string(msg).map_err(|e| e.to_string())?;
    if !cluster.send_msg(&node, &Msg::FromApp { instance: inst.id, text, bins }) {
        reg.metrics.dropped.with_label_values(&["mesh"]).inc();
    }
    Ok(())
}

pub(super) fn selector(rooms: Vec<String>, except: Vec<String>) -> Selector {
    Selector {
        rooms: rooms.into_iter().map(Room::from).collect(),
        except_rooms: except.into_iter().map(Room::from).collect(),
        except_socket: None,
    }
}

/// Frames for a client: the Engine.IO message `4<data>`, then the attachments.
fn frames(data: &str, bins: &[Bytes]) -> Outgoing {
    let mut b = FrameBuilder::with_capacity(1 + data.len());
    b.payload().push(b'4');
    b.payload().extend_from_slice(data.as_bytes());
    let mut out = Outgoing::new();
    out.push(b.text());
    out.extend(bins.iter().map(|a| Frame::binary(a)));
    out
}

/// The application writes a packet to one of its client sessions (held here, bound to it).
fn packet(
    reg: &Registry,
    hub: &Arc<Hub>,
    session: &LinkSession,
    data: &str,
    bins: Vec<Bytes>,
    volatile: bool,
) -> Result<(), String> {
    let conn = &session.conn;
    let p = socket::decode(data, reg.max_attachments).map_err(|e| e.to_string())?;
    if p.attachments != bins.len() {
        return Err(format!("{} attachments announced, {} sent", p.attachments, bins.len()));
    }
    let existing = crate::state::sio(conn).socket(p.nsp);
    match p.kind {
        PacketType::Connect => {
            let pending = session.state.lock().pending.remove(p.nsp);
            // No pending connect: a re-bound socket's new `connection` on this server (the
            // client is connected already), or a connect that timed out meanwhile.
            if let Some(mut pending) = pending {
                reg.metrics.connect_seconds.observe(pending.sent_at.elapsed().as_secs_f64());
                let app_id = p
                    .data
                    .and_then(|d| serde_json::from_str::<Value>(d).ok())
                    .and_then(|v| v.get("sid").and_then(Value::as_str).and_then(SocketId::parse));
                if let Some(app_id) = app_id.filter(|_| !pending.prep.is_recovery()) {
                    // The SDK answers with the id the hub proposed; another server may pick its own.
                    pending.prep.id = app_id;
                }
                hub.admit(conn, pending.prep, pending.rooms);
            }
        }
        PacketType::ConnectError => {
            let pending = session.state.lock().pending.remove(p.nsp);
            if pending.is_some() {
                hub.metrics.connects_rejected.with_label_values(&["upstream"]).inc();
                push(hub, conn, &frames(data, &bins), Delivery::Reliable);
            } else if let Some(s) = existing {
                // The server refused a re-bound socket (its middleware said no this time).
                hub.disconnect_socket(&s, false);
            }
        }
        PacketType::Disconnect => {
            if let Some(s) = existing {
                hub.disconnect_socket(&s, false);
            }
        }
        _ => {
            let delivery = if volatile { Delivery::Volatile } else { Delivery::Reliable };
            if push(hub, conn, &frames(data, &bins), delivery) {
                hub.metrics.packets_out.inc();
            }
        }
    }
    Ok(())
}

fn push(hub: &Hub, conn: &Arc<crate::engine::Conn>, frames: &Outgoing, delivery: Delivery) -> bool {
    match conn.push(frames, delivery) {
        Ok(queued) => queued,
        Err(reason) => {
            hub.close_conn(conn, reason);
            false
        }
    }
}

/// `socket.join` / `socket.leave` of a socket held here (possibly before the CONNECT answer,
/// from a middleware). Returns false when neither the socket nor its pending connect is here.
#[allow(clippy::too_many_arguments)]
fn rooms_op(
    reg: &Registry,
    hub: &Hub,
    app: &AppRef,
    nsp: &str,
    id: &str,
    sid: Option<&str>,
    rooms: &[String],
    join: bool,
) -> bool {
    let rooms: Vec<Room> = rooms.iter().filter(|r| *r != id).map(|r| Room::from(r.as_str())).collect();
    let Some(id) = SocketId::parse(id) else { return true };
    if rooms.is_empty() {
        return true;
    }
    if let Some(s) = hub.existing_namespace(nsp).and_then(|ns| ns.sockets.get(&id).map(|s| s.clone())) {
        match join {
            true => {
                if let Err(hit) = s.ns.try_join(&s, &rooms) {
                    reg.notify_refused(&s, &rooms, hit);
                }
            }
            false => s.ns.leave(&s, &rooms),
        }
        return true;
    }
    let Some(session) = sid.and_then(|sid| reg.session_of(sid, app)) else {
        return false;
    };
    let mut state = session.state.lock();
    if let Some(p) = state.pending.get_mut(nsp).filter(|p| p.prep.id == id) {
        if join {
            for r in rooms {
                if !p.rooms.contains(&r) {
                    p.rooms.push(r);
                }
            }
        } else {
            p.rooms.retain(|r| !rooms.contains(r));
        }
    }
    true
}
