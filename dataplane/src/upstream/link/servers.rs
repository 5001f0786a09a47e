//! What an application server asks of the whole cluster through its link: broadcasts (with
//! acks from every node's clients), `fetchSockets` with the other servers' `socket.data`, and
//! `serverSideEmit` (with acks) to every other server on every node. Socket operations go
//! through `crate::ops`, as REST's do; this file adds what only application servers have.
//!
//! Invariants: every answer the link waits for has a deadline (the caller's ack timeout, the
//! cluster's request timeout, `DATA_TIMEOUT`), and a node that did not answer in time is named
//! in the reply (`missing`), never waited for longer; the hub's request table entries are
//! removed by the answer or by a timer, so it cannot grow without bound.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use socketio_hub_protocol::socket::{self, PacketType};
use tokio::sync::oneshot;

use super::{wire, HubRequest, Instance, Out, Registry};
use crate::cluster::acks::AckEvent;
use crate::cluster::{Msg, NodeId, Reply};
use crate::engine::Delivery;
use crate::ops::Ops;
use crate::state::{AppBinding, Args, Selector};

/// Acks of a broadcast are collected this long when the application gave no timeout.
const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for other servers' `socket.data` during `fetchSockets`.
const DATA_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest time answers to a `serverSideEmit` from another node are relayed.
const REMOTE_SSEMIT_TTL: Duration = Duration::from_secs(60);

fn names(nodes: &[NodeId]) -> Vec<String> {
    nodes.iter().map(|n| n.to_string()).collect()
}

/// `io.to(…).emit(…)`, with acks when `req` is set: the count of clients asked on every node
/// (`reply`, once every node said or the timeout came), then each ack as it arrives.
#[allow(clippy::too_many_arguments)]
pub(super) fn broadcast(
    reg: &Arc<Registry>,
    ops: &Ops,
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
    let Some(req) = req else {
        ops.emit(nsp, &sel, &ev.name, &args, delivery);
        return Ok(());
    };
    let wait = timeout.map_or(DEFAULT_ACK_TIMEOUT, Duration::from_millis).min(Duration::from_secs(600));
    let run = ops.emit_with_acks(nsp, &sel, &ev.name, &args, delivery, wait);
    let (inst, nsp) = (inst.clone(), nsp.to_string());
    tokio::spawn(async move {
        run.run(|event| match event {
            AckEvent::Counted { total, missing } => {
                let text = json!({ "t": "reply", "req": req, "count": total, "missing": names(&missing) });
                let _ = inst.send(Out::json(text.to_string()));
            }
            AckEvent::Ack { args, .. } => {
                let data = wire::ack_packet(&nsp, req, &args.json, args.attachments.len());
                let text = json!({ "t": "ack", "req": req, "data": data, "bin": args.attachments.len() });
                let _ = inst.send(Out { text: text.to_string(), bins: args.attachments });
            }
        })
        .await;
    });
    Ok(())
}

/// `fetchSockets`: the selected sockets of every node, with the `socket.data` their servers
/// hold (asked of each server other than the requester, wherever it is linked).
pub(super) fn fetch_sockets(
    reg: &Arc<Registry>,
    ops: &Ops,
    inst: &Arc<Instance>,
    req: u64,
    nsp: &str,
    sel: &Selector,
) {
    let fetch = ops.fetch(nsp, sel);
    let (reg, inst, nsp) = (reg.clone(), inst.clone(), nsp.to_string());
    tokio::spawn(async move {
        let fetched = fetch.await;
        let me = AppBinding { node: reg.me(), instance: inst.id };
        let mut by_server: HashMap<AppBinding, Vec<String>> = HashMap::new();
        for s in &fetched.value {
            if let Some(app) = s.app.as_ref().filter(|a| **a != me) {
                by_server.entry(app.clone()).or_default().push(s.id.clone());
            }
        }
        let mut data = serde_json::Map::new();
        let asks = by_server.into_iter().map(|(app, ids)| reg.socket_data(app, nsp.clone(), ids));
        for answer in futures_util::future::join_all(asks).await {
            if let Value::Object(m) = answer {
                data.extend(m);
            }
        }
        let described: Vec<Value> = fetched
            .value
            .iter()
            .map(|s| {
                let mut d = json!({
                    "id": s.id,
                    "sid": s.sid,
                    "handshake": serde_json::from_str::<Value>(&s.handshake).unwrap_or(Value::Null),
                    "rooms": s.rooms,
                    "local": s.app.as_ref() == Some(&me),
                });
                if let Some(v) = data.remove(&s.id) {
                    d["data"] = v;
                }
                d
            })
            .collect();
        let text =
            json!({ "t": "reply", "req": req, "sockets": described, "missing": fetched.missing_names() });
        let _ = inst.send(Out::json(text.to_string()));
    });
}

