//! The server-link endpoint, `GET /api/v1/link?v=1` (a WebSocket upgrade authenticated with an
//! access-key JWT), and the application server's side of the conversation: one writer task
//! draining the server's bounded queue, and one reader that applies its messages in order.
//!
//! A refused link gets an HTTP status and a JSON `{"error": …}` body a person can act on
//! (401 wrong key, 400 bad version, 404 link mode off), so SDKs can stop instead of retrying.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{header, HeaderMap, HeaderValue, StatusCode};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use socketio_hub_protocol::socket::{self, PacketType};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use warp::filters::BoxedFilter;
use warp::Filter;

use super::wire::{self, AppMsg, Reassembly};
use super::{HubRequest, Instance, Link, Out, Registry, MAX_QUEUED};
use crate::engine::{CloseReason, Delivery};
use crate::frame::{Frame, FrameBuilder};
use crate::ids::{Room, SocketId};
use crate::state::{Args, Hub, Namespace, Outgoing, Selector, Socket};
use crate::transport::Response;

/// How often the hub pings each application server (and measures the link's latency).
const PING_EVERY: Duration = Duration::from_secs(5);
/// A link silent for this long is considered dead.
const SILENCE_LIMIT: Duration = Duration::from_secs(20);
/// Acks of a broadcast are collected this long when the application gave no timeout.
const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for other servers' `socket.data` during `fetchSockets`.
const DATA_TIMEOUT: Duration = Duration::from_secs(2);
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
    match reg.keys.verify_token(token) {
        Ok(claims) if claims.get("sio.link") == Some(&Value::Bool(true)) => {}
        Ok(_) => {
            reg.metrics.refused.with_label_values(&["unauthorized"]).inc();
            return refuse(StatusCode::UNAUTHORIZED, "the token lacks the \"sio.link\": true claim".into());
        }
        Err(e) => {
            reg.metrics.refused.with_label_values(&["unauthorized"]).inc();
            return refuse(
                StatusCode::UNAUTHORIZED,
                format!("access token refused ({e}): is the AccessKey of the connection string one of this hub's keys?"),
            );
        }
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

fn now_micros() -> u64 {
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
    let writer = tokio::spawn(async move {
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
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

/// Apply one message of `inst`, synchronously (that is what keeps per-link order).
fn apply(reg: &Arc<Registry>, inst: &Arc<Instance>, msg: AppMsg, bins: Vec<Bytes>) {
    let Some(hub) = reg.hub() else { return };
    let kind = msg.kind();
    let result: Result<(), String> = match msg {
        AppMsg::Packet { sid, data, volatile, .. } => packet(reg, &hub, inst, &sid, &data, bins, volatile),
        AppMsg::Close { sid } => {
            if let Some(session) = reg.session_of(&sid, inst) {
                hub.close_conn(&session.conn, CloseReason::ForcedClose);
            }
            Ok(())
        }
        AppMsg::Join { nsp, id, sid, rooms } => {
            rooms_op(reg, &hub, &nsp, &id, sid.as_deref(), rooms, true);
            Ok(())
        }
        AppMsg::Leave { nsp, id, sid, rooms } => {
            rooms_op(reg, &hub, &nsp, &id, sid.as_deref(), rooms, false);
            Ok(())
        }
        AppMsg::Broadcast { nsp, rooms, except, data, volatile, req, timeout, .. } => {
            broadcast(reg, &hub, inst, &nsp, selector(rooms, except), &data, bins, volatile, req, timeout)
        }
        AppMsg::SocketsJoin { nsp, rooms, except, targets } => {
            sockets_rooms(reg, &hub, &nsp, &selector(rooms, except), targets, true);
            Ok(())
        }
        AppMsg::SocketsLeave { nsp, rooms, except, targets } => {
            sockets_rooms(reg, &hub, &nsp, &selector(rooms, except), targets, false);
            Ok(())
        }
        AppMsg::DisconnectSockets { nsp, rooms, except, close } => {
            if let Some(ns) = hub.existing_namespace(&nsp) {
                for s in selected(&ns, &selector(rooms, except)) {
                    hub.disconnect_socket(&s, close);
                }
            }
            Ok(())
        }
        AppMsg::FetchSockets { req, nsp, rooms, except } => {
            fetch_sockets(reg, &hub, inst, req, &nsp, &selector(rooms, except));
            Ok(())
        }
        AppMsg::ServerSideEmit { nsp, data, req, timeout, .. } => {
            server_side_emit(reg, inst, &nsp, data, bins, req, timeout);
            Ok(())
        }
        AppMsg::SsAck { req, data, .. } => {
            if let Some((_, HubRequest::SsEmit { origin, origin_req })) = reg.requests.remove(&req) {
                if let Some(origin) = origin.upgrade() {
                    let text = json!({ "t": "ack", "req": origin_req, "data": data, "bin": bins.len() });
                    let _ = origin.send(Out { text: text.to_string(), bins });
                }
            }
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

fn selector(rooms: Vec<String>, except: Vec<String>) -> Selector {
    Selector {
        rooms: rooms.into_iter().map(Room::from).collect(),
        except_rooms: except.into_iter().map(Room::from).collect(),
        except_socket: None,
    }
}

fn selected(ns: &Namespace, sel: &Selector) -> Vec<Arc<Socket>> {
    let mut out = Vec::new();
    ns.select(sel, |s| out.push(s.clone()));
    out
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

/// The application writes a packet to one of its client sessions.
fn packet(
    reg: &Arc<Registry>,
    hub: &Arc<Hub>,
    inst: &Arc<Instance>,
    sid: &str,
    data: &str,
    bins: Vec<Bytes>,
    volatile: bool,
) -> Result<(), String> {
    let Some(session) = reg.session_of(sid, inst) else {
        // Closed, or moved to another server: the packet is stale.
        return Ok(());
    };
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

/// `socket.join` / `socket.leave` (possibly before the CONNECT answer, from a middleware).
fn rooms_op(
    reg: &Registry,
    hub: &Hub,
    nsp: &str,
    id: &str,
    sid: Option<&str>,
    rooms: Vec<String>,
    join: bool,
) {
    let rooms: Vec<Room> = rooms.into_iter().filter(|r| r != id).map(Room::from).collect();
    if rooms.is_empty() {
        return;
    }
    let Some(id) = SocketId::parse(id) else { return };
    if let Some(s) = hub.existing_namespace(nsp).and_then(|ns| ns.sockets.get(&id).map(|s| s.clone())) {
        match join {
            true => s.ns.join(&s, &rooms),
            false => s.ns.leave(&s, &rooms),
        }
        return;
    }
    let Some(session) =
        sid.and_then(crate::ids::Sid::parse).and_then(|sid| reg.sessions.get(&sid).map(|s| s.clone()))
    else {
        return;
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
}

/// `io.in(…).socketsJoin/socketsLeave`: changed at the hub, then every affected socket's
/// server is told so its local `socket.rooms` stays right.
fn sockets_rooms(reg: &Registry, hub: &Hub, nsp: &str, sel: &Selector, targets: Vec<String>, join: bool) {
    let Some(ns) = hub.existing_namespace(nsp) else { return };
    let targets: Vec<Room> = targets.into_iter().map(Room::from).collect();
    for s in selected(&ns, sel) {
        let mine: Vec<Room> = targets.iter().filter(|r| ***r != *s.id.as_str()).cloned().collect();
        match join {
            true => ns.join(&s, &mine),
            false => ns.leave(&s, &mine),
        }
        let field = if join { "join" } else { "leave" };
        let text = json!({ "t": "rooms", "sid": s.conn.sid.as_str(), "nsp": nsp, "id": s.id.as_str(), field: mine.iter().map(|r| &**r).collect::<Vec<_>>() });
        reg.notify(&s, text.to_string());
    }
}

#[allow(clippy::too_many_arguments)]
fn broadcast(
    reg: &Arc<Registry>,
    hub: &Arc<Hub>,
    inst: &Arc<Instance>,
    nsp: &str,
    sel: Selector,
    data: &str,
    bins: Vec<Bytes>,
    volatile: bool,
    req: Option<u64>,
    timeout: Option<u64>,
) -> Result<(), String> {
    let p = socket::decode(data, reg.max_attachments).map_err(|e| e.to_string())?;
    if !matches!(p.kind, PacketType::Event | PacketType::BinaryEvent) || p.attachments != bins.len() {
        return Err("a broadcast carries one EVENT packet with its attachments".into());
    }
    let ev = p.event().map_err(|e| e.to_string())?;
    let args = Args::from_raw(&ev.args, bins);
    let delivery = if volatile { Delivery::Volatile } else { Delivery::Reliable };
    let ns = hub.namespace(nsp);
    let Some(req) = req else {
        hub.emit(&ns, &sel, &ev.name, &args, delivery, None);
        return Ok(());
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let result = hub.emit(&ns, &sel, &ev.name, &args, delivery, Some(&tx));
    drop(tx);
    let _ = inst.send(Out::json(json!({ "t": "reply", "req": req, "count": result.delivered }).to_string()));
    let (Some(ack_id), expected) = (result.ack_id, result.delivered) else { return Ok(()) };
    let wait = timeout.map_or(DEFAULT_ACK_TIMEOUT, Duration::from_millis).min(Duration::from_secs(600));
    let (inst, nsp, awaiting) = (inst.clone(), nsp.to_string(), result.awaiting_ack);
    tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + wait;
        let mut got = 0;
        while got < expected {
            let Ok(Some((_, args))) = tokio::time::timeout_at(deadline, rx.recv()).await else { break };
            got += 1;
            let data = wire::ack_packet(&nsp, req, &args.json, args.attachments.len());
            let text = json!({ "t": "ack", "req": req, "data": data, "bin": args.attachments.len() });
            let _ = inst.send(Out { text: text.to_string(), bins: args.attachments });
        }
        for s in awaiting {
            s.forget_ack(ack_id);
        }
    });
    Ok(())
}

fn fetch_sockets(reg: &Arc<Registry>, hub: &Hub, inst: &Arc<Instance>, req: u64, nsp: &str, sel: &Selector) {
    let sockets = hub.existing_namespace(nsp).map(|ns| selected(&ns, sel)).unwrap_or_default();
    // Sockets of other servers: ask each for their `socket.data`.
    let mut others: HashMap<u64, (Arc<Instance>, Vec<String>)> = HashMap::new();
    let mut described = Vec::with_capacity(sockets.len());
    for s in &sockets {
        let owner = reg.sessions.get(&s.conn.sid).and_then(|session| session.state.lock().instance.clone());
        let local = owner.as_ref().is_some_and(|o| Arc::ptr_eq(o, inst));
        if let Some(o) = owner.filter(|_| !local) {
            others.entry(o.id).or_insert_with(|| (o.clone(), Vec::new())).1.push(s.id.to_string());
        }
        described.push(json!({
            "id": s.id.as_str(),
            "sid": s.conn.sid.as_str(),
            "handshake": s.handshake_json(),
            "rooms": s.rooms(),
            "local": local,
        }));
    }
    let mut waits = Vec::new();
    for (_, (owner, ids)) in others {
        let (tx, rx) = oneshot::channel();
        let hreq = reg.next_req();
        reg.requests.insert(hreq, HubRequest::Data(tx));
        let text = json!({ "t": "fetchData", "req": hreq, "nsp": nsp, "ids": ids });
        if owner.send(Out::json(text.to_string())).is_ok() {
            waits.push((hreq, rx));
        } else {
            reg.requests.remove(&hreq);
        }
    }
    let (reg, inst) = (reg.clone(), inst.clone());
    tokio::spawn(async move {
        let mut data = serde_json::Map::new();
        let deadline = tokio::time::Instant::now() + DATA_TIMEOUT;
        for (hreq, rx) in waits {
            match tokio::time::timeout_at(deadline, rx).await {
                Ok(Ok(Value::Object(m))) => data.extend(m),
                _ => {
                    reg.requests.remove(&hreq);
                }
            }
        }
        for d in described.iter_mut() {
            if let Some(v) = d["id"].as_str().and_then(|id| data.remove(id)) {
                d["data"] = v;
            }
        }
        let _ = inst.send(Out::json(json!({ "t": "reply", "req": req, "sockets": described }).to_string()));
    });
}

fn server_side_emit(
    reg: &Arc<Registry>,
    inst: &Arc<Instance>,
    nsp: &str,
    data: String,
    bins: Vec<Bytes>,
    req: Option<u64>,
    timeout: Option<u64>,
) {
    let others: Vec<Arc<Instance>> = reg
        .routing
        .lock()
        .instances
        .iter()
        .filter(|i| !Arc::ptr_eq(i, inst) && i.alive.load(Ordering::Relaxed))
        .cloned()
        .collect();
    let mut sent = 0;
    let mut hreqs = Vec::new();
    for other in &others {
        let hreq = req.map(|origin_req| {
            let hreq = reg.next_req();
            reg.requests.insert(hreq, HubRequest::SsEmit { origin: Arc::downgrade(inst), origin_req });
            hreq
        });
        let text = json!({ "t": "ssemit", "nsp": nsp, "data": data, "bin": bins.len(), "req": hreq });
        if other.send(Out { text: text.to_string(), bins: bins.clone() }).is_ok() {
            sent += 1;
            hreqs.extend(hreq);
        } else if let Some(h) = hreq {
            reg.requests.remove(&h);
        }
    }
    if let Some(req) = req {
        let _ = inst.send(Out::json(json!({ "t": "reply", "req": req, "count": sent }).to_string()));
        let reg = reg.clone();
        let wait = timeout.map_or(DEFAULT_ACK_TIMEOUT, Duration::from_millis).min(Duration::from_secs(600));
        tokio::spawn(async move {
            tokio::time::sleep(wait + Duration::from_millis(100)).await;
            for h in hreqs {
                reg.requests.remove(&h);
            }
        });
    }
}
