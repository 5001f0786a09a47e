//! Abuse limits (`[limits]`): sessions and handshakes per client IP, inbound packets and bytes
//! per connection, rooms per socket, namespaces per connection.
//!
//! Each limit is off (0) by default and costs nothing then: the per-IP table is not touched,
//! and the engine's inbound hook is one `OnceLock` load. Every refusal or close is counted in
//! `socketio_hub_limit_refusals_total{limit}` with a fixed label (`LimitHit::label`).
//!
//! Where each limit is applied (one call at each site):
//! - `Limits::admit_session` / `release_session`: `Engine::open_session` / `Engine::close`
//!   (refused handshakes become HTTP 429 in `transport::engine_http`);
//! - `Limits::inbound_ok`: `Engine::on_packet`, for both transports (over the limit the
//!   connection is closed with `CloseReason::RateLimited`: a client that floods is not one whose
//!   messages we want to keep, and closing frees its share of the node at once);
//! - `RoomLimit::admits`: `Namespace::join`, which every join path goes through;
//! - `check_namespaces`: `Hub::prepare_connect`.
//!
//! Invariants: the per-IP table never holds more than `max_tracked_ips` entries; a session
//! counted by `admit_session` is uncounted exactly once, by `release_session` (the engine closes
//! a session exactly once), and the key of both is derived from the same handshake. Token
//! buckets read the tokio clock through the caller's `now_ms`, so tests pause time.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use parking_lot::Mutex;
use prometheus::IntCounter;
use socketio_hub_config::LimitsConfig;
use socketio_hub_protocol::engine::Packet;

use crate::engine::ConnHandshake;
use crate::metrics::Metrics;

/// A limit that refused something (each a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitHit {
    /// `connections_per_ip` sessions are open from this IP.
    #[error("too many connections from this address (limit {0})")]
    ConnectionsPerIp(u32),
    /// More than `handshakes_per_second_per_ip` new sessions per second.
    #[error("too many new connections per second from this address (limit {0}/s)")]
    HandshakesPerIp(u32),
    /// The per-IP table is full of addresses with live sessions.
    #[error("too many client addresses are connected to this node")]
    TrackedIps,
    /// The connection sent more than `packets_per_second` or `bytes_per_second`.
    #[error("inbound rate limit exceeded")]
    InboundRate,
    /// The socket is in `rooms_per_socket` rooms.
    #[error("room limit reached ({0} rooms per socket)")]
    RoomsPerSocket(usize),
    /// The connection joined `namespaces_per_connection` namespaces.
    #[error("namespace limit reached ({0} namespaces per connection)")]
    NamespacesPerConnection(usize),
    /// The node serves `namespaces` namespaces already.
    #[error("this hub serves its maximum of {0} namespaces")]
    Namespaces(usize),
}

impl LimitHit {
    /// Every `label()`, for metrics that start each series at 0.
    pub const LABELS: [&'static str; 7] = [
        "connections_per_ip",
        "handshakes_per_ip",
        "tracked_ips",
        "inbound_rate",
        "rooms_per_socket",
        "namespaces_per_connection",
        "namespaces",
    ];

    /// Low-cardinality metric label.
    pub fn label(self) -> &'static str {
        match self {
            LimitHit::ConnectionsPerIp(_) => "connections_per_ip",
            LimitHit::HandshakesPerIp(_) => "handshakes_per_ip",
            LimitHit::TrackedIps => "tracked_ips",
            LimitHit::InboundRate => "inbound_rate",
            LimitHit::RoomsPerSocket(_) => "rooms_per_socket",
            LimitHit::NamespacesPerConnection(_) => "namespaces_per_connection",
            LimitHit::Namespaces(_) => "namespaces",
        }
    }
}

/// A token bucket: `rate` tokens per second up to `capacity`. A take needs `cost` tokens, or
/// one whole token when `cost` is larger, and may then overdraw (so one message larger than the
/// bucket still passes, and the debt throttles what follows).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    tokens: f64,
    last_ms: u64,
}

