//! Joining a namespace: namespace check, client token, recovery, the upstream's decision,
//! then registration and the CONNECT reply (in that order, so the socket can receive
//! events before the client learns it is connected).

use std::sync::Arc;

use serde_json::{Map, Value};

use super::app::{ConnectDecision, ConnectRequest, Dispatch};
use super::namespace::{Broadcast, EmitFlags, Namespace, Selector};
use super::packet::{self, Args};
use super::recovery::{Restored, Stamp};
use super::socket::{AckSink, Socket};
use super::{sio, Hub};
use crate::engine::{Conn, Delivery};
use crate::ids::{Room, SocketId};

/// A namespace connect that passed the hub's checks and awaits the application's answer.
pub struct PreparedConnect {
    /// The namespace.
    pub nsp: String,
    /// The socket id it will have (fresh, or the recovered one).
    pub id: SocketId,
    /// The CONNECT auth payload without the recovery fields.
    pub auth: Map<String, Value>,
    /// Verified client token claims.
    pub claims: Option<Map<String, Value>>,
    ns: Arc<Namespace>,
    restored: Option<Restored>,
    pid_in: Option<Arc<str>>,
}

impl PreparedConnect {
    /// A connect to an internal namespace: no auth kept, no claims, no recovery.
    pub(super) fn internal(nsp: &str, id: SocketId, ns: Arc<Namespace>) -> Self {
        PreparedConnect {
            nsp: nsp.to_string(),
            id,
            auth: Map::new(),
            claims: None,
            ns,
            restored: None,
            pid_in: None,
        }
    }

    /// Whether connection state recovery restored a previous socket.
    pub fn is_recovery(&self) -> bool {
        self.restored.is_some()
    }

    /// The rooms a recovered socket gets back.
    pub fn restored_rooms(&self) -> &[Room] {
        self.restored.as_ref().map_or(&[], |r| &r.rooms)
    }
}

impl Hub {
    pub(super) fn spawn_connect(self: Arc<Self>, conn: Arc<Conn>, nsp: String, auth: Map<String, Value>) {
        tokio::spawn(async move { self.connect(conn, nsp, auth).await });
    }

    /// Refuse a namespace connect with CONNECT_ERROR (counted under `label`).
    pub(crate) fn reject(
        &self,
        conn: &Arc<Conn>,
        nsp: &str,
        label: &'static str,
        message: &str,
        data: Option<&Value>,
    ) {
        self.metrics.connects_rejected.with_label_values(&[label]).inc();
        if let Err(reason) = conn.push(&packet::connect_error(nsp, message, data), Delivery::Reliable) {
            self.close_conn(conn, reason);
        }
    }

    /// Recovery across nodes: when a CONNECT names a recovery session this node does not hold,
    /// claim it from the peers first, so `prepare_connect` restores it like a local one.
    pub(crate) async fn claim_recovery(&self, nsp: &str, auth: &Map<String, Value>) {
        let Some(pid) = auth.get("pid").and_then(Value::as_str) else { return };
        let Some(peers) = self.peers.get().cloned() else { return };
        if !self.namespace_allowed(nsp) || pid.len() > 64 {
            return;
        }
        let Some(ns) = self.namespace(nsp) else { return };
        let Some(rec) = &ns.recovery else { return };
        if let Some(origin) = rec.live_origin(pid) {
            // A replica of a socket its node still reports connected: the client is back here,
            // so that node's socket is a husk; it lets it go while this one restores.
            peers.release_session(nsp, pid, origin);
            return;
        }
        if rec.holds(pid) {
            return;
        }
        if let Some((session, age)) = peers.claim_session(nsp.to_string(), pid.to_string()).await {
            rec.install(pid, session, age);
        }
    }

    /// Whether a CONNECT may need `claim_recovery` (recovery on, a cluster, a `pid` given).
    pub(crate) fn may_claim(&self, auth: &Map<String, Value>) -> bool {
        self.config.socketio.recovery.enabled && self.peers.get().is_some() && auth.contains_key("pid")
    }

