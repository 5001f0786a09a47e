//! WebSocket connections over the raw TCP stream: the upgrade answer, and one task per
//! connection that only moves bytes.
//!
//! After hyper completes the HTTP upgrade we take the `TcpStream` back. The task reads when
//! the socket is readable into a per-thread buffer, hands the bytes to the pure `ws_reader`,
//! passes the messages to its `Endpoint` (the Engine.IO session in `ws_engine.rs`, or the
//! plain echo of `ws_echo.rs`), and writes queued frames with vectored writes, coalescing
//! everything queued into one syscall. Protocol duties are the task's, not the endpoint's:
//! pongs, the closing handshake, and failing the connection with the reader's close code.
//! `tungstenite` provides the handshake key derivation.
//!
//! Invariants: an idle connection holds no read or write buffer (the read buffer is per
//! thread, the reader allocates only mid-frame, the write queue's storage is released when
//! drained); a frame is written from its shared bytes as-is; nothing is written after a Close
//! frame; reading pauses while more than `READ_PAUSE` bytes wait to be written, so a client
//! that sends pings (or, to the echo, messages) without reading cannot grow memory; a close
//! frame is followed by a half-close and a short linger, so the client reads it instead of a
//! reset.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::ws_reader::{Event, OpCode, ReadError, Reader};
use super::Response;

const READ_CHUNK: usize = 64 * 1024;
/// Full chunks read per wake-up before yielding to the other sockets of the worker thread.
const READ_BUDGET: usize = 4;
const MAX_IOV: usize = 64;
/// Stop reading while this much waits to be written.
const READ_PAUSE: usize = 1 << 20;
/// How long the final frames and the close frame may take to go out.
const CLOSE_FLUSH: Duration = Duration::from_secs(2);
/// How long to wait for the client's side of the close after ours.
const LINGER: Duration = Duration::from_secs(1);

thread_local! {
    static READ_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0u8; READ_CHUNK]);
}

/// Why an upgrade request cannot be answered with 101.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadHandshake {
    /// No `Sec-WebSocket-Key`.
    #[error("missing Sec-WebSocket-Key")]
    MissingKey,
    /// `Sec-WebSocket-Version` is not 13.
    #[error("unsupported Sec-WebSocket-Version (13 is required)")]
    Version,
}

/// Check an upgrade request's WebSocket headers; returns the `Sec-WebSocket-Accept` value.
pub(super) fn accept_key(headers: &HeaderMap) -> Result<String, BadHandshake> {
    let key = headers.get(header::SEC_WEBSOCKET_KEY).ok_or(BadHandshake::MissingKey)?;
    if headers.get(header::SEC_WEBSOCKET_VERSION).map(|v| v.as_bytes()) != Some(b"13") {
        return Err(BadHandshake::Version);
    }
    Ok(tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes()))
}

/// Whether the request asks for a WebSocket upgrade (`Connection: upgrade`, `Upgrade: websocket`).
pub(super) fn is_upgrade(headers: &HeaderMap) -> bool {
    let has = |name: header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    };
    has(header::CONNECTION, "upgrade") && has(header::UPGRADE, "websocket")
}

/// Answer 101 with `accept` and run `endpoint` on the connection once hyper hands it over.
pub(super) fn upgrade<E: Endpoint>(
    req: &mut Request<hyper::body::Incoming>,
    accept: &str,
    max_message: usize,
    mut endpoint: E,
) -> Response {
    let on_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "websocket upgrade failed");
                endpoint.on_end(&End::IoError, &mut WriteQueue::default());
                return;
            }
        };
        match upgraded.downcast::<TokioIo<TcpStream>>() {
            Ok(parts) => {
                // The leftover is a view into hyper's connection buffer (8 KiB): copy the few
                // bytes it may hold and release the buffer, or every idle socket would keep one.
                let leftover = parts.read_buf.to_vec();
                drop(parts.read_buf);
                let stream = parts.io.into_inner();
                let _ = stream.set_nodelay(true);
                let ws = Connection {
                    stream,
                    reader: Reader::new(max_message),
                    out: WriteQueue::default(),
                    endpoint,
                };
                ws.run(leftover).await;
            }
            Err(_) => {
                // Only plain TCP connections reach here (TLS terminates in front of the hub).
                tracing::error!("upgraded connection is not a TcpStream");
                endpoint.on_end(&End::IoError, &mut WriteQueue::default());
            }
        }
    });
    let mut resp = Response::new(Bytes::new().into());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    // The accept key is base64, always a valid header value.
    h.insert(header::SEC_WEBSOCKET_ACCEPT, HeaderValue::from_str(accept).expect("base64 header"));
    resp
}

