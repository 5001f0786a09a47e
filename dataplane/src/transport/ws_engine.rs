//! Engine.IO over a WebSocket: the endpoint that ties a connection to its session, either
//! from the start (`transport=websocket` without a sid) or as an upgrade probe for a polling
//! session, and the endpoint for a WebSocket that may not have the session (the reference
//! server accepts it and closes it at once).
//!
//! Invariants: a probe never drains the session's queue (the polling consumer still owns it)
//! until the client confirms with `5`; a probe that fails or times out leaves the session on
//! polling and releases its claim on the upgrade; only an active WebSocket closes the session.

use std::borrow::Cow;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use socketio_hub_protocol::engine::{self, Packet};
use tokio::time::Instant;

use super::websocket::{End, Endpoint, WriteQueue};
use crate::engine::{CloseReason, Conn, Drained, Engine};
use crate::frame::Frame;

/// A WebSocket carrying (or probing for) one Engine.IO session.
pub(super) struct SessionEndpoint {
    engine: Arc<Engine>,
    conn: Arc<Conn>,
    /// This WebSocket is the session's transport (else: probing an upgrade).
    active: bool,
    probe_deadline: Option<Instant>,
}

impl SessionEndpoint {
    /// A session that starts on WebSocket.
    pub(super) fn fresh(engine: Arc<Engine>, conn: Arc<Conn>) -> Self {
        SessionEndpoint { engine, conn, active: true, probe_deadline: None }
    }

    /// An upgrade probe for a polling session (which `Conn::claim_upgrade` granted).
    pub(super) fn probe(engine: Arc<Engine>, conn: Arc<Conn>) -> Self {
        let timeout = Duration::from_millis(engine.settings.engine.upgrade_timeout_ms);
        SessionEndpoint { engine, conn, active: false, probe_deadline: Some(Instant::now() + timeout) }
    }

    /// The client sent something that is not Engine.IO.
    fn bad_packet(&mut self, what: &'static str) -> End {
        tracing::debug!(sid = %self.conn.sid, what, "bad Engine.IO packet over WebSocket");
        self.engine.metrics.bad_input.with_label_values(&["engine"]).inc();
        if self.active {
            self.engine.close(&self.conn, CloseReason::ParseError);
        }
        // 1008: the message broke the policy of the layer above (not RFC 6455 framing).
        End::Close(Some(1008))
    }
}

/// The close code a session's end is announced with.
fn close_code(reason: CloseReason) -> u16 {
    if reason == CloseReason::ServerShutdown {
        1001
    } else {
        1000
    }
}

impl Endpoint for SessionEndpoint {
    fn on_text(&mut self, text: &str, out: &mut WriteQueue) -> Result<(), End> {
        let Ok(packet) = engine::decode_text(text) else {
            return Err(self.bad_packet("invalid Engine.IO packet"));
        };
        if self.active {
            self.engine.on_packet(&self.conn, packet);
            return Ok(());
        }
        match packet {
            Packet::Ping("probe") if self.conn.begin_upgrade() => {
                out.push(Frame::text(b"3probe").wire().clone());
                Ok(())
            }
            // The session closed or moved on while this WebSocket waited.
            Packet::Ping("probe") => Err(End::Close(Some(1000))),
            Packet::Upgrade if self.conn.is_probed() => {
                self.conn.finish_upgrade();
                self.engine.count_upgrade();
                self.active = true;
                self.probe_deadline = None;
                Ok(())
            }
            _ => Err(self.bad_packet("unexpected packet during upgrade")),
        }
    }

    fn on_binary(&mut self, data: Cow<'_, [u8]>, _out: &mut WriteQueue) -> Result<(), End> {
        if !self.active {
            return Err(self.bad_packet("binary message during upgrade"));
        }
        self.engine.on_packet(&self.conn, Packet::Binary(data));
        Ok(())
    }

    fn poll_send(&mut self, cx: &mut Context<'_>, out: &mut WriteQueue) -> Poll<Result<(), End>> {
        if !self.active {
            // The polling consumer owns the queue until the upgrade completes.
            return Poll::Pending;
        }
        if !out.is_empty() {
            // Frames stay in the session's bounded queue until the socket takes the last
            // batch; only a close is noticed meanwhile.
            return self.conn.poll_closed(cx).map(|reason| Err(End::Close(Some(close_code(reason)))));
        }
        match self.conn.poll_drain(cx, false) {
            Poll::Ready(Drained::Frames(frames)) => {
                for f in frames {
                    out.push(f.wire().clone());
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Drained::Closed(reason)) => Poll::Ready(Err(End::Close(Some(close_code(reason))))),
            // Not returned to a non-polling consumer; wait for the next wake-up.
            Poll::Ready(Drained::Upgrading) | Poll::Pending => Poll::Pending,
        }
    }

    fn deadline(&self) -> Option<Instant> {
        self.probe_deadline
    }

    fn on_deadline(&mut self) -> End {
        tracing::debug!(sid = %self.conn.sid, "upgrade timed out");
        End::Close(Some(1000))
    }

    fn on_end(&mut self, end: &End, out: &mut WriteQueue) {
        if let End::Failed(e) = end {
            let label = if e.is_too_large() { "payload_too_large" } else { "websocket" };
            self.engine.metrics.bad_input.with_label_values(&[label]).inc();
        }
        if !self.active {
            self.conn.abort_upgrade();
            return;
        }
        match end {
            // The session ended (or this endpoint ended it): send what it still had queued.
            End::Close(_) => {
                for f in self.conn.take_queued() {
                    out.push(f.wire().clone());
                }
            }
            End::PeerClosed(_) | End::Eof => self.engine.close(&self.conn, CloseReason::TransportClose),
            End::Failed(e) => {
                let reason = if e.is_too_large() || e.is_invalid_utf8() {
                    CloseReason::ParseError
                } else {
                    CloseReason::TransportError
                };
                self.engine.close(&self.conn, reason);
            }
            End::IoError => self.engine.close(&self.conn, CloseReason::TransportError),
        }
    }

    fn wrote(&mut self, n: usize) {
        self.engine.metrics.bytes_out.inc_by(n as u64);
    }
}

/// A WebSocket for a session that already has one (or is being upgraded by another): accepted,
/// then closed with an empty Close frame, leaving the session alone — as the reference server
/// does with `socket.close()` after the handshake.
pub(super) struct Refused;

impl Endpoint for Refused {
    fn on_text(&mut self, _text: &str, _out: &mut WriteQueue) -> Result<(), End> {
        Err(End::Close(None))
    }

    fn on_binary(&mut self, _data: Cow<'_, [u8]>, _out: &mut WriteQueue) -> Result<(), End> {
        Err(End::Close(None))
    }

    fn poll_send(&mut self, _cx: &mut Context<'_>, _out: &mut WriteQueue) -> Poll<Result<(), End>> {
        Poll::Ready(Err(End::Close(None)))
    }

    fn on_end(&mut self, _end: &End, _out: &mut WriteQueue) {}
}