    async fn connect(self: Arc<Self>, conn: Arc<Conn>, nsp: String, auth: Map<String, Value>) {
        let Some(upstream) = self.upstream().cloned() else { return };
        self.claim_recovery(&nsp, &auth).await;
        let Some(prep) = self.prepare_connect(&conn, nsp, auth) else { return };
        let request = ConnectRequest {
            socket_id: prep.id.clone(),
            namespace: prep.nsp.clone(),
            handshake: conn.handshake.clone(),
            auth: prep.auth.clone(),
            claims: prep.claims.clone(),
        };
        match upstream.connect(request).await {
            ConnectDecision::Accept { rooms } => {
                self.admit(&conn, prep, rooms);
            }
            ConnectDecision::Reject { message, data } => {
                self.reject(&conn, &prep.nsp, "upstream", &message, data.as_ref());
            }
        }
    }

    /// The hub's own checks of a namespace connect (namespace allowed, not yet joined, client
    /// token, connection state recovery), before the upstream decides. Refuses the client
    /// itself and returns `None` when a check fails or the namespace is already joined.
    ///
    /// Split from `admit` so link mode (`upstream::link`) can admit synchronously, in the
    /// order the application's messages arrive, when the application answers.
    pub(crate) fn prepare_connect(
        &self,
        conn: &Arc<Conn>,
        nsp: String,
        mut auth: Map<String, Value>,
    ) -> Option<PreparedConnect> {
        if !self.namespace_allowed(&nsp) {
            self.reject(conn, &nsp, "namespace", "Invalid namespace", None);
            return None;
        }
        if sio(conn).socket(&nsp).is_some() {
            return None;
        }
        if let Some(hit) =
            self.engine.limits().and_then(|l| l.check_namespaces(sio(conn).sockets().len()).err())
        {
            self.reject(
                conn,
                &nsp,
                "limit",
                &hit.to_string(),
                Some(&serde_json::json!({ "reason": hit.label() })),
            );
            return None;
        }
        let claims = match self.client_claims(conn, &auth, &nsp) {
            Ok(c) => c,
            Err((message, reason)) => {
                let data = serde_json::json!({ "reason": reason });
                self.reject(conn, &nsp, "unauthorized", message, Some(&data));
                return None;
            }
        };
        let Some(ns) = self.namespace(&nsp) else {
            let hit = crate::limits::LimitHit::Namespaces(self.config.limits.namespaces);
            let data = serde_json::json!({ "reason": hit.label() });
            self.reject(conn, &nsp, "limit", &hit.to_string(), Some(&data));
            return None;
        };
        let pid_in = auth.remove("pid");
        let offset_in = auth.remove("offset");
        let restored = match (&ns.recovery, pid_in.as_ref().and_then(Value::as_str)) {
            (Some(rec), Some(pid)) => match rec.restore(pid, offset_in.as_ref().and_then(Value::as_str)) {
                Ok(r) => Some(r),
                Err(miss) => {
                    self.metrics.recovery_misses.with_label_values(&[miss.label()]).inc();
                    None
                }
            },
            _ => None,
        };
        let id = restored.as_ref().map_or_else(|| SocketId::new(self.engine.tag), |r| r.id.clone());
        let pid_in = pid_in.and_then(|v| v.as_str().map(Arc::<str>::from));
        Some(PreparedConnect { nsp, id, auth, claims, ns, restored, pid_in })
    }

