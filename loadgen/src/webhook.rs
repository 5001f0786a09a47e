//! `webhook-echo`: the tiny application the hub reaches in serverless mode during the echo
//! bench.
//!
//! The hub POSTs one JSON document per upstream event, e.g.
//! `{"type":"event","namespace":"/","sid":"…","event":"echo","args":[…],"ack":true}`, with
//! headers `ce-type: socketio.event` and `ce-signature: v1=<hex HMAC-SHA256>` over
//! `<ce-timestamp>\n<ce-id>\n<ce-type>\n<ce-source>\n<body>` (docs/webhooks.md).
//! The app answers 200 with a JSON array, which becomes the ack's arguments: for `event` it is
//! the same `args`; every other type (connect, connected, disconnected) gets `200 {}`, i.e.
//! accepted. With `--access-key` each signature is checked and a bad one answered 401, as a
//! real application would.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::rc::Rc;

use anyhow::Result;
use bytes::Bytes;
use clap::Args;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use sha2::Sha256;
use tokio::net::TcpListener;

/// Options of `webhook-echo`.
#[derive(Debug, Clone, Args)]
pub struct WebhookArgs {
    /// Address to listen on (port 0 picks one; the ready line tells which).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// The hub's access key; when given, every request's `ce-signature` is verified.
    #[arg(long)]
    pub access_key: Option<String>,
}

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert("content-type", "application/json".parse().expect("static header"));
    r
}

/// Whether any of the comma-separated `v1=<hex>` signatures (one per hub access key) is the
/// HMAC-SHA256 of `signed` (the headers' prefix, see the module doc) then `body` under `key`.
/// The bench checks signatures only (its calls cannot be replayed: it is their only receiver).
fn signature_ok(key: &str, header: Option<&str>, signed: &[u8], body: &[u8]) -> bool {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key.as_bytes()) else { return false };
    mac.update(signed);
    mac.update(body);
    let want = mac.finalize().into_bytes();
    header.unwrap_or("").split(',').filter_map(|s| s.trim().strip_prefix("v1=")).any(|hex| {
        let got: Vec<u8> = (0..hex.len() / 2)
            .filter_map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
            .collect();
        got.len() == want.len() && got.iter().zip(want.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    })
}

async fn handle(
    key: Rc<Option<String>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let sig = req.headers().get("ce-signature").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let signed = format!(
        "{}\n{}\n{}\n{}\n",
        header("ce-timestamp"),
        header("ce-id"),
        header("ce-type"),
        header("ce-source")
    );
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(reply(StatusCode::BAD_REQUEST, "[]")),
    };
    if let Some(key) = key.as_ref() {
        if !signature_ok(key, sig.as_deref(), signed.as_bytes(), &body) {
            return Ok(reply(StatusCode::UNAUTHORIZED, r#"{"error":"bad signature"}"#));
        }
    }
    let Ok(doc) = serde_json::from_slice::<Value>(&body) else {
        return Ok(reply(StatusCode::BAD_REQUEST, r#"{"error":"not JSON"}"#));
    };
    if doc["type"] == "event" {
        let args = doc.get("args").cloned().unwrap_or(Value::Array(Vec::new()));
        return Ok(reply(StatusCode::OK, serde_json::to_vec(&args).unwrap_or_default()));
    }
    Ok(reply(StatusCode::OK, "{}"))
}

/// Serve until killed.
pub async fn run(args: WebhookArgs) -> Result<()> {
    let listener = TcpListener::bind(args.listen).await?;
    println!("webhook-echo ready addr={}", listener.local_addr()?);
    let key = Rc::new(args.access_key);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let key = key.clone();
        tokio::task::spawn_local(async move {
            let svc = service_fn(move |req| handle(key.clone(), req));
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_signatures() {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"k").unwrap();
        mac.update(b"1\nid\nsocketio.event\n/s\nbody");
        let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
        let signed = b"1\nid\nsocketio.event\n/s\n";
        assert!(signature_ok("k", Some(&format!("v1={hex}")), signed, b"body"));
        assert!(!signature_ok("k", Some(&format!("v1={hex}")), signed, b"other"));
        assert!(!signature_ok("k", Some(&format!("v1={hex}")), b"2\nid\nsocketio.event\n/s\n", b"body"));
        assert!(!signature_ok("k", None, signed, b"body"));
        assert!(signature_ok("k", Some(&format!("v1=00, v1={hex}")), signed, b"body"));
    }
}