/// `serverSideEmit`: to every other server linked here and to the servers of every other node;
/// with `req`, the number of servers reached (`reply`), then their answers as they come.
pub(super) fn server_side_emit(
    reg: &Arc<Registry>,
    inst: &Arc<Instance>,
    nsp: &str,
    data: String,
    bins: Vec<Bytes>,
    req: Option<u64>,
    timeout: Option<u64>,
) {
    let mut hreqs = Vec::new();
    let sent = reg.deliver_server_emit(nsp, &data, &bins, Some(inst), |reg| {
        req.map(|origin_req| {
            let h = reg.next_req();
            reg.requests
                .insert(h, HubRequest::SsEmit { origin: Arc::downgrade(inst), origin_req, multi: false });
            hreqs.push(h);
            h
        })
    });
    let peers = reg.cluster.get().map(|c| (c.clone(), c.peer_ids()));
    // One id for every server of every other node: their answers come back as `AppAck`.
    let remote_req = match (&peers, req) {
        (Some((_, p)), Some(origin_req)) if !p.is_empty() => {
            let h = reg.next_req();
            reg.requests
                .insert(h, HubRequest::SsEmit { origin: Arc::downgrade(inst), origin_req, multi: true });
            hreqs.push(h);
            Some(h)
        }
        _ => None,
    };
    let calls: Vec<_> = match &peers {
        Some((c, p)) => p
            .iter()
            .map(|peer| match req {
                // Counted: the origin waits for each node's number of servers reached.
                Some(_) => Some(c.start_call(peer, |id| Msg::AppEmit {
                    id,
                    req: remote_req,
                    ns: nsp.to_string(),
                    data: data.clone(),
                    bins: bins.clone(),
                })),
                None => {
                    let msg = Msg::AppEmit {
                        id: 0,
                        req: None,
                        ns: nsp.to_string(),
                        data: data.clone(),
                        bins: bins.clone(),
                    };
                    c.send_msg(peer, &msg);
                    None
                }
            })
            .collect(),
        None => Vec::new(),
    };
    let Some(req) = req else { return };
    let (reg, inst) = (reg.clone(), inst.clone());
    let wait = timeout.map_or(DEFAULT_ACK_TIMEOUT, Duration::from_millis).min(Duration::from_secs(600));
    let peer_ids: Vec<NodeId> = peers.map(|(_, p)| p).unwrap_or_default();
    tokio::spawn(async move {
        let answers = futures_util::future::join_all(calls.into_iter().flatten().map(|c| c.wait())).await;
        let mut count = sent;
        let mut missing = Vec::new();
        for (peer, answer) in peer_ids.iter().zip(answers) {
            match answer {
                Some(Reply::Count(n)) => count += n as usize,
                _ => missing.push(peer.clone()),
            }
        }
        let text = json!({ "t": "reply", "req": req, "count": count, "missing": names(&missing) });
        let _ = inst.send(Out::json(text.to_string()));
        reg.expire_later(hreqs, wait + Duration::from_millis(100));
    });
}

/// A server linked here answered a `serverSideEmit` the hub delivered with request `req`.
pub(super) fn server_ack(reg: &Registry, req: u64, data: String, bins: Vec<Bytes>) {
    let Some((_, r)) = reg.requests.remove(&req) else { return };
    match r {
        HubRequest::SsEmit { origin, origin_req, .. } => {
            if let Some(origin) = origin.upgrade() {
                let text = json!({ "t": "ack", "req": origin_req, "data": data, "bin": bins.len() });
                let _ = origin.send(Out { text: text.to_string(), bins });
            }
        }
        HubRequest::SsEmitRemote { node, req } => {
            if let Some(c) = reg.cluster.get() {
                c.send_msg(&node, &Msg::AppAck { req, data, bins });
            }
        }
        HubRequest::Data(_) => {}
    }
}

impl Registry {
    /// Deliver a `serverSideEmit` to every live server linked here but `except`; `req_for`
    /// gives the request id each one answers under. Returns how many it was queued for.
    fn deliver_server_emit(
        &self,
        nsp: &str,
        data: &str,
        bins: &[Bytes],
        except: Option<&Arc<Instance>>,
        mut req_for: impl FnMut(&Registry) -> Option<u64>,
    ) -> usize {
        let targets: Vec<Arc<Instance>> = self
            .routing
            .lock()
            .instances
            .iter()
            .filter(|i| {
                except.is_none_or(|e| !Arc::ptr_eq(i, e))
                    && i.alive.load(std::sync::atomic::Ordering::Relaxed)
            })
            .cloned()
            .collect();
        let mut sent = 0;
        for t in targets {
            let hreq = req_for(self);
            let text = json!({ "t": "ssemit", "nsp": nsp, "data": data, "bin": bins.len(), "req": hreq });
            if t.send(Out { text: text.to_string(), bins: bins.to_vec() }).is_ok() {
                sent += 1;
            } else if let Some(h) = hreq {
                self.requests.remove(&h);
            }
        }
        sent
    }

