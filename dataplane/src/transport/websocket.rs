//! WebSocket transport with our own framing loop over the raw TCP stream.
//!
//! After hyper completes the HTTP upgrade we take the `TcpStream` back and run one task per
//! connection that reads when the socket is readable, parses frames in a per-thread buffer,
//! and writes queued frames with vectored writes, coalescing everything queued into one
//! syscall. An idle connection therefore holds no read or write buffer at all, and a
//! broadcast frame (encoded once, see `frame`) is written from the shared bytes as-is.
//! `tungstenite` provides the handshake key derivation.
//!
//! Invariants: client frames must be masked; no frame or reassembled message may exceed
//! `engine.max_payload` (checked from the header, before buffering); control frames are never
//! written in the middle of a data frame.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Request, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use socketio_hub_protocol::engine;
use tokio::net::TcpStream;

use super::engine_http::EngineHttpError;
use super::ws_frame::{self, FrameError};
use super::Response;
use crate::engine::Engine;
use crate::engine::{CloseReason, Conn, Drained};
use crate::frame::Frame;

/// How the WebSocket relates to its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A new session that starts on WebSocket.
    Fresh,
    /// An upgrade probe for a polling session.
    Probe,
}

const READ_CHUNK: usize = 64 * 1024;
const MAX_IOV: usize = 64;

thread_local! {
    static READ_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0u8; READ_CHUNK]);
}

/// Answer the upgrade request and start the connection task once hyper hands the stream over.
pub(super) fn accept(
    engine: &Arc<Engine>,
    req: &mut Request<Incoming>,
    conn: Arc<Conn>,
    mode: Mode,
) -> Result<Response, EngineHttpError> {
    let key = req.headers().get(header::SEC_WEBSOCKET_KEY).ok_or(EngineHttpError::BadRequest)?;
    if req.headers().get(header::SEC_WEBSOCKET_VERSION).map(|v| v.as_bytes()) != Some(b"13") {
        return Err(EngineHttpError::BadRequest);
    }
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(req);
    let engine = engine.clone();
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "websocket upgrade failed");
                if mode == Mode::Fresh {
                    engine.close(&conn, CloseReason::TransportError);
                }
                return;
            }
        };
        match upgraded.downcast::<TokioIo<TcpStream>>() {
            Ok(parts) => {
                // The leftover is a view into hyper's connection buffer (8 KiB): copy the few
                // bytes it may hold and release the buffer, or every idle socket would keep one.
                let leftover = parts.read_buf.to_vec();
                drop(parts.read_buf);
                let ws = WsConn::new(engine, conn, parts.io.into_inner(), mode);
                ws.run(leftover).await;
            }
            Err(_) => {
                // Only plain TCP connections reach here (TLS terminates in front of the engine).
                tracing::error!("upgraded connection is not a TcpStream");
                engine.close(&conn, CloseReason::TransportError);
            }
        }
    });
    let mut resp = Response::new(Bytes::new().into());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    // The accept key is base64, always a valid header value.
    h.insert(header::SEC_WEBSOCKET_ACCEPT, HeaderValue::from_str(&accept).expect("base64 header"));
    Ok(resp)
}

/// Why the connection loop stopped.
enum Stop {
    /// The session closed (by anyone): send a close frame and end.
    Session(CloseReason),
    /// The peer or the network ended it.
    Transport(CloseReason),
    /// The upgrade probe failed or timed out; the session continues on polling.
    ProbeEnded,
}

struct WsConn {
    engine: Arc<Engine>,
    conn: Arc<Conn>,
    stream: TcpStream,
    /// Bytes of an incomplete frame (empty, and unallocated, almost always).
    pending_in: Vec<u8>,
    /// A fragmented message being reassembled: its opcode and data so far.
    fragments: Option<(u8, Vec<u8>)>,
    /// Frames to write, in order; the first may be partly written.
    out: VecDeque<Bytes>,
    written_of_front: usize,
    /// Whether this WebSocket is the session's transport (else: probing).
    active: bool,
    stop: Option<Stop>,
}

impl WsConn {
    fn new(engine: Arc<Engine>, conn: Arc<Conn>, stream: TcpStream, mode: Mode) -> Self {
        let _ = stream.set_nodelay(true);
        WsConn {
            engine,
            conn,
            stream,
            pending_in: Vec::new(),
            fragments: None,
            out: VecDeque::new(),
            written_of_front: 0,
            active: mode == Mode::Fresh,
            stop: None,
        }
    }

