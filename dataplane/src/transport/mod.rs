//! The HTTP edge: the accept loop, Engine.IO over long-polling and WebSocket, CORS.
//!
//! Every accepted TCP connection gets `TCP_NODELAY` and an HTTP/1.1 connection; requests
//! for the Socket.IO path go to the Engine.IO handler, everything else (REST API, demo page)
//! to the warp filter given at start. WebSocket framing is split in three: `ws_reader` (pure
//! RFC 6455 reading), `websocket` (the per-connection task that moves bytes), and the
//! endpoints (`ws_engine` for Engine.IO sessions, `ws_echo` for conformance testing).
//!
//! Architecture invariant: this module is the only code that knows HTTP and WebSocket; it
//! hands decoded Engine.IO packets to `state::Hub` and drains pre-encoded frames from
//! sessions.

mod cors;
mod engine_http;
mod websocket;
mod ws_echo;
mod ws_engine;
pub mod ws_reader;

pub use websocket::BadHandshake;
pub use ws_echo::serve_echo as serve_websocket_echo;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tower_service::Service as _;

use crate::engine::Engine;

/// The response type shared with warp.
pub type Response = warp::reply::Response;

/// Where requests for sessions owned by other nodes go (implemented by `cluster`; a single
/// node has none, and its path is unchanged).
pub trait Forward: Send + Sync + 'static {
    /// Serve `req` (a polling request or WebSocket upgrade for `sid`) from the node owning `sid`.
    fn forward(
        &self,
        req: http::Request<Incoming>,
        sid: crate::ids::Sid,
    ) -> Pin<Box<dyn Future<Output = Response> + Send>>;
}

/// Serve clients on `listener` until the engine shuts down. `other` answers every request that
/// is not for the Socket.IO path.
pub async fn serve(
    engine: Arc<Engine>,
    listener: TcpListener,
    other: warp::filters::BoxedFilter<(Response,)>,
) {
    serve_with(engine, listener, other, None).await
}

/// `serve`, with requests for other nodes' sessions handed to `forward` (cluster).
pub async fn serve_with(
    engine: Arc<Engine>,
    listener: TcpListener,
    other: warp::filters::BoxedFilter<(Response,)>,
    forward: Option<Arc<dyn Forward>>,
) {
    let other = warp::service(other);
    loop {
        let (stream, remote) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and similar: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    engine.metrics.accept_errors.inc();
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = engine.shutdown.cancelled() => return,
        };
        let _ = stream.set_nodelay(true);
        let engine = engine.clone();
        let other = other.clone();
        let forward = forward.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: http::Request<Incoming>| {
                let engine = engine.clone();
                let mut other = other.clone();
                let forward = forward.clone();
                async move {
                    let resp = if engine_http::is_engine_path(&engine, req.uri().path()) {
                        engine_http::handle(engine, req, remote, forward.as_ref()).await
                    } else {
                        match other.call(req).await {
                            Ok(r) => r,
                            Err(never) => match never {},
                        }
                    };
                    Ok::<_, Infallible>(resp)
                }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30))
                .max_buf_size(64 * 1024)
                .serve_connection(TokioIo::new(stream), svc)
                .with_upgrades();
            let _ = conn.await;
        });
    }
}

/// Bind a listener (with `SO_REUSEADDR`) and a large accept backlog.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket =
        if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}
