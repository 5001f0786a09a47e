//! One Engine.IO session: one per client connection, whatever its transport.
//!
//! A session owns the bounded outbound queue (`Outbox`) that every sender pushes pre-encoded
//! frames into, and exactly one consumer drains: the pending long-polling GET, or the
//! WebSocket task once the transport is (or has been upgraded to) WebSocket.
//!
//! Invariants:
//! - the queue never holds more than `max_queued_frames` frames or `max_queued_bytes` bytes;
//!   a push past either closes the session with `CloseReason::SlowClient` instead of growing;
//! - a session is closed exactly once (`mark_closed` returns `true` to one caller, who then
//!   runs the cleanup);
//! - an idle session allocates nothing beyond its struct (the queue's storage is created on
//!   first push and released when drained).

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;

use crate::frame::Frame;
use crate::ids::Sid;

/// The transport a session currently uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// HTTP long-polling.
    Polling,
    /// WebSocket.
    Websocket,
}

impl TransportKind {
    /// Label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            TransportKind::Polling => "polling",
            TransportKind::Websocket => "websocket",
        }
    }
}

/// Why a session ended. The strings are Socket.IO's disconnect reasons where one exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client closed the transport (or sent an Engine.IO close).
    TransportClose,
    /// The transport failed (I/O error, protocol violation on the WebSocket layer).
    TransportError,
    /// No pong within `ping_timeout`.
    PingTimeout,
    /// The client sent something that is not Engine.IO/Socket.IO.
    ParseError,
    /// The client did not read fast enough and its queue overflowed.
    SlowClient,
    /// No namespace was joined within `connect_timeout`.
    ConnectTimeout,
    /// The server closed it (REST `disconnect` with `close`, or an app's `disconnect(true)`).
    ForcedClose,
    /// The node is shutting down.
    ServerShutdown,
    /// The client sent more than `limits.packets_per_second` / `bytes_per_second`.
    RateLimited,
}

impl CloseReason {
    /// Every reason, for metrics that start each series at 0.
    pub const ALL: [CloseReason; 9] = [
        CloseReason::TransportClose,
        CloseReason::TransportError,
        CloseReason::PingTimeout,
        CloseReason::ParseError,
        CloseReason::SlowClient,
        CloseReason::ConnectTimeout,
        CloseReason::ForcedClose,
        CloseReason::ServerShutdown,
        CloseReason::RateLimited,
    ];

    /// The Socket.IO disconnect reason passed to applications.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::TransportClose => "transport close",
            CloseReason::TransportError => "transport error",
            CloseReason::PingTimeout => "ping timeout",
            CloseReason::ParseError => "parse error",
            CloseReason::SlowClient => "transport error",
            CloseReason::ConnectTimeout => "connect timeout",
            CloseReason::ForcedClose => "forced close",
            CloseReason::ServerShutdown => "server shutting down",
            CloseReason::RateLimited => "rate limited",
        }
    }

    /// Low-cardinality metric label.
    pub fn label(self) -> &'static str {
        match self {
            CloseReason::TransportClose => "transport_close",
            CloseReason::TransportError => "transport_error",
            CloseReason::PingTimeout => "ping_timeout",
            CloseReason::ParseError => "parse_error",
            CloseReason::SlowClient => "slow_client",
            CloseReason::ConnectTimeout => "connect_timeout",
            CloseReason::ForcedClose => "forced_close",
            CloseReason::ServerShutdown => "server_shutdown",
            CloseReason::RateLimited => "rate_limited",
        }
    }
}

/// Whether a message may be dropped when the transport cannot take it right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Queued (bounded); the client is disconnected if the queue overflows.
    Reliable,
    /// Dropped unless the transport is ready to send it now.
    Volatile,
}

/// What a session learned about its client at the handshake, shared by all its sockets.
#[derive(Debug, Clone)]
pub struct ConnHandshake {
    /// Request headers (lower-case names; repeated headers joined with `, `).
    pub headers: HashMap<String, String>,
    /// Query parameters of the first request.
    pub query: HashMap<String, String>,
    /// Client address.
    pub address: SocketAddr,
    /// Wall-clock time of the handshake (RFC 2822 style, like socket.io's `handshake.time`).
    pub time: String,
    /// Milliseconds since the Unix epoch at the handshake.
    pub issued: u64,
    /// The request URL (path and query).
    pub url: String,
}

/// Limits applied to one session.
#[derive(Debug, Clone, Copy)]
pub struct QueueLimits {
    /// Most frames queued.
    pub max_frames: usize,
    /// Most bytes queued.
    pub max_bytes: usize,
}

/// Frames taken from the queue by the consumer.
pub enum Drained {
    /// Frames to send now.
    Frames(VecDeque<Frame>),
    /// The session is being upgraded: answer a pending poll with a noop.
    Upgrading,
    /// The session is closed; no more frames will come.
    Closed(CloseReason),
}