    async fn run(mut self, mut leftover: Vec<u8>) {
        if !leftover.is_empty() {
            self.ingest(&mut leftover);
        }
        drop(leftover);
        let upgrade_deadline = tokio::time::Instant::now()
            + Duration::from_millis(self.engine.settings.engine.upgrade_timeout_ms);
        loop {
            if let Err(e) = self.flush() {
                tracing::debug!(error = %e, "websocket write failed");
                self.stop.get_or_insert(Stop::Transport(CloseReason::TransportError));
            }
            if let Some(stop) = self.stop.take() {
                return self.finish(stop).await;
            }
            let wants_write = !self.out.is_empty();
            let probing = !self.active;
            tokio::select! {
                r = self.stream.readable() => {
                    if r.is_err() {
                        self.stop = Some(Stop::Transport(CloseReason::TransportError));
                    } else {
                        self.read_available();
                    }
                }
                drained = poll_fn(|cx| self.conn.poll_drain(cx, false)), if self.active && !wants_write => {
                    match drained {
                        Drained::Frames(frames) => self.out.extend(frames.into_iter().map(|f| f.wire().clone())),
                        Drained::Closed(reason) => self.stop = Some(Stop::Session(reason)),
                        Drained::Upgrading => {}
                    }
                }
                r = self.stream.writable(), if wants_write => {
                    if r.is_err() {
                        self.stop = Some(Stop::Transport(CloseReason::TransportError));
                    }
                }
                _ = tokio::time::sleep_until(upgrade_deadline), if probing => {
                    tracing::debug!(sid = %self.conn.sid, "upgrade timed out");
                    self.stop = Some(Stop::ProbeEnded);
                }
            }
        }
    }

    async fn finish(mut self, stop: Stop) {
        match stop {
            Stop::Session(reason) => {
                // Drain what the session still had queued, then a close frame.
                let queued = self.conn.take_queued();
                self.out.extend(queued.into_iter().map(|f| f.wire().clone()));
                let code: u16 = if reason == CloseReason::ServerShutdown { 1001 } else { 1000 };
                self.out.push_back(control(0x8, &code.to_be_bytes()));
                let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
                while !self.out.is_empty() && tokio::time::Instant::now() < deadline {
                    if self.flush().is_err() {
                        break;
                    }
                    if self.out.is_empty() {
                        break;
                    }
                    let _ = tokio::time::timeout_at(deadline, self.stream.writable()).await;
                }
            }
            Stop::Transport(reason) => {
                if self.active {
                    self.engine.close(&self.conn, reason);
                } else {
                    self.conn.abort_upgrade();
                }
            }
            Stop::ProbeEnded => self.conn.abort_upgrade(),
        }
    }

