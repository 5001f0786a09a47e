//! The admin endpoints on their own port: `/metrics`, `/healthz` (the process serves),
//! `/readyz` (accepting clients; false while starting or draining), and `/load` (how busy this
//! node is, as JSON, for the operator's pod-deletion cost and for balancers that prefer empty
//! pods).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde::Serialize;
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

use crate::state::Hub;

/// What `/load` answers. Every count is this node's alone; the fields are a stable contract
/// (docs/autoscaling.md), read by `socketio-hub-operator`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Load {
    /// Open Engine.IO sessions (client connections), every transport.
    pub connections: u64,
    /// Of which on long-polling.
    pub polling: u64,
    /// Of which on WebSocket.
    pub websocket: u64,
    /// Connected Socket.IO sockets (a connection has one per namespace it joined).
    pub sockets: u64,
    /// Most sessions this node accepts (`engine.max_sessions`).
    pub capacity: u64,
    /// Whether `/readyz` says ready.
    pub ready: bool,
    /// Whether the node refuses new sessions because it is shutting down.
    pub draining: bool,
}

impl Load {
    /// The load of `hub` now.
    pub fn of(hub: &Hub) -> Load {
        let gauge = |t: &str| hub.metrics.connections.with_label_values(&[t]).get().max(0) as u64;
        Load {
            connections: hub.engine.sessions.len() as u64,
            polling: gauge("polling"),
            websocket: gauge("websocket"),
            sockets: hub.metrics.sockets.get().max(0) as u64,
            capacity: hub.config.engine.max_sessions as u64,
            ready: hub.ready.load(Ordering::SeqCst),
            draining: hub.engine.is_draining(),
        }
    }
}

/// The admin routes.
pub fn routes(
    hub: Arc<Hub>,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone + Send + Sync + 'static {
    let h = hub.clone();
    let metrics = warp::path!("metrics").and(warp::get()).map(move || {
        h.metrics.refresh(h.metrics_snapshot());
        h.refresh_recovery_gauges();
        warp::reply::with_header(
            h.metrics.render(),
            "content-type",
            "text/plain; version=0.0.4; charset=utf-8",
        )
    });
    let healthz = warp::path!("healthz").and(warp::get()).map(|| "ok");
    let h = hub.clone();
    let load = warp::path!("load").and(warp::get()).map(move || warp::reply::json(&Load::of(&h)));
    let readyz = warp::path!("readyz").and(warp::get()).map(move || {
        if hub.ready.load(Ordering::SeqCst) {
            warp::reply::with_status("ready", StatusCode::OK)
        } else {
            warp::reply::with_status("not ready", StatusCode::SERVICE_UNAVAILABLE)
        }
    });
    metrics.or(healthz).or(load).or(readyz)
}