    /// Register an accepted socket, join `rooms` (and recovered ones), queue the CONNECT reply
    /// and any missed packets, and tell the upstream. Returns `None` when the session closed
    /// or already joined the namespace meanwhile.
    pub(crate) fn admit(
        &self,
        conn: &Arc<Conn>,
        prep: PreparedConnect,
        rooms: Vec<Room>,
    ) -> Option<Arc<Socket>> {
        let PreparedConnect { nsp, id, auth, claims, ns, restored, pid_in } = prep;
        if conn.closed().is_some() || sio(conn).socket(&nsp).is_some() {
            return None;
        }
        let pid: Option<Arc<str>> = ns.recovery.as_ref().map(|_| match (&restored, pid_in) {
            (Some(_), Some(pid)) => pid,
            _ => Arc::from(SocketId::new(self.engine.tag).as_str()),
        });
        let register = |missed: Vec<packet::Outgoing>| {
            self.register(
                conn,
                &ns,
                (nsp, id, pid),
                (auth, claims),
                rooms,
                restored.as_ref().map(|r| (r, missed)),
            )
        };
        match (&restored, &ns.recovery) {
            // A recovered socket joins its rooms and gets what it missed under the log's lock.
            (Some(r), Some(rec)) => rec.with_replay(r, |missed| {
                register(missed.unwrap_or_else(|why| {
                    tracing::warn!(?why, "recovery replay became incomplete while the application decided");
                    self.metrics.recovery_incomplete.inc();
                    Vec::new()
                }))
            }),
            _ => register(Vec::new()),
        }
    }

    #[allow(clippy::type_complexity)]
    fn register(
        &self,
        conn: &Arc<Conn>,
        ns: &Arc<Namespace>,
        (nsp, id, pid): (String, SocketId, Option<Arc<str>>),
        (auth, claims): (Map<String, Value>, Option<Map<String, Value>>),
        rooms: Vec<Room>,
        restored: Option<(&Restored, Vec<packet::Outgoing>)>,
    ) -> Option<Arc<Socket>> {
        let socket = Arc::new(Socket::new(
            id.clone(),
            ns.clone(),
            conn.clone(),
            auth,
            claims.map(Arc::new),
            pid.clone(),
            restored.is_some(),
        ));
        let previous = ns.sockets.get(&id).map(|s| s.clone());
        if let Some(old) = previous {
            // The client recovered its socket before this node noticed its old session was
            // gone: the old incarnation leaves first (the rooms are the new one's now).
            self.retire_socket(&old);
        }
        ns.sockets.insert(id.clone(), socket.clone());
        if let Some(pid) = &pid {
            ns.by_pid.insert(pid.clone(), socket.clone());
        }
        sio(conn).sockets.lock().push(socket.clone());
        self.engine.attach(conn);
        self.metrics.sockets.inc();
        let mut all_rooms: Vec<Room> = rooms;
        if let Some((r, _)) = &restored {
            all_rooms.extend(r.rooms.iter().cloned());
        }
        let refused = ns.try_join(&socket, &all_rooms).err();
        if let Some(hit) = refused {
            // The app's middlewares joined these already in its view (link mode): undo there.
            if let Dispatch::Link(router) = &self.dispatch {
                router.rooms_refused(&socket, &all_rooms, hit);
            }
        }
        // A join replicates the recovery session itself; no join (none asked, or refused) must.
        if all_rooms.is_empty() || refused.is_some() {
            ns.replicate(&socket);
        }
        if conn.closed().is_some() {
            // The session ended while we were registering; undo (close_conn may have missed us).
            self.remove_socket(&socket, "transport close", false);
            return None;
        }
        self.send_to(&socket, &packet::connect_ok(&nsp, id.as_str(), pid.as_deref()), Delivery::Reliable);
        if let Some((_, missed)) = restored {
            self.metrics.recoveries.inc();
            for frames in &missed {
                self.send_to(&socket, frames, Delivery::Reliable);
            }
        }
        if ns.internal {
            return Some(socket);
        }
        if let Some(upstream) = self.upstream() {
            socket.enqueue_upstream(upstream.connected(socket.clone()));
        }
        if let Some(o) = self.observer.get() {
            o.connected(&socket);
        }
        Some(socket)
    }

