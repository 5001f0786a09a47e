//! The admin endpoints on their own port: `/metrics`, `/healthz` (the process serves),
//! `/readyz` (accepting clients; false while starting or draining).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

use crate::state::Hub;

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
    let readyz = warp::path!("readyz").and(warp::get()).map(move || {
        if hub.ready.load(Ordering::SeqCst) {
            warp::reply::with_status("ready", StatusCode::OK)
        } else {
            warp::reply::with_status("not ready", StatusCode::SERVICE_UNAVAILABLE)
        }
    });
    metrics.or(healthz).or(readyz)
}
