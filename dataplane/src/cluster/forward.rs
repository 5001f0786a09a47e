//! No sticky sessions: a long-polling request or WebSocket upgrade for a session owned by
//! another node is served by that node. Polling requests go through a pooled HTTP/1.1 client
//! (the request body streams to the owner; the owner's answer — bounded by its queue limits —
//! is relayed back); a WebSocket upgrade is replayed to the owner on a fresh connection and,
//! once both sides switched protocols, the two byte streams are spliced.
//!
//! Invariants: a request is forwarded at most once (`x-sioh-forwarded`), so a stale view can
//! never bounce it between nodes; an unknown or unreachable owner is a `502` naming the cause
//! (the client then reconnects and gets a new session where it lands); every forward has a
//! deadline (polling: ping interval + ping timeout + 5 s; upgrade handshake: 10 s).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Request, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

use super::Cluster;
use crate::ids::Sid;
use crate::transport::{Forward, Response};

/// Header marking a forwarded request.
pub const FORWARDED: &str = "x-sioh-forwarded";
const UPGRADE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest polling answer relayed (an owner's queue is bounded far below this).
const MAX_RELAYED: usize = 64 << 20;

/// The pooled client for polling requests.
pub type HttpClient = Client<HttpConnector, Incoming>;

/// A client with keep-alive pooling.
pub fn client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(2)));
    Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(60)).build(connector)
}

fn bad_gateway(message: String) -> Response {
    let body = serde_json::json!({ "code": 1, "message": message }).to_string();
    let mut resp = Response::new(Bytes::from(body).into());
    *resp.status_mut() = StatusCode::BAD_GATEWAY;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// The cluster as the transport's forwarder.
pub struct Forwarder(pub Arc<Cluster>);

impl Forward for Forwarder {
    fn forward(&self, req: Request<Incoming>, sid: Sid) -> Pin<Box<dyn Future<Output = Response> + Send>> {
        let cluster = self.0.clone();
        Box::pin(async move { cluster.forward(req, sid).await })
    }
}

impl Cluster {
    async fn forward(&self, mut req: Request<Incoming>, sid: Sid) -> Response {
        let ws = req.headers().get(header::UPGRADE).is_some();
        let kind = if ws { "websocket" } else { "polling" };
        let owner = super::owner_http(self, &sid).flatten();
        let Some(owner) = owner.filter(|_| !req.headers().contains_key(FORWARDED)) else {
            self.metrics.forwarded.with_label_values(&[kind, "unknown_owner"]).inc();
            return bad_gateway(format!(
                "session {sid} belongs to a node that is not in the cluster (any more)"
            ));
        };
        let path = req.uri().path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| "/".into());
        let uri: http::Uri = match format!("http://{owner}{path}").parse() {
            Ok(u) => u,
            Err(e) => return bad_gateway(format!("cannot address the owning node: {e}")),
        };
        req.headers_mut().insert(FORWARDED, HeaderValue::from_static("1"));
        let result =
            if ws { self.forward_upgrade(req, uri, owner).await } else { self.forward_poll(req, uri).await };
        match result {
            Ok(resp) => {
                self.metrics.forwarded.with_label_values(&[kind, "ok"]).inc();
                resp
            }
            Err(message) => {
                self.metrics.forwarded.with_label_values(&[kind, "failed"]).inc();
                tracing::debug!(%sid, %owner, %message, "forward failed");
                bad_gateway(format!("the node owning session {sid} did not answer: {message}"))
            }
        }
    }

    async fn forward_poll(&self, mut req: Request<Incoming>, uri: http::Uri) -> Result<Response, String> {
        *req.uri_mut() = uri;
        let resp = tokio::time::timeout(self.settings.poll_timeout, self.http.request(req))
            .await
            .map_err(|_| "timed out".to_string())?
            .map_err(|e| e.to_string())?;
        let (parts, body) = resp.into_parts();
        let body = http_body_util::Limited::new(body, MAX_RELAYED)
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok(Response::from_parts(parts, body.into()))
    }

    async fn forward_upgrade(
        &self,
        mut req: Request<Incoming>,
        uri: http::Uri,
        owner: std::net::SocketAddr,
    ) -> Result<Response, String> {
        let client_side = hyper::upgrade::on(&mut req);
        let (parts, _) = req.into_parts();
        let mut out = Request::from_parts(parts, http_body_util::Empty::<Bytes>::new());
        *out.uri_mut() =
            http::Uri::from(uri.path_and_query().cloned().unwrap_or_else(|| "/".parse().expect("static")));
        let upstream = tokio::time::timeout(UPGRADE_TIMEOUT, async {
            let stream = tokio::net::TcpStream::connect(owner).await.map_err(|e| e.to_string())?;
            let _ = stream.set_nodelay(true);
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(async move {
                let _ = conn.with_upgrades().await;
            });
            let mut resp = sender.send_request(out).await.map_err(|e| e.to_string())?;
            let upgraded =
                (resp.status() == StatusCode::SWITCHING_PROTOCOLS).then(|| hyper::upgrade::on(&mut resp));
            Ok::<_, String>((resp, upgraded))
        })
        .await
        .map_err(|_| "timed out".to_string())??;
        let (resp, upgraded) = upstream;
        let (parts, body) = resp.into_parts();
        let Some(upgraded) = upgraded else {
            // The owner refused the upgrade (unknown session, bad request): relay its answer.
            let body = http_body_util::Limited::new(body, 64 << 10)
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            return Ok(Response::from_parts(parts, body.into()));
        };
        tokio::spawn(async move {
            let (Ok(a), Ok(b)) = (client_side.await, upgraded.await) else { return };
            let (mut a, mut b) = (TokioIo::new(a), TokioIo::new(b));
            let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
        });
        Ok(Response::from_parts(parts, Bytes::new().into()))
    }
}