impl Bucket {
    /// A full bucket at `now_ms`.
    pub fn full(capacity: f64, now_ms: u64) -> Self {
        Bucket { tokens: capacity, last_ms: now_ms }
    }

    fn refill(&mut self, rate: f64, capacity: f64, now_ms: u64) {
        let elapsed = now_ms.saturating_sub(self.last_ms) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed * rate).min(capacity);
        self.last_ms = self.last_ms.max(now_ms);
    }

    /// Take `cost` tokens at `now_ms`; false (nothing taken) when the bucket is empty.
    pub fn take(&mut self, rate: f64, capacity: f64, cost: f64, now_ms: u64) -> bool {
        self.refill(rate, capacity, now_ms);
        if self.tokens < cost.min(1.0) {
            return false;
        }
        self.tokens -= cost;
        true
    }

    /// Whether the bucket is full at `now_ms` (then it is the same as a fresh one).
    fn is_full(&self, rate: f64, capacity: f64, now_ms: u64) -> bool {
        let mut b = *self;
        b.refill(rate, capacity, now_ms);
        b.tokens >= capacity
    }
}

/// The inbound buckets of one connection (a field of `engine::Conn`): packets and bytes, and
/// whether the connection already went over (it is being closed; later packets are refused
/// without being counted again).
#[derive(Debug, Default)]
pub struct InboundBucket(Mutex<Option<InboundState>>);

#[derive(Debug)]
struct InboundState {
    packets: Bucket,
    bytes: Bucket,
    tripped: bool,
}

struct IpEntry {
    sessions: u32,
    handshakes: Bucket,
}

/// The limits of one node.
pub struct Limits {
    cfg: LimitsConfig,
    metrics: Arc<Metrics>,
    ips: Mutex<IpTable>,
}

#[derive(Default)]
struct IpTable {
    map: HashMap<IpAddr, IpEntry>,
    /// Entries with no live session (evictable at the bound).
    idle: usize,
}

impl Limits {
    /// The limits of `cfg`, counting into `metrics`.
    pub fn new(cfg: &LimitsConfig, metrics: Arc<Metrics>) -> Self {
        Limits { cfg: cfg.clone(), metrics, ips: Mutex::new(IpTable::default()) }
    }

    fn refused(&self, hit: LimitHit) -> LimitHit {
        self.metrics.limit_refusals.with_label_values(&[hit.label()]).inc();
        hit
    }

    fn per_ip_on(&self) -> bool {
        self.cfg.connections_per_ip > 0 || self.cfg.handshakes_per_second_per_ip > 0
    }

    /// The client's address for the per-IP limits: the `hops`-th entry from the right of the
    /// trusted proxy header when one is configured and parses, else the TCP peer. IPv4-mapped
    /// IPv6 counts as IPv4, and IPv6 is grouped by /64 (one subscriber's prefix).
    pub fn client_ip(&self, hs: &ConnHandshake) -> IpAddr {
        let from_header = self.cfg.trusted_proxy_header.as_ref().and_then(|name| {
            let value = hs.headers.get(&name.to_ascii_lowercase())?;
            let entry = value.rsplit(',').nth(self.cfg.trusted_proxy_hops.saturating_sub(1))?;
            parse_ip(entry.trim())
        });
        group(from_header.unwrap_or(hs.address.ip()))
    }

    fn handshake_rate(&self) -> (f64, f64) {
        let rate = f64::from(self.cfg.handshakes_per_second_per_ip);
        (rate, rate)
    }

