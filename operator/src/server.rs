//! The operator's HTTP endpoints: `/metrics`, `/healthz` (liveness), `/readyz` (readiness).
//!
//! Invariants: liveness only says the process serves HTTP (restarting a live operator never
//! helps); readiness says it reached the API server and is either leading with a running
//! controller or standing by. Nothing here touches hubs.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use warp::http::StatusCode;
use warp::Filter;

use crate::metrics::Metrics;

/// Shared readiness flag.
#[derive(Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// Mark ready or not.
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::SeqCst);
    }
    /// Whether ready.
    pub fn get(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// The routes, for serving or for tests.
pub fn routes(
    metrics: Arc<Metrics>,
    ready: Readiness,
) -> impl Filter<Extract = (impl warp::Reply,), Error = warp::Rejection> + Clone {
    let metrics_route = warp::path!("metrics")
        .and(warp::get())
        .map(move || warp::reply::with_header(metrics.render(), "content-type", "text/plain; version=0.0.4"));
    let health = warp::path!("healthz").and(warp::get()).map(|| "ok");
    let readyz = warp::path!("readyz").and(warp::get()).map(move || {
        if ready.get() {
            warp::reply::with_status("ready", StatusCode::OK)
        } else {
            warp::reply::with_status("not ready", StatusCode::SERVICE_UNAVAILABLE)
        }
    });
    metrics_route.or(health).or(readyz)
}

/// Bind `addr` and serve until `shutdown` resolves. Returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    ready: Readiness,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let server = warp::serve(routes(metrics, ready)).incoming(listener).graceful(shutdown).run();
    tokio::spawn(server);
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn readiness_follows_the_flag_and_metrics_are_served() {
        let metrics = Arc::new(Metrics::new());
        let ready = Readiness::default();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let addr = serve("127.0.0.1:0".parse().unwrap(), metrics, ready.clone(), async {
            let _ = rx.await;
        })
        .await
        .unwrap();
        let get = |path: &'static str| async move {
            let res = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
            (res.status().as_u16(), res.text().await.unwrap())
        };
        assert_eq!(get("/readyz").await.0, 503);
        ready.set(true);
        assert_eq!(get("/readyz").await, (200, "ready".into()));
        assert_eq!(get("/healthz").await, (200, "ok".into()));
        let (status, body) = get("/metrics").await;
        assert_eq!(status, 200);
        assert!(body.contains("socketio_hub_operator_hubs{condition=\"Ready\"} 0"), "{body}");
        assert_eq!(get("/nope").await.0, 404);
        let _ = tx.send(());
    }
}
