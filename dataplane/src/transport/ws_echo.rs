//! A plain WebSocket echo server on the hub's own WebSocket stack (handshake, `ws_reader`,
//! the connection task): every text and binary message comes back as it came. It carries no
//! Engine.IO, so independent conformance suites (Autobahn's `fuzzingclient`) can test the
//! framing the hub's clients get; `examples/ws_echo.rs` runs it.
//!
//! Invariant: it shares every line of framing code with the Engine.IO path; only the
//! endpoint differs.

use std::borrow::Cow;
use std::convert::Infallible;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::StatusCode;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::websocket::{self, End, Endpoint, WriteQueue};
use super::Response;
use crate::frame::Frame;

struct Echo;

impl Endpoint for Echo {
    fn on_text(&mut self, text: &str, out: &mut WriteQueue) -> Result<(), End> {
        out.push(Frame::text(text.as_bytes()).wire().clone());
        Ok(())
    }

    fn on_binary(&mut self, data: Cow<'_, [u8]>, out: &mut WriteQueue) -> Result<(), End> {
        out.push(Frame::binary(&data).wire().clone());
        Ok(())
    }

    fn poll_send(&mut self, _cx: &mut Context<'_>, _out: &mut WriteQueue) -> Poll<Result<(), End>> {
        // Everything is queued as it is read; reading pauses while the queue is full.
        Poll::Pending
    }

    fn on_end(&mut self, _end: &End, _out: &mut WriteQueue) {}
}

fn answer(status: StatusCode, body: &'static str) -> Response {
    let mut resp = Response::new(Bytes::from_static(body.as_bytes()).into());
    *resp.status_mut() = status;
    resp
}

/// Serve WebSocket echo on every path of `listener`, with messages up to `max_message` bytes.
pub async fn serve_echo(listener: TcpListener, max_message: usize) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let svc = service_fn(move |mut req: http::Request<hyper::body::Incoming>| async move {
                let resp = if !websocket::is_upgrade(req.headers()) {
                    answer(StatusCode::BAD_REQUEST, "WebSocket only\n")
                } else {
                    match websocket::accept_key(req.headers()) {
                        Ok(key) => websocket::upgrade(&mut req, &key, max_message, Echo),
                        Err(_) => answer(StatusCode::BAD_REQUEST, "bad WebSocket handshake\n"),
                    }
                };
                Ok::<_, Infallible>(resp)
            });
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).with_upgrades().await;
        });
    }
}