    /// The client's verified token claims. A token is required when `client_auth = required`;
    /// otherwise a valid one still contributes its claims and an invalid one is ignored (apps
    /// often put their own tokens in `auth.token`).
    fn client_claims(
        &self,
        conn: &Conn,
        auth: &Map<String, Value>,
        nsp: &str,
    ) -> Result<Option<Map<String, Value>>, (&'static str, String)> {
        let required = self.config.auth.client_auth == socketio_hub_config::ClientAuth::Required;
        let token = auth
            .get("token")
            .and_then(Value::as_str)
            .or_else(|| conn.handshake.query.get("access_token").map(String::as_str));
        let claims = match token.map(|t| self.keys.verify_client_token(t)) {
            Some(Ok(claims)) => claims,
            Some(Err(e)) if required => return Err(("Unauthorized", e.to_string())),
            None if required => return Err(("Unauthorized", "a token is required".into())),
            _ => return Ok(None),
        };
        if let Some(allowed) = claims.get("sio.ns").and_then(Value::as_array) {
            let ok = allowed
                .iter()
                .filter_map(Value::as_str)
                .any(|p| socketio_hub_config::pattern_matches(p, nsp));
            if !ok {
                return Err(("Forbidden", format!("the token does not grant namespace {nsp}")));
            }
        }
        Ok(Some(claims))
    }

    /// Emit to the sockets `sel` selects in `ns` on this node and, without `ack`, on every other
    /// node of the cluster (cluster hook; acked cluster-wide emits are
    /// `cluster::Cluster::emit_with_acks`, which knows how many acks to wait for). The
    /// returned `Broadcast` describes the local part.
    pub fn emit(
        &self,
        ns: &Namespace,
        sel: &Selector,
        event: &str,
        args: &Args,
        delivery: Delivery,
        ack: Option<&AckSink>,
    ) -> Broadcast {
        if ns.logs(delivery, ack.is_some()) {
            // Recovery: stamp, send to every peer, log and queue here, in one order.
            let started = std::time::Instant::now();
            let peers = self.peers.get();
            let result = ns.broadcast_logged(None, sel, event, args, |stamp| {
                if let Some(p) = peers {
                    p.forward_logged(&ns.name, sel, event, args, stamp);
                }
            });
            return self.finish_broadcast(result, started);
        }
        if let (Some(peers), None) = (self.peers.get(), ack) {
            peers.forward_emit(&ns.name, sel, event, args, delivery);
        }
        self.emit_local(ns, sel, event, args, delivery, ack)
    }

    /// A logged broadcast a peer emitted (`stamp`): logged and emitted here only.
    pub fn emit_stamped(
        &self,
        ns: &Namespace,
        sel: &Selector,
        event: &str,
        args: &Args,
        stamp: Stamp,
    ) -> Broadcast {
        let started = std::time::Instant::now();
        let result = ns.broadcast_logged(Some(stamp), sel, event, args, |_| {});
        self.finish_broadcast(result, started)
    }

    /// Emit to the sockets `sel` selects in `ns` on this node only, closing slow clients and
    /// counting (what a broadcast forwarded by a peer does here).
    pub fn emit_local(
        &self,
        ns: &Namespace,
        sel: &Selector,
        event: &str,
        args: &Args,
        delivery: Delivery,
        ack: Option<&AckSink>,
    ) -> Broadcast {
        let started = std::time::Instant::now();
        let result = ns.broadcast(sel, event, args, EmitFlags { delivery }, ack);
        self.finish_broadcast(result, started)
    }

    /// Close the slow clients a broadcast found, and count it.
    fn finish_broadcast(&self, mut result: Broadcast, started: std::time::Instant) -> Broadcast {
        for (socket, reason) in result.slow.drain(..) {
            self.close_conn(&socket.conn, reason);
        }
        self.metrics.packets_out.inc_by(result.delivered as u64);
        self.metrics.broadcast_fanout.observe(result.delivered as f64);
        self.metrics.broadcast_seconds.observe(started.elapsed().as_secs_f64());
        result
    }
}