    /// Admit a new session from the client of `hs` at `now_ms`, counting it; `Err` refuses it.
    /// Every `Ok` must be followed, once, by `release_session(hs)` when the session ends.
    pub fn admit_session(&self, hs: &ConnHandshake, now_ms: u64) -> Result<(), LimitHit> {
        if !self.per_ip_on() {
            return Ok(());
        }
        let ip = self.client_ip(hs);
        let (rate, capacity) = self.handshake_rate();
        let mut t = self.ips.lock();
        if !t.map.contains_key(&ip) {
            if t.map.len() >= self.cfg.max_tracked_ips {
                self.evict(&mut t, now_ms);
                if t.map.len() >= self.cfg.max_tracked_ips {
                    return Err(self.refused(LimitHit::TrackedIps));
                }
            }
            t.map.insert(ip, IpEntry { sessions: 0, handshakes: Bucket::full(capacity, now_ms) });
            t.idle += 1;
        }
        let max = self.cfg.connections_per_ip;
        let table = &mut *t;
        // Present: inserted above when missing, and the lock is held.
        let entry = table.map.get_mut(&ip).expect("entry present");
        let result = if max > 0 && entry.sessions >= max {
            Err(LimitHit::ConnectionsPerIp(max))
        } else if rate > 0.0 && !entry.handshakes.take(rate, capacity, 1.0, now_ms) {
            Err(LimitHit::HandshakesPerIp(self.cfg.handshakes_per_second_per_ip))
        } else {
            if max > 0 {
                if entry.sessions == 0 {
                    table.idle -= 1;
                }
                entry.sessions += 1;
            }
            Ok(())
        };
        self.metrics.limit_tracked_ips.set(table.map.len() as i64);
        result.map_err(|hit| self.refused(hit))
    }

    /// The session `admit_session(hs)` counted has ended.
    pub fn release_session(&self, hs: &ConnHandshake) {
        if self.cfg.connections_per_ip == 0 {
            return;
        }
        let ip = self.client_ip(hs);
        let mut t = self.ips.lock();
        let table = &mut *t;
        let Some(entry) = table.map.get_mut(&ip) else { return };
        if entry.sessions == 0 {
            return;
        }
        entry.sessions -= 1;
        if entry.sessions == 0 {
            if self.cfg.handshakes_per_second_per_ip == 0 {
                // Nothing else to remember about this address.
                table.map.remove(&ip);
            } else {
                table.idle += 1;
            }
        }
        self.metrics.limit_tracked_ips.set(table.map.len() as i64);
    }

    /// At the bound: drop idle entries, those whose bucket is full first (dropping them loses
    /// nothing), then any idle one. Entries with live sessions are never dropped.
    fn evict(&self, t: &mut IpTable, now_ms: u64) {
        if t.idle == 0 {
            return;
        }
        let (rate, capacity) = self.handshake_rate();
        let before = t.map.len();
        t.map.retain(|_, e| e.sessions > 0 || !e.handshakes.is_full(rate, capacity, now_ms));
        if t.map.len() == before {
            t.map.retain(|_, e| e.sessions > 0);
        }
        t.idle = t.map.values().filter(|e| e.sessions == 0).count();
    }

    /// Whether a connection may deliver `packet` now (`bucket`: its `Conn::inbound`). `false`
    /// means the caller closes it; the refusal is counted here.
    pub fn inbound_ok(&self, bucket: &InboundBucket, packet: &Packet<'_>, now_ms: u64) -> bool {
        let (pps, bps) = (self.cfg.packets_per_second, self.cfg.bytes_per_second);
        if pps == 0 && bps == 0 {
            return true;
        }
        let bytes = match packet {
            Packet::Message(text) => text.len(),
            Packet::Binary(data) => data.len(),
            _ => 1,
        } as f64;
        let (p_rate, b_rate) = (f64::from(pps), bps as f64);
        let mut guard = bucket.0.lock();
        let state = guard.get_or_insert_with(|| InboundState {
            packets: Bucket::full(2.0 * p_rate, now_ms),
            bytes: Bucket::full(2.0 * b_rate, now_ms),
            tripped: false,
        });
        if state.tripped {
            return false;
        }
        let ok = (pps == 0 || state.packets.take(p_rate, 2.0 * p_rate, 1.0, now_ms))
            && (bps == 0 || state.bytes.take(b_rate, 2.0 * b_rate, bytes, now_ms));
        if !ok {
            state.tripped = true;
            self.refused(LimitHit::InboundRate);
        }
        ok
    }