/// How a connection ends.
#[derive(Debug)]
pub(super) enum End {
    /// The endpoint is done: send a close frame with this code (`None`: no code).
    Close(Option<u16>),
    /// The client sent a Close frame (with this code); it is echoed.
    PeerClosed(Option<u16>),
    /// The client's bytes broke RFC 6455; the close frame carries the error's code.
    Failed(ReadError),
    /// The client closed TCP without a closing handshake.
    Eof,
    /// Reading or writing failed, or the upgrade never completed.
    IoError,
}

/// What a WebSocket connection is for. Called from the connection's task only.
pub(super) trait Endpoint: Send + 'static {
    /// A text message arrived.
    fn on_text(&mut self, text: &str, out: &mut WriteQueue) -> Result<(), End>;
    /// A binary message arrived.
    fn on_binary(&mut self, data: Cow<'_, [u8]>, out: &mut WriteQueue) -> Result<(), End>;
    /// Move frames to send into `out`, or end. Polled whether or not `out` is empty; an
    /// endpoint with a bounded queue of its own should move frames only when it is, so a
    /// client that does not read fills that queue (and is disconnected) instead of `out`.
    fn poll_send(&mut self, cx: &mut Context<'_>, out: &mut WriteQueue) -> Poll<Result<(), End>>;
    /// When the endpoint stops waiting (an upgrade probe's deadline).
    fn deadline(&self) -> Option<Instant> {
        None
    }
    /// The deadline passed.
    fn on_deadline(&mut self) -> End {
        End::Close(Some(1000))
    }
    /// The connection is ending; `out` takes any last frames (before the close frame).
    fn on_end(&mut self, end: &End, out: &mut WriteQueue);
    /// `n` bytes were written to the socket.
    fn wrote(&mut self, n: usize) {
        let _ = n;
    }
}

/// Frames to write, in order; the first may be partly written.
#[derive(Default)]
pub(super) struct WriteQueue {
    frames: VecDeque<Bytes>,
    written_of_front: usize,
    bytes: usize,
}

impl WriteQueue {
    /// Queue one complete frame.
    pub(super) fn push(&mut self, frame: Bytes) {
        self.bytes += frame.len();
        self.frames.push_back(frame);
    }

    /// Whether nothing waits to be written.
    pub(super) fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Write as much as the socket takes now, in as few syscalls as possible; returns the
    /// bytes written.
    fn flush(&mut self, stream: &TcpStream) -> io::Result<usize> {
        let mut total = 0;
        while !self.frames.is_empty() {
            let mut slices: [IoSlice<'_>; MAX_IOV] = std::array::from_fn(|_| IoSlice::new(&[]));
            let mut n = 0;
            for (i, b) in self.frames.iter().take(MAX_IOV).enumerate() {
                slices[i] = IoSlice::new(if i == 0 { &b[self.written_of_front..] } else { &b[..] });
                n += 1;
            }
            match stream.try_write_vectored(&slices[..n]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(mut written) => {
                    total += written;
                    self.bytes -= written;
                    while written > 0 {
                        let front_left = self.frames[0].len() - self.written_of_front;
                        if written >= front_left {
                            written -= front_left;
                            self.frames.pop_front();
                            self.written_of_front = 0;
                        } else {
                            self.written_of_front += written;
                            written = 0;
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        // Release the queue's storage once it is empty, so idle connections hold none.
        if self.frames.is_empty() && self.frames.capacity() > 0 {
            self.frames = VecDeque::new();
        }
        Ok(total)
    }
}

/// A server control frame (unmasked) with a payload of at most 125 bytes.
pub(super) fn control(opcode: OpCode, payload: &[u8]) -> Bytes {
    let payload = &payload[..payload.len().min(125)];
    let mut v = Vec::with_capacity(2 + payload.len());
    v.push(0x80 | opcode.bits());
    v.push(payload.len() as u8);
    v.extend_from_slice(payload);
    Bytes::from(v)
}

/// A Close frame with `code` (none: an empty payload).
pub(super) fn close_frame(code: Option<u16>) -> Bytes {
    match code {
        Some(c) => control(OpCode::Close, &c.to_be_bytes()),
        None => control(OpCode::Close, &[]),
    }
}

struct Connection<E> {
    stream: TcpStream,
    reader: Reader,
    out: WriteQueue,
    endpoint: E,
}

enum Read {
    Got(usize),
    WouldBlock,
    Eof,
    Error,
    End(End),
}

impl<E: Endpoint> Connection<E> {
    async fn run(mut self, mut leftover: Vec<u8>) {
        let end = match self.ingest(&mut leftover) {
            Some(end) => end,
            None => {
                drop(leftover);
                self.serve().await
            }
        };
        if let End::Failed(e) = &end {
            tracing::debug!(error = %e, "websocket protocol error");
        }
        self.endpoint.on_end(&end, &mut self.out);
        let close = match &end {
            End::Close(code) => Some(*code),
            End::PeerClosed(code) => Some(*code),
            End::Failed(e) => Some(Some(e.close_code())),
            End::Eof | End::IoError => None,
        };
        if let Some(code) = close {
            self.out.push(close_frame(code));
            self.close_gracefully().await;
        }
    }

    async fn serve(&mut self) -> End {
        loop {
            match self.out.flush(&self.stream) {
                Ok(n) if n > 0 => self.endpoint.wrote(n),
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "websocket write failed");
                    return End::IoError;
                }
            }
            let wants_write = !self.out.is_empty();
            let may_read = self.out.bytes < READ_PAUSE;
            let deadline = self.endpoint.deadline();
            tokio::select! {
                r = self.stream.readable(), if may_read => {
                    if r.is_err() {
                        return End::IoError;
                    }
                    if let Some(end) = self.read_available() {
                        return end;
                    }
                }
                sent = poll_fn(|cx| self.endpoint.poll_send(cx, &mut self.out)) => {
                    if let Err(end) = sent {
                        return end;
                    }
                }
                r = self.stream.writable(), if wants_write => {
                    if r.is_err() {
                        return End::IoError;
                    }
                }
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    return self.endpoint.on_deadline();
                }
            }
        }
    }

    /// Read until the socket has nothing more (or the write queue is full, or the budget is
    /// spent).
    fn read_available(&mut self) -> Option<End> {
        // At most this many full chunks (256 KiB) per wake-up: a client that writes faster than
        // we parse must not hold the worker thread (the other sockets on it wait meanwhile), and a
        // session closed while reading (e.g. `limits` closing a flooder) is not read to the end.
        let mut budget = READ_BUDGET;
        loop {
            let step = READ_BUF.with(|buf| {
                let mut buf = buf.borrow_mut();
                match self.stream.try_read(&mut buf[..]) {
                    Ok(0) => Read::Eof,
                    Ok(n) => match self.ingest(&mut buf[..n]) {
                        Some(end) => Read::End(end),
                        None => Read::Got(n),
                    },
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => Read::WouldBlock,
                    Err(_) => Read::Error,
                }
            });
            match step {
                Read::Got(n) if n == READ_CHUNK && self.out.bytes < READ_PAUSE && budget > 1 => {
                    budget -= 1;
                    continue;
                }
                Read::Got(_) | Read::WouldBlock => return None,
                Read::Eof => return Some(End::Eof),
                Read::Error => return Some(End::IoError),
                Read::End(end) => return Some(end),
            }
        }
    }

    /// Hand received bytes to the reader and its events to the endpoint.
    fn ingest(&mut self, data: &mut [u8]) -> Option<End> {
        for item in self.reader.feed(data) {
            let handled = match item {
                Err(e) => return Some(End::Failed(e)),
                Ok(Event::Text(text)) => self.endpoint.on_text(&text, &mut self.out),
                Ok(Event::Binary(data)) => self.endpoint.on_binary(data, &mut self.out),
                Ok(Event::Ping(payload)) => {
                    self.out.push(control(OpCode::Pong, &payload));
                    Ok(())
                }
                Ok(Event::Pong(_)) => Ok(()),
                Ok(Event::Close(close)) => return Some(End::PeerClosed(close.map(|c| c.code))),
            };
            if let Err(end) = handled {
                return Some(end);
            }
        }
        None
    }

    /// Send what is queued (ending with the close frame), half-close, and give the client a
    /// moment to close its side.
    async fn close_gracefully(&mut self) {
        let deadline = Instant::now() + CLOSE_FLUSH;
        while !self.out.is_empty() {
            match self.out.flush(&self.stream) {
                Ok(n) => self.endpoint.wrote(n),
                Err(_) => return,
            }
            if self.out.is_empty() {
                break;
            }
            if !matches!(tokio::time::timeout_at(deadline, self.stream.writable()).await, Ok(Ok(()))) {
                return;
            }
        }
        let _ = self.stream.shutdown().await;
        let linger = deadline.min(Instant::now() + LINGER);
        loop {
            if !matches!(tokio::time::timeout_at(linger, self.stream.readable()).await, Ok(Ok(()))) {
                return;
            }
            let r = READ_BUF.with(|buf| self.stream.try_read(&mut buf.borrow_mut()[..]));
            match r {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
    }
}