struct Outbox {
    frames: VecDeque<Frame>,
    bytes: usize,
    waker: Option<Waker>,
    transport: TransportKind,
    /// A WebSocket claimed the upgrade (at most one at a time).
    upgrade_claimed: bool,
    /// That WebSocket received the probe: a pending poll is answered with a noop.
    upgrading: bool,
    poll_pending: bool,
    closed: Option<CloseReason>,
}

/// One Engine.IO session.
pub struct Conn {
    /// Session id (names the owning node).
    pub sid: Sid,
    /// Handshake data.
    pub handshake: Arc<ConnHandshake>,
    outbox: Mutex<Outbox>,
    limits: QueueLimits,
    /// Hub clock (ms) when the next ping is due, or 0 while a pong is awaited.
    pub(super) ping_due: AtomicU64,
    /// Hub clock (ms) by which a pong must arrive, or 0 when none is awaited.
    pub(super) pong_deadline: AtomicU64,
    /// Hub clock (ms) of this session's live entry in the engine's deadline heap.
    pub(super) wake_at: AtomicU64,
    /// The awaited pong's deadline was already extended once by other traffic.
    pub(super) pong_grace_used: AtomicBool,
    /// Hub clock (ms) at which the session opened.
    pub opened_at: u64,
    /// Set by the layer above once the client has done what it must within the connect
    /// timeout (for Socket.IO: joined a namespace).
    pub attached: AtomicBool,
    /// The layer above's per-session state (Socket.IO keeps its sockets here).
    pub ext: OnceLock<Box<dyn Any + Send + Sync>>,
    /// Inbound rate-limit state (`crate::limits`; untouched while the limits are off).
    pub inbound: crate::limits::InboundBucket,
}

impl Conn {
    /// A new session using `transport`, with its first ping due at `ping_due`.
    pub fn new(
        sid: Sid,
        handshake: Arc<ConnHandshake>,
        transport: TransportKind,
        limits: QueueLimits,
        now: u64,
        ping_interval: u64,
    ) -> Self {
        Conn {
            sid,
            handshake,
            outbox: Mutex::new(Outbox {
                frames: VecDeque::new(),
                bytes: 0,
                waker: None,
                transport,
                upgrade_claimed: false,
                upgrading: false,
                poll_pending: false,
                closed: None,
            }),
            limits,
            ping_due: AtomicU64::new(now + ping_interval),
            pong_deadline: AtomicU64::new(0),
            wake_at: AtomicU64::new(now + ping_interval),
            pong_grace_used: AtomicBool::new(false),
            opened_at: now,
            attached: AtomicBool::new(false),
            ext: OnceLock::new(),
            inbound: Default::default(),
        }
    }

    /// Queue frames (kept contiguous: a binary packet's attachments follow its header).
    ///
    /// Returns `Err(CloseReason::SlowClient)` when the queue would overflow; the caller must
    /// then close the session. Volatile frames are dropped (returning `Ok(false)`) unless the
    /// transport could write them immediately.
    pub fn push(&self, frames: &[Frame], delivery: Delivery) -> Result<bool, CloseReason> {
        let mut out = self.outbox.lock();
        if out.closed.is_some() {
            return Ok(false);
        }
        if delivery == Delivery::Volatile {
            let ready = match out.transport {
                TransportKind::Websocket => out.frames.is_empty() && !out.upgrading,
                TransportKind::Polling => out.poll_pending && !out.upgrading,
            };
            if !ready {
                return Ok(false);
            }
        }
        let cost: usize = frames.iter().map(Frame::cost).sum();
        if out.frames.len() + frames.len() > self.limits.max_frames
            || out.bytes + cost > self.limits.max_bytes
        {
            return Err(CloseReason::SlowClient);
        }
        out.frames.extend(frames.iter().cloned());
        out.bytes += cost;
        if let Some(w) = out.waker.take() {
            w.wake();
        }
        Ok(true)
    }

    /// Mark the session closed. Returns `true` for the one caller that closed it.
    pub fn mark_closed(&self, reason: CloseReason) -> bool {
        let mut out = self.outbox.lock();
        if out.closed.is_some() {
            return false;
        }
        out.closed = Some(reason);
        if let Some(w) = out.waker.take() {
            w.wake();
        }
        true
    }

    /// Why the session closed, if it did.
    pub fn closed(&self) -> Option<CloseReason> {
        self.outbox.lock().closed
    }

    /// The current transport.
    pub fn transport(&self) -> TransportKind {
        self.outbox.lock().transport
    }

    /// Whether a WebSocket holds the upgrade (probing or about to).
    pub fn is_upgrading(&self) -> bool {
        self.outbox.lock().upgrade_claimed
    }

    /// Whether the claiming WebSocket received the probe (the client may now send `5`).
    pub fn is_probed(&self) -> bool {
        self.outbox.lock().upgrading
    }