    fn read_available(&mut self) {
        loop {
            let result = READ_BUF.with(|buf| {
                let mut buf = buf.borrow_mut();
                match self.stream.try_read(&mut buf[..]) {
                    Ok(0) => Ok(0),
                    Ok(n) => {
                        self.ingest(&mut buf[..n]);
                        Ok(n)
                    }
                    Err(e) => Err(e),
                }
            });
            match result {
                Ok(0) => {
                    self.stop.get_or_insert(Stop::Transport(CloseReason::TransportClose));
                    return;
                }
                Ok(n) if n < READ_CHUNK => return,
                Ok(_) => {
                    if self.stop.is_some() {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    self.stop.get_or_insert(Stop::Transport(CloseReason::TransportError));
                    return;
                }
            }
        }
    }

    /// Feed received bytes; complete frames are handled, a partial one is kept.
    fn ingest(&mut self, data: &mut [u8]) {
        if self.pending_in.is_empty() {
            let used = self.parse_frames(data);
            if used < data.len() && self.stop.is_none() {
                self.pending_in.extend_from_slice(&data[used..]);
            }
        } else {
            let mut buf = std::mem::take(&mut self.pending_in);
            buf.extend_from_slice(data);
            let used = self.parse_frames(&mut buf);
            buf.drain(..used);
            if !buf.is_empty() && self.stop.is_none() {
                self.pending_in = buf;
            }
        }
    }

    fn fail(&mut self, reason: CloseReason, what: &str) {
        tracing::debug!(sid = %self.conn.sid, what, "websocket protocol error");
        self.engine.metrics.bad_input.with_label_values(&["websocket"]).inc();
        self.stop.get_or_insert(Stop::Transport(reason));
    }

    /// Parse and handle every complete frame in `buf`; returns the bytes consumed.
    fn parse_frames(&mut self, buf: &mut [u8]) -> usize {
        let max = self.engine.settings.engine.max_payload as u64;
        let mut pos = 0;
        while self.stop.is_none() {
            let head = match ws_frame::parse(&buf[pos..], max) {
                Ok(Some(h)) => h,
                Ok(None) => break,
                Err(e) => {
                    let reason = if e == FrameError::TooLarge {
                        self.engine.metrics.bad_input.with_label_values(&["payload_too_large"]).inc();
                        CloseReason::ParseError
                    } else {
                        CloseReason::TransportError
                    };
                    self.fail(reason, &e.to_string());
                    break;
                }
            };
            let end = pos + head.header_len + head.payload_len;
            if buf.len() < end {
                break;
            }
            let payload = &mut buf[pos + head.header_len..end];
            ws_frame::unmask(payload, head.mask);
            self.on_frame(head.fin, head.opcode, payload, max);
            pos = end;
        }
        pos
    }

    fn on_frame(&mut self, fin: bool, opcode: u8, payload: &[u8], max: u64) {
        match opcode {
            0x1 | 0x2 => {
                if self.fragments.is_some() {
                    return self.fail(CloseReason::TransportError, "new message inside a fragmented one");
                }
                if fin {
                    self.on_message(opcode, payload);
                } else {
                    self.fragments = Some((opcode, payload.to_vec()));
                }
            }
            0x0 => {
                let Some((op, mut data)) = self.fragments.take() else {
                    return self.fail(CloseReason::TransportError, "continuation without a message");
                };
                if data.len() as u64 + payload.len() as u64 > max {
                    self.engine.metrics.bad_input.with_label_values(&["payload_too_large"]).inc();
                    return self.fail(CloseReason::ParseError, "message larger than maxPayload");
                }
                data.extend_from_slice(payload);
                if fin {
                    self.on_message(op, &data);
                } else {
                    self.fragments = Some((op, data));
                }
            }
            0x8 => {
                // Echo the close and end; the session ends with the transport.
                self.out.push_back(control(0x8, payload.get(..2).unwrap_or(&[])));
                let _ = self.flush();
                self.stop.get_or_insert(Stop::Transport(CloseReason::TransportClose));
            }
            0x9 => self.out.push_back(control(0xA, payload)),
            0xA => {}
            _ => self.fail(CloseReason::TransportError, "unknown opcode"),
        }
    }

    fn on_message(&mut self, opcode: u8, payload: &[u8]) {
        if opcode == 0x2 {
            if self.active {
                self.engine.on_packet(&self.conn, engine::Packet::Binary(payload.into()));
            }
            return;
        }
        let Ok(text) = std::str::from_utf8(payload) else {
            return self.fail(CloseReason::ParseError, "invalid UTF-8 in a text frame");
        };
        let packet = match engine::decode_text(text) {
            Ok(p) => p,
            Err(_) => return self.fail(CloseReason::ParseError, "invalid Engine.IO packet"),
        };
        if self.active {
            return self.engine.on_packet(&self.conn, packet);
        }
        match packet {
            engine::Packet::Ping("probe") => {
                if self.conn.begin_upgrade() {
                    self.out.push_back(Frame::text(b"3probe").wire().clone());
                } else {
                    self.stop = Some(Stop::ProbeEnded);
                }
            }
            engine::Packet::Upgrade if self.conn.is_upgrading() => {
                self.conn.finish_upgrade();
                self.engine.count_upgrade();
                self.active = true;
            }
            _ => self.fail(CloseReason::ParseError, "unexpected packet during upgrade"),
        }
    }

    /// Write as much of `out` as the socket takes now, in as few syscalls as possible.
    fn flush(&mut self) -> io::Result<()> {
        while !self.out.is_empty() {
            let mut slices: [IoSlice<'_>; MAX_IOV] = std::array::from_fn(|_| IoSlice::new(&[]));
            let mut n = 0;
            for (i, b) in self.out.iter().take(MAX_IOV).enumerate() {
                slices[i] = IoSlice::new(if i == 0 { &b[self.written_of_front..] } else { &b[..] });
                n += 1;
            }
            match self.stream.try_write_vectored(&slices[..n]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(mut written) => {
                    self.engine.metrics.bytes_out.inc_by(written as u64);
                    while written > 0 {
                        let front_left = self.out[0].len() - self.written_of_front;
                        if written >= front_left {
                            written -= front_left;
                            self.out.pop_front();
                            self.written_of_front = 0;
                        } else {
                            self.written_of_front += written;
                            written = 0;
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        // Release the queue's storage once it is empty, so idle connections hold none.
        if self.out.capacity() > 16 {
            self.out = VecDeque::new();
        }
        Ok(())
    }
}

/// A server control frame (unmasked) with a payload of at most 125 bytes.
fn control(opcode: u8, payload: &[u8]) -> Bytes {
    let mut v = Vec::with_capacity(2 + payload.len());
    v.push(0x80 | opcode);
    v.push(payload.len().min(125) as u8);
    v.extend_from_slice(&payload[..payload.len().min(125)]);
    Bytes::from(v)
}
