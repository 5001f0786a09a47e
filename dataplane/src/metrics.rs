//! Prometheus metrics of one node. Labels are fixed, low-cardinality sets (transport, reason,
//! kind): never ids, rooms, namespaces or error text.
//!
//! Invariant: every series the chart's dashboard and alerts select by label value exists from
//! the start at 0 (`init_series`), so `rate()` and `increase()` see the first event and a rule
//! never silently matches nothing; `operator/tests/monitoring.rs` checks it against a running
//! hub.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// Every metric the data plane exports.
pub struct Metrics {
    /// The registry `/metrics` renders.
    pub registry: Registry,
    /// Open Engine.IO sessions by transport.
    pub connections: IntGaugeVec,
    /// Sessions opened by initial transport.
    pub sessions_opened: IntCounterVec,
    /// Sessions closed by reason.
    pub sessions_closed: IntCounterVec,
    /// Polling→WebSocket upgrades.
    pub upgrades: IntCounter,
    /// Connected Socket.IO sockets.
    pub sockets: IntGauge,
    /// Engine.IO packets received.
    pub packets_in: IntCounter,
    /// Socket.IO packets queued to clients.
    pub packets_out: IntCounter,
    /// Bytes received in messages.
    pub bytes_in: IntCounter,
    /// Bytes written to clients.
    pub bytes_out: IntCounter,
    /// Client events received.
    pub events_in: IntCounter,
    /// Events dropped, by reason.
    pub events_dropped: IntCounterVec,
    /// Bad input, by kind.
    pub bad_input: IntCounterVec,
    /// Namespace connects refused, by reason.
    pub connects_rejected: IntCounterVec,
    /// Recovered sockets.
    pub recoveries: IntCounter,
    /// Recovered sockets whose replay the log could no longer complete when they were admitted.
    pub recovery_incomplete: IntCounter,
    /// Packets in the recovery logs (all namespaces; refreshed when scraped).
    pub recovery_log_packets: IntGauge,
    /// Bytes of encoded packets in the recovery logs (refreshed when scraped).
    pub recovery_log_bytes: IntGauge,
    /// Recovery sessions held: disconnected sockets and replicas of peers' sockets.
    pub recovery_sessions: IntGauge,
    /// Recovery attempts (a client presented a session id) that could not restore, by reason
    /// (`crate::state::recovery::Miss::label`).
    pub recovery_misses: IntCounterVec,
    /// 1 while the node drains (refuses new sessions, closes the others paced), else 0.
    pub draining: IntGauge,
    /// Recipients per broadcast.
    pub broadcast_fanout: Histogram,
    /// Time to queue one broadcast for all local recipients.
    pub broadcast_seconds: Histogram,
    /// Webhook latency by type.
    pub webhook_seconds: HistogramVec,
    /// Webhook failures by type and reason.
    pub webhook_failures: IntCounterVec,
    /// REST requests by route and status class.
    pub rest_requests: IntCounterVec,
    /// Client `hub:` commands by result.
    pub client_commands: IntCounterVec,
    /// Failed `accept()` calls.
    pub accept_errors: IntCounter,
    /// Abuse-limit refusals and closes, by limit (`crate::limits::LimitHit::label`).
    pub limit_refusals: IntCounterVec,
    /// Client IPs (IPv6 /64s) tracked by the per-IP limits.
    pub limit_tracked_ips: IntGauge,
    /// Admin UI connects by outcome (`password`, `session`, `invalid`).
    pub admin_ui_logins: IntCounterVec,
    /// Admin UI commands by command and result.
    pub admin_ui_commands: IntCounterVec,
    /// Admin UI development-mode events dropped because the queue was full.
    pub admin_ui_events_dropped: IntCounter,
    /// Entries of the engine's session table, read at scrape time ([`Metrics::refresh`]).
    pub sessions: IntGauge,
    /// Rooms with members on this node, all namespaces, read at scrape time.
    pub rooms: IntGauge,
    /// Entries of the heartbeat deadline heap, read at scrape time.
    pub deadline_entries: IntGauge,
    /// Live tokio tasks of the runtime serving the scrape, read at scrape time.
    pub tokio_alive_tasks: IntGauge,
    /// Worker threads of that runtime, read at scrape time.
    pub tokio_workers: IntGauge,
}