    /// Another node's `serverSideEmit`, for the servers linked here.
    pub(super) fn server_emit_from_peer(
        &self,
        from: &NodeId,
        id: u64,
        req: Option<u64>,
        nsp: &str,
        data: &str,
        bins: Vec<Bytes>,
    ) {
        let mut hreqs = Vec::new();
        let sent = self.deliver_server_emit(nsp, data, &bins, None, |reg| {
            req.map(|req| {
                let h = reg.next_req();
                reg.requests.insert(h, HubRequest::SsEmitRemote { node: from.clone(), req });
                hreqs.push(h);
                h
            })
        });
        let Some(c) = self.cluster.get() else { return };
        if id != 0 {
            c.reply(from, id, Reply::Count(sent as u32));
        }
        self.expire_later(hreqs, REMOTE_SSEMIT_TTL);
    }

    /// Remove request ids `hreqs` after `after` (answers later than that are ignored).
    fn expire_later(&self, hreqs: Vec<u64>, after: Duration) {
        if hreqs.is_empty() {
            return;
        }
        let requests = self.requests.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            for h in hreqs {
                requests.remove(&h);
            }
        });
    }

    /// An answer from a server of another node to a `serverSideEmit` made here.
    pub(super) fn server_ack_from_peer(&self, req: u64, data: String, bins: Vec<Bytes>) {
        let origin = match self.requests.get(&req).as_deref() {
            Some(HubRequest::SsEmit { origin, origin_req, multi: true }) => {
                Some((origin.upgrade(), *origin_req))
            }
            _ => None,
        };
        if let Some((Some(origin), origin_req)) = origin {
            let text = json!({ "t": "ack", "req": origin_req, "data": data, "bin": bins.len() });
            let _ = origin.send(Out { text: text.to_string(), bins });
        }
    }

    /// Another node asks for `socket.data` held by server `instance` linked here.
    pub(super) fn data_for_peer(&self, from: &NodeId, id: u64, instance: u64, nsp: &str, ids: Vec<String>) {
        let Some(c) = self.cluster.get().cloned() else { return };
        let ask = self.ask_data(instance, nsp, ids);
        let from = from.clone();
        tokio::spawn(async move {
            let data = ask.await;
            c.reply(&from, id, Reply::Data(data.to_string()));
        });
    }

    /// `socket.data` of `ids` from the server `app` (linked here or to another node), within
    /// `DATA_TIMEOUT`; an empty object when it cannot say in time.
    fn socket_data(
        self: &Arc<Self>,
        app: AppBinding,
        nsp: String,
        ids: Vec<String>,
    ) -> futures_util::future::BoxFuture<'static, Value> {
        if app.node == self.me() {
            return Box::pin(self.ask_data(app.instance, &nsp, ids));
        }
        let Some(c) = self.cluster.get().cloned() else { return Box::pin(async { json!({}) }) };
        let Some(node) = c.peer_ids().into_iter().find(|p| p.to_string() == app.node) else {
            return Box::pin(async { json!({}) });
        };
        let call = c.start_call(&node, |id| Msg::AppData { id, instance: app.instance, ns: nsp, ids });
        Box::pin(async move {
            match call.wait().await {
                Some(Reply::Data(text)) => serde_json::from_str(&text).unwrap_or_else(|_| json!({})),
                _ => json!({}),
            }
        })
    }

    /// Ask server `instance` linked here for `socket.data` of `ids`.
    fn ask_data(
        &self,
        instance: u64,
        nsp: &str,
        ids: Vec<String>,
    ) -> impl std::future::Future<Output = Value> + Send + 'static {
        let inst = Self::instance(&self.routing.lock(), instance);
        let (tx, rx) = oneshot::channel();
        let hreq = self.next_req();
        let sent = inst.is_some_and(|inst| {
            self.requests.insert(hreq, HubRequest::Data(tx));
            let text = json!({ "t": "fetchData", "req": hreq, "nsp": nsp, "ids": ids });
            inst.send(Out::json(text.to_string())).is_ok()
        });
        let requests = self.requests.clone();
        async move {
            let answer = match sent {
                true => tokio::time::timeout(DATA_TIMEOUT, rx).await.ok().and_then(Result::ok),
                false => None,
            };
            requests.remove(&hreq);
            answer.filter(Value::is_object).unwrap_or_else(|| json!({}))
        }
    }
}