    /// The rooms-per-socket limit for a namespace's `join`.
    pub fn rooms(&self) -> RoomLimit {
        RoomLimit {
            max: self.cfg.rooms_per_socket,
            refused: self.metrics.limit_refusals.with_label_values(&[LimitHit::RoomsPerSocket(0).label()]),
        }
    }

    /// Whether a connection with `joined` namespaces may join one more (counted when not).
    pub fn check_namespaces(&self, joined: usize) -> Result<(), LimitHit> {
        let max = self.cfg.namespaces_per_connection;
        if max > 0 && joined >= max {
            return Err(self.refused(LimitHit::NamespacesPerConnection(max)));
        }
        Ok(())
    }
}

/// How many rooms a socket may be in (`Namespace::join` asks `admits`).
#[derive(Debug, Clone)]
pub struct RoomLimit {
    max: usize,
    refused: IntCounter,
}

impl Default for RoomLimit {
    /// Unlimited, counting nowhere (namespaces built without a hub, in tests).
    fn default() -> Self {
        RoomLimit { max: 0, refused: IntCounter::new("unregistered", "unregistered").expect("valid metric") }
    }
}

impl RoomLimit {
    /// Whether a socket in `current` rooms may join `adding` new ones; counted when not.
    pub fn admits(&self, current: usize, adding: usize) -> Result<(), LimitHit> {
        if self.max > 0 && adding > 0 && current + adding > self.max {
            self.refused.inc();
            return Err(LimitHit::RoomsPerSocket(self.max));
        }
        Ok(())
    }
}