/// What [`Metrics::refresh`] sets: counts read from the live tables when `/metrics` is scraped,
/// so a leak (an entry never removed) shows even where an incremented gauge would stay right.
#[derive(Debug, Clone, Copy, Default)]
pub struct Snapshot {
    /// Entries of the engine's session table.
    pub sessions: usize,
    /// Rooms with members, all namespaces.
    pub rooms: usize,
    /// Entries of the heartbeat deadline heap.
    pub deadline_entries: usize,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn reg<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, m: T) -> T {
    // Names are unique constants in this file, so registration cannot collide.
    r.register(Box::new(m.clone())).expect("metric registered once");
    m
}

impl Metrics {
    /// Create and register every metric.
    pub fn new() -> Self {
        let r = Registry::new_custom(Some("socketio_hub".into()), None).expect("valid prefix");
        let counter = |name: &str, help: &str| reg(&r, IntCounter::new(name, help).expect("valid metric"));
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            reg(&r, IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"))
        };
        let gauge = |name: &str, help: &str| reg(&r, IntGauge::new(name, help).expect("valid metric"));
        let latency = vec![
            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
        ];
        Metrics {
            connections: reg(
                &r,
                IntGaugeVec::new(
                    Opts::new("connections", "Open Engine.IO sessions by transport."),
                    &["transport"],
                )
                .expect("valid metric"),
            ),
            sessions_opened: counter_vec(
                "sessions_opened_total",
                "Sessions opened by transport.",
                &["transport"],
            ),
            sessions_closed: counter_vec("sessions_closed_total", "Sessions closed by reason.", &["reason"]),
            upgrades: counter("upgrades_total", "Polling to WebSocket upgrades."),
            sockets: reg(&r, IntGauge::new("sockets", "Connected Socket.IO sockets.").expect("valid metric")),
            packets_in: counter("packets_received_total", "Engine.IO packets received from clients."),
            packets_out: counter("packets_sent_total", "Socket.IO packets queued to clients."),
            bytes_in: counter("bytes_received_total", "Message bytes received from clients."),
            bytes_out: counter("bytes_sent_total", "Bytes written to clients."),
            events_in: counter("events_received_total", "Client events received."),
            events_dropped: counter_vec("events_dropped_total", "Events dropped by reason.", &["reason"]),
            bad_input: counter_vec("bad_input_total", "Rejected client input by kind.", &["kind"]),
            connects_rejected: counter_vec(
                "connects_rejected_total",
                "Namespace connects refused.",
                &["reason"],
            ),
            recoveries: counter("recoveries_total", "Sockets restored by connection state recovery."),
            recovery_incomplete: counter(
                "recovery_incomplete_total",
                "Recovered sockets whose missed packets the log no longer held when they were admitted.",
            ),
            recovery_misses: counter_vec(
                "recovery_misses_total",
                "Recovery attempts that could not restore the session, by reason.",
                &["reason"],
            ),
            draining: reg(
                &r,
                IntGauge::new("draining", "1 while this node drains (refuses new sessions), else 0.")
                    .expect("valid metric"),
            ),
            broadcast_fanout: reg(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new("broadcast_fanout", "Local recipients per emit.")
                        .buckets(vec![0.0, 1.0, 10.0, 100.0, 1000.0, 10000.0, 100000.0]),
                )
                .expect("valid metric"),
            ),
            broadcast_seconds: reg(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new("broadcast_seconds", "Time to queue an emit for local recipients.")
                        .buckets(latency.clone()),
                )
                .expect("valid metric"),
            ),
            webhook_seconds: reg(
                &r,
                HistogramVec::new(
                    HistogramOpts::new("webhook_seconds", "Webhook latency by type.").buckets(latency),
                    &["type"],
                )
                .expect("valid metric"),
            ),
            webhook_failures: counter_vec("webhook_failures_total", "Webhook failures.", &["type", "reason"]),
            rest_requests: counter_vec("rest_requests_total", "REST API requests.", &["route", "status"]),
            client_commands: counter_vec("client_commands_total", "Client hub: commands.", &["result"]),
            accept_errors: counter("accept_errors_total", "Failed accept() calls."),
            limit_refusals: counter_vec(
                "limit_refusals_total",
                "Abuse-limit refusals (429s, CONNECT_ERRORs, refused joins) and rate-limit closes.",
                &["limit"],
            ),
            recovery_log_packets: reg(
                &r,
                IntGauge::new("recovery_log_packets", "Packets held in the recovery logs.")
                    .expect("valid metric"),
            ),
            recovery_log_bytes: reg(
                &r,
                IntGauge::new("recovery_log_bytes", "Bytes of encoded packets held in the recovery logs.")
                    .expect("valid metric"),
            ),
            recovery_sessions: reg(
                &r,
                IntGauge::new(
                    "recovery_sessions",
                    "Recovery sessions held: disconnected sockets and replicas of other nodes' sockets.",
                )
                .expect("valid metric"),
            ),
            limit_tracked_ips: reg(
                &r,
                IntGauge::new("limit_tracked_ips", "Client IPs tracked by the per-IP limits.")
                    .expect("valid metric"),
            ),
            admin_ui_logins: counter_vec(
                "admin_ui_logins_total",
                "Admin UI connects by outcome.",
                &["result"],
            ),
            admin_ui_commands: counter_vec(
                "admin_ui_commands_total",
                "Admin UI commands by command and result.",
                &["command", "result"],
            ),
            admin_ui_events_dropped: counter(
                "admin_ui_events_dropped_total",
                "Admin UI development-mode events dropped (queue full).",
            ),
            sessions: gauge("sessions", "Engine.IO sessions in the session table (read at scrape)."),
            rooms: gauge("rooms", "Rooms with members on this node, all namespaces (read at scrape)."),
            deadline_entries: gauge(
                "heartbeat_deadline_entries",
                "Entries of the heartbeat deadline heap (read at scrape).",
            ),
            tokio_alive_tasks: gauge("tokio_alive_tasks", "Live tokio tasks (read at scrape)."),
            tokio_workers: gauge("tokio_workers", "Tokio runtime worker threads (read at scrape)."),
            registry: r,
        }
        .init_series()
    }

    /// Create every labelled series whose label values are a known, fixed set, at 0.
    fn init_series(self) -> Self {
        for t in ["polling", "websocket"] {
            self.connections.with_label_values(&[t]);
            self.sessions_opened.with_label_values(&[t]);
        }
        for reason in crate::engine::CloseReason::ALL {
            self.sessions_closed.with_label_values(&[reason.label()]);
        }
        for reason in crate::state::recovery::Miss::ALL {
            self.recovery_misses.with_label_values(&[reason.label()]);
        }
        for reason in ["no_upstream", "unexpected_ack", "unknown_namespace", "bad_binary"] {
            self.events_dropped.with_label_values(&[reason]);
        }
        for kind in ["engine", "socketio", "payload_too_large", "refused"] {
            self.bad_input.with_label_values(&[kind]);
        }
        for limit in crate::limits::LimitHit::LABELS {
            self.limit_refusals.with_label_values(&[limit]);
        }
        for kind in crate::upstream::webhook::CALL_KINDS {
            self.webhook_seconds.with_label_values(&[kind]);
            for reason in crate::upstream::webhook::FAILURE_REASONS {
                self.webhook_failures.with_label_values(&[kind, reason]);
            }
        }
        self
    }

    /// Set the scrape-time gauges from `snap` and from the tokio runtime this runs on (left
    /// as they were outside a runtime).
    pub fn refresh(&self, snap: Snapshot) {
        let set = |g: &IntGauge, v: usize| g.set(i64::try_from(v).unwrap_or(i64::MAX));
        set(&self.sessions, snap.sessions);
        set(&self.rooms, snap.rooms);
        set(&self.deadline_entries, snap.deadline_entries);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let m = rt.metrics();
            set(&self.tokio_alive_tasks, m.num_alive_tasks());
            set(&self.tokio_workers, m.num_workers());
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Encoding gathered families into a String cannot fail.
        prometheus::TextEncoder::new().encode_utf8(&self.registry.gather(), &mut out).expect("text encoding");
        out
    }
}
