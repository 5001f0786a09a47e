//! The server link across nodes: this node's side of `cluster::AppMesh`. A session held here
//! and bound to a server linked to another node sends its messages there as `Msg::ToApp`; a
//! server linked here answering a session held elsewhere sends `Msg::FromApp` to that node.
//! This node records the sessions of other nodes bound to its servers (`Registry::relayed`),
//! so their load is counted, their messages are checked against the binding, and their nodes
//! learn when the server goes (`Msg::AppGone`).
//!
//! Invariants: a relayed message is applied by the node holding the session exactly as a
//! local server's message would be, after checking the session is bound to that server; a
//! node that goes down takes its relayed sessions with it (they are its clients) and every
//! session bound to its servers re-binds; nothing here waits.

use bytes::Bytes;

use super::endpoint::{apply_session, AppTarget};
use super::wire::AppMsg;
use super::{AppRef, Bound, Out, Registry, Relayed};
use crate::cluster::membership::apps_text;
use crate::cluster::{AppMesh, Msg, NodeId, Relay};
use crate::ids::Sid;

impl AppMesh for Registry {
    fn on_mesh(&self, from: &NodeId, msg: Msg) {
        match msg {
            Msg::ToApp { instance, sid, relay, text, bins } => {
                self.relay_to_app(from, instance, &sid, relay, text, bins)
            }
            Msg::FromApp { instance, text, bins } => self.relayed_from_app(from, instance, &text, bins),
            Msg::AppGone { instance } => {
                let fresh = self.routing.lock().gone.insert((from.clone(), instance));
                let n = self.rebind_where(
                    |b| matches!(b, Bound::Remote { node, instance: i } if node == from && *i == instance),
                );
                if fresh || n > 0 {
                    tracing::info!(peer = %from, instance, sessions = n, "application server of a peer left");
                }
            }
            Msg::Unbound { instance, sid } => {
                let Some(session) =
                    Sid::parse(&sid).and_then(|sid| self.sessions.get(&sid).map(|s| s.clone()))
                else {
                    return;
                };
                let lost = |b: &Bound| matches!(b, Bound::Remote { node, instance: i } if node == from && *i == instance);
                self.rebind(&mut self.routing.lock(), &session, lost);
            }
            Msg::AppEmit { id, req, ns, data, bins } => {
                self.server_emit_from_peer(from, id, req, &ns, &data, bins)
            }
            Msg::AppAck { req, data, bins } => self.server_ack_from_peer(req, data, bins),
            Msg::AppData { id, instance, ns, ids } => self.data_for_peer(from, id, instance, &ns, ids),
            _ => {}
        }
    }

    fn peers_changed(&self, down: &[NodeId]) {
        if !down.is_empty() {
            // The sessions of a node that went down went with it: their servers learn they
            // closed (a node that comes back re-binds what it still holds, see `relay_to_app`).
            self.relayed.retain(|sid, r| {
                let gone = down.contains(&r.node);
                if gone {
                    r.inst.bound.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                    self.metrics.relayed.dec();
                    let text =
                        serde_json::json!({ "t": "close", "sid": sid.as_str(), "reason": "transport close" });
                    let _ = r.inst.send(Out::json(text.to_string()));
                }
                !gone
            });
            self.requests.retain(
                |_, r| !matches!(r, super::HubRequest::SsEmitRemote { node, .. } if down.contains(node)),
            );
            let n = self.rebind_where(|b| matches!(b, Bound::Remote { node, .. } if down.contains(node)));
            if n > 0 {
                tracing::info!(
                    sessions = n,
                    "sessions re-bound: the node holding their application server is gone"
                );
            }
        }
        // Forget gone servers once their node's gossip stops listing them.
        if let Some(c) = self.cluster.get() {
            let mut routing = self.routing.lock();
            if !routing.gone.is_empty() {
                let listed: std::collections::HashSet<(NodeId, u64)> = c
                    .peer_apps()
                    .into_iter()
                    .flat_map(|(node, apps)| apps.into_iter().map(move |(i, _)| (node.clone(), i)))
                    .collect();
                routing.gone.retain(|g| listed.contains(g));
            }
        }
        // A peer's first server may have appeared.
        self.bind_waiting();
    }

    fn summary(&self) -> String {
        let routing = self.routing.lock();
        let apps: Vec<(u64, u64)> = routing
            .instances
            .iter()
            .filter(|i| i.alive.load(std::sync::atomic::Ordering::Relaxed))
            .map(|i| (i.id, i.bound.load(std::sync::atomic::Ordering::Relaxed) as u64))
            .collect();
        apps_text(&apps)
    }
}

impl Registry {
    /// A message of a session held by `from` for server `instance` linked here.
    fn relay_to_app(
        &self,
        from: &NodeId,
        instance: u64,
        sid: &str,
        relay: Relay,
        text: String,
        bins: Vec<Bytes>,
    ) {
        let Some(sid) = Sid::parse(sid) else {
            self.metrics.bad_messages.with_label_values(&["relay"]).inc();
            return;
        };
        let inst = Self::instance(&self.routing.lock(), instance);
        let Some(inst) = inst else {
            // The server left: the session's node re-binds it (and resends what matters).
            if relay != Relay::Close {
                if let Some(c) = self.cluster.get() {
                    c.send_msg(from, &Msg::AppGone { instance });
                }
            }
            return;
        };
        match relay {
            Relay::Open => {
                inst.bound.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                match self.relayed.insert(sid, Relayed { inst: inst.clone(), node: from.clone() }) {
                    Some(old) => {
                        old.inst.bound.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    None => self.metrics.relayed.inc(),
                }
            }
            Relay::Close => {
                if let Some((_, r)) = self.relayed.remove(&sid) {
                    r.inst.bound.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                    self.metrics.relayed.dec();
                }
            }
            Relay::Msg => {
                if !self.relayed.get(&sid).is_some_and(|r| std::sync::Arc::ptr_eq(&r.inst, &inst)) {
                    // This node let the session go (its node looked dead for a while): its node
                    // re-binds it; this message is lost and counted.
                    self.metrics.dropped.with_label_values(&["unbound"]).inc();
                    if let Some(c) = self.cluster.get() {
                        c.send_msg(from, &Msg::Unbound { instance, sid: sid.to_string() });
                    }
                    return;
                }
            }
        }
        if inst.send(Out { text, bins }).is_err() {
            self.metrics.dropped.with_label_values(&["saturated"]).inc();
        }
    }

    /// A session message of server `instance` linked to `from`, for a session held here.
    fn relayed_from_app(&self, from: &NodeId, instance: u64, text: &str, bins: Vec<Bytes>) {
        let Some(hub) = self.hub() else { return };
        let msg: AppMsg = match serde_json::from_str(text) {
            Ok(m) => m,
            Err(e) => {
                self.metrics.bad_messages.with_label_values(&["relay"]).inc();
                tracing::debug!(peer = %from, error = %e, "invalid relayed link message");
                return;
            }
        };
        let app = AppRef::Remote(from.clone(), instance);
        if let Err(e) = apply_session(self, &hub, &AppTarget::Remote(app), msg, bins) {
            self.metrics.bad_messages.with_label_values(&["relay"]).inc();
            tracing::debug!(peer = %from, error = %e, "relayed link message ignored");
        }
    }
}