    /// Claim the upgrade for a new WebSocket. Returns `false` (the WebSocket is to be closed)
    /// when the session is not on polling, is closed, or another WebSocket holds the claim.
    pub fn claim_upgrade(&self) -> bool {
        let mut out = self.outbox.lock();
        if out.transport != TransportKind::Polling || out.upgrade_claimed || out.closed.is_some() {
            return false;
        }
        out.upgrade_claimed = true;
        true
    }

    /// The claiming WebSocket received the probe. Wakes a pending poll so it returns a noop.
    /// Returns `false` when the session is no longer on polling or was closed.
    pub fn begin_upgrade(&self) -> bool {
        let mut out = self.outbox.lock();
        if out.transport != TransportKind::Polling || !out.upgrade_claimed || out.closed.is_some() {
            return false;
        }
        out.upgrading = true;
        if let Some(w) = out.waker.take() {
            w.wake();
        }
        true
    }

    /// Abandon an upgrade (the probe connection went away or timed out); the claim is released.
    pub fn abort_upgrade(&self) {
        let mut out = self.outbox.lock();
        if out.transport == TransportKind::Polling {
            out.upgrading = false;
            out.upgrade_claimed = false;
        }
    }

    /// Complete an upgrade: WebSocket becomes the transport and the consumer.
    pub fn finish_upgrade(&self) {
        let mut out = self.outbox.lock();
        out.upgrading = false;
        out.transport = TransportKind::Websocket;
        // A poll still parked must not keep the old waker: the WebSocket task registers next.
        if let Some(w) = out.waker.take() {
            w.wake();
        }
    }

    /// Register a long-polling GET. Returns `false` if one is already pending (the spec's
    /// overlapping-poll error).
    pub fn start_poll(&self) -> bool {
        let mut out = self.outbox.lock();
        if out.poll_pending {
            return false;
        }
        out.poll_pending = true;
        true
    }

    /// The long-polling GET finished.
    pub fn end_poll(&self) {
        let mut out = self.outbox.lock();
        out.poll_pending = false;
        out.waker = None;
    }

    /// Wait until the session closes, without taking frames (the WebSocket task uses this
    /// while its socket is not writable, so a closed session ends a stuck connection).
    pub fn poll_closed(&self, cx: &mut Context<'_>) -> Poll<CloseReason> {
        let mut out = self.outbox.lock();
        if let Some(reason) = out.closed {
            return Poll::Ready(reason);
        }
        match &out.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => out.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Take every queued frame, or register `cx` to be woken when there are some.
    ///
    /// `as_poll` makes an upgrading session answer with `Drained::Upgrading` (so the pending
    /// GET returns a noop) instead of waiting.
    pub fn poll_drain(&self, cx: &mut Context<'_>, as_poll: bool) -> Poll<Drained> {
        let mut out = self.outbox.lock();
        if !out.frames.is_empty() {
            out.bytes = 0;
            let frames = std::mem::take(&mut out.frames);
            return Poll::Ready(Drained::Frames(frames));
        }
        if let Some(reason) = out.closed {
            return Poll::Ready(Drained::Closed(reason));
        }
        if as_poll && (out.upgrading || out.transport != TransportKind::Polling) {
            return Poll::Ready(Drained::Upgrading);
        }
        match &out.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => out.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Take whatever is queued without waiting (the final flush before a close).
    pub fn take_queued(&self) -> VecDeque<Frame> {
        let mut out = self.outbox.lock();
        out.bytes = 0;
        std::mem::take(&mut out.frames)
    }

    /// Put back frames the consumer could not send (front of the queue, order kept).
    pub fn unshift(&self, mut frames: VecDeque<Frame>) {
        if frames.is_empty() {
            return;
        }
        let mut out = self.outbox.lock();
        out.bytes += frames.iter().map(Frame::cost).sum::<usize>();
        frames.append(&mut out.frames);
        out.frames = frames;
    }

    /// Record a pong: the next ping is due `ping_interval` from `now` (like the reference
    /// server, any pong restarts the interval). Returns the time to add to the deadline heap
    /// when this moves the session's next wake-up earlier (else its live entry covers it).
    pub fn on_pong(&self, now: u64, ping_interval: u64) -> Option<u64> {
        self.pong_deadline.store(0, Ordering::Relaxed);
        let due = now + ping_interval;
        self.ping_due.store(due, Ordering::Relaxed);
        let mut current = self.wake_at.load(Ordering::Relaxed);
        while due < current {
            match self.wake_at.compare_exchange(current, due, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return Some(due),
                Err(seen) => current = seen,
            }
        }
        None
    }

    /// The layer above's state, when it set one of type `T`.
    pub fn ext<T: Any>(&self) -> Option<&T> {
        self.ext.get().and_then(|b| b.downcast_ref::<T>())
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