fn parse_ip(text: &str) -> Option<IpAddr> {
    text.parse::<IpAddr>().ok().or_else(|| text.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

fn group(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(tweak: impl FnOnce(&mut LimitsConfig)) -> Limits {
        let mut c = LimitsConfig::default();
        tweak(&mut c);
        Limits::new(&c, Arc::new(Metrics::new()))
    }

    fn hs(addr: &str, headers: &[(&str, &str)]) -> ConnHandshake {
        ConnHandshake {
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            query: HashMap::new(),
            address: addr.parse().unwrap(),
            time: String::new(),
            issued: 0,
            url: String::new(),
        }
    }

    fn refusals(l: &Limits, label: &str) -> u64 {
        l.metrics.limit_refusals.with_label_values(&[label]).get()
    }

    /// The tokio clock in ms since `start` (paused in these tests).
    fn ms(start: tokio::time::Instant) -> u64 {
        start.elapsed().as_millis() as u64
    }

    #[tokio::test(start_paused = true)]
    async fn bucket_refills_at_its_rate_and_overdraws_once() {
        let start = tokio::time::Instant::now();
        let mut b = Bucket::full(2.0, ms(start));
        assert!(b.take(1.0, 2.0, 1.0, ms(start)) && b.take(1.0, 2.0, 1.0, ms(start)));
        assert!(!b.take(1.0, 2.0, 1.0, ms(start)), "empty");
        tokio::time::advance(std::time::Duration::from_millis(999)).await;
        assert!(!b.take(1.0, 2.0, 1.0, ms(start)), "0.999 tokens are not one");
        tokio::time::advance(std::time::Duration::from_millis(1)).await;
        assert!(b.take(1.0, 2.0, 1.0, ms(start)));
        // A big cost passes while any token is left, then the debt holds later takes back.
        tokio::time::advance(std::time::Duration::from_secs(10)).await;
        assert!(b.take(1.0, 2.0, 5.0, ms(start)));
        tokio::time::advance(std::time::Duration::from_secs(2)).await;
        assert!(!b.take(1.0, 2.0, 1.0, ms(start)), "-3 + 2 = -1: still in debt");
        tokio::time::advance(std::time::Duration::from_secs(2)).await;
        assert!(b.take(1.0, 2.0, 1.0, ms(start)));
    }

    #[tokio::test(start_paused = true)]
    async fn sessions_per_ip_are_counted_and_released() {
        let l = limits(|c| c.connections_per_ip = 2);
        let (a, b) = (hs("10.0.0.1:1000", &[]), hs("10.0.0.2:1000", &[]));
        assert!(l.admit_session(&a, 0).is_ok() && l.admit_session(&a, 0).is_ok());
        assert_eq!(l.admit_session(&a, 0), Err(LimitHit::ConnectionsPerIp(2)));
        assert!(l.admit_session(&b, 0).is_ok(), "another address is not affected");
        l.release_session(&a);
        assert!(l.admit_session(&a, 0).is_ok(), "a released slot is free again");
        assert_eq!(refusals(&l, "connections_per_ip"), 1);
        l.release_session(&a);
        l.release_session(&a);
        l.release_session(&b);
        assert_eq!(l.ips.lock().map.len(), 0, "nothing is kept for addresses without sessions");
        l.release_session(&a); // an extra release is harmless
        assert!(l.admit_session(&a, 0).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn handshakes_per_ip_follow_a_token_bucket() {
        let start = tokio::time::Instant::now();
        let l = limits(|c| c.handshakes_per_second_per_ip = 3);
        let a = hs("10.0.0.1:1", &[]);
        for _ in 0..3 {
            assert!(l.admit_session(&a, ms(start)).is_ok());
        }
        assert_eq!(l.admit_session(&a, ms(start)), Err(LimitHit::HandshakesPerIp(3)));
        assert!(l.admit_session(&hs("10.0.0.9:1", &[]), ms(start)).is_ok());
        tokio::time::advance(std::time::Duration::from_millis(334)).await;
        assert!(l.admit_session(&a, ms(start)).is_ok(), "one token back after 1/3 s");
        assert!(l.admit_session(&a, ms(start)).is_err());
        assert_eq!(refusals(&l, "handshakes_per_ip"), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn the_ip_table_is_bounded() {
        let start = tokio::time::Instant::now();
        let l = limits(|c| {
            c.connections_per_ip = 5;
            c.handshakes_per_second_per_ip = 1;
            c.max_tracked_ips = 3;
        });
        let ip = |i: u8| hs(&format!("10.0.1.{i}:1"), &[]);
        for i in 1..=3 {
            assert!(l.admit_session(&ip(i), ms(start)).is_ok());
        }
        // Three addresses with live sessions: a fourth is refused, the table does not grow.
        assert_eq!(l.admit_session(&ip(4), ms(start)), Err(LimitHit::TrackedIps));
        assert_eq!(l.ips.lock().map.len(), 3);
        // One leaves: its idle entry is evicted for the newcomer.
        l.release_session(&ip(1));
        assert!(l.admit_session(&ip(4), ms(start)).is_ok());
        assert_eq!(l.ips.lock().map.len(), 3);
        assert_eq!(l.metrics.limit_tracked_ips.get(), 3);
        // Many distinct addresses one after another never grow it past the bound.
        for i in 10..200 {
            let h = ip(i);
            if l.admit_session(&h, ms(start)).is_ok() {
                l.release_session(&h);
            }
            tokio::time::advance(std::time::Duration::from_millis(5)).await;
            assert!(l.ips.lock().map.len() <= 3);
        }
    }

    #[test]
    fn client_ip_honours_the_proxy_header_only_when_configured() {
        let xff = [("x-forwarded-for", "203.0.113.7, 198.51.100.2")];
        let plain = limits(|_| {});
        assert_eq!(plain.client_ip(&hs("10.0.0.1:5", &xff)), "10.0.0.1".parse::<IpAddr>().unwrap());
        let proxied = limits(|c| c.trusted_proxy_header = Some("X-Forwarded-For".into()));
        assert_eq!(proxied.client_ip(&hs("10.0.0.1:5", &xff)), "198.51.100.2".parse::<IpAddr>().unwrap());
        let two_hops = limits(|c| {
            c.trusted_proxy_header = Some("x-forwarded-for".into());
            c.trusted_proxy_hops = 2;
        });
        assert_eq!(two_hops.client_ip(&hs("10.0.0.1:5", &xff)), "203.0.113.7".parse::<IpAddr>().unwrap());
        // Missing or garbage header: the TCP peer.
        assert_eq!(proxied.client_ip(&hs("10.0.0.1:5", &[])), "10.0.0.1".parse::<IpAddr>().unwrap());
        let junk = [("x-forwarded-for", "not-an-ip")];
        assert_eq!(proxied.client_ip(&hs("10.0.0.1:5", &junk)), "10.0.0.1".parse::<IpAddr>().unwrap());
        let with_port = [("x-forwarded-for", "[2001:db8::1]:443")];
        assert_eq!(proxied.client_ip(&hs("10.0.0.1:5", &with_port)), "2001:db8::".parse::<IpAddr>().unwrap());
        // IPv6 by /64, IPv4-mapped as IPv4.
        assert_eq!(
            plain.client_ip(&hs("[2001:db8:1:2:aaaa::1]:5", &[])),
            "2001:db8:1:2::".parse::<IpAddr>().unwrap()
        );
        assert_eq!(plain.client_ip(&hs("[::ffff:10.1.2.3]:5", &[])), "10.1.2.3".parse::<IpAddr>().unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn inbound_packets_and_bytes_are_rate_limited() {
        let start = tokio::time::Instant::now();
        let l = limits(|c| c.packets_per_second = 10);
        let b = InboundBucket::default();
        let msg = Packet::Message("hello");
        // A burst of twice the rate passes, then the connection is over.
        for _ in 0..20 {
            assert!(l.inbound_ok(&b, &msg, ms(start)));
        }
        assert!(!l.inbound_ok(&b, &msg, ms(start)));
        tokio::time::advance(std::time::Duration::from_millis(100)).await;
        assert!(
            !l.inbound_ok(&b, &msg, ms(start)),
            "once over, the connection stays refused (it is closing)"
        );
        assert_eq!(refusals(&l, "inbound_rate"), 1, "and it is counted once");
        let b2 = InboundBucket::default();
        for _ in 0..20 {
            assert!(l.inbound_ok(&b2, &msg, ms(start)));
        }
        tokio::time::advance(std::time::Duration::from_millis(100)).await;
        assert!(l.inbound_ok(&b2, &msg, ms(start)), "10/s: one more after 100 ms");

        let l = limits(|c| c.bytes_per_second = 1000);
        let b = InboundBucket::default();
        let big = "x".repeat(1500);
        assert!(l.inbound_ok(&b, &Packet::Message(&big), ms(start)), "2000 - 1500 = 500 left");
        assert!(l.inbound_ok(&b, &Packet::Message(&big), ms(start)), "500 left: passes, -1000");
        tokio::time::advance(std::time::Duration::from_millis(1010)).await;
        assert!(l.inbound_ok(&b, &Packet::Message(&big), ms(start)), "debt repaid after 1 s");
        assert!(!l.inbound_ok(&b, &Packet::Message(&big), ms(start)), "in debt again");
        let off = limits(|_| {});
        assert!((0..10_000).all(|_| off.inbound_ok(&b, &msg, ms(start))));
    }

    #[test]
    fn rooms_and_namespaces() {
        let l = limits(|c| {
            c.rooms_per_socket = 3;
            c.namespaces_per_connection = 2;
        });
        let r = l.rooms();
        assert!(r.admits(0, 3).is_ok() && r.admits(3, 0).is_ok());
        assert_eq!(r.admits(2, 2), Err(LimitHit::RoomsPerSocket(3)));
        assert_eq!(refusals(&l, "rooms_per_socket"), 1);
        assert!(l.check_namespaces(1).is_ok());
        assert_eq!(l.check_namespaces(2), Err(LimitHit::NamespacesPerConnection(2)));
        assert!(limits(|_| {}).rooms().admits(10_000, 10_000).is_ok());
    }
}
