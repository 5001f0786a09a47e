//! One node's `server_stats`: its identity, uptime, clients, namespaces, and the aggregated
//! events since the previous report, read from the node's Prometheus counters (so the
//! aggregates cost nothing per message: each report diffs the counters).

use std::collections::HashMap;
use std::time::Instant;

use prometheus::core::Collector;
use prometheus::IntCounterVec;
use serde_json::{json, Value};

use crate::metrics::Metrics;
use crate::state::Hub;

/// The counters one report diffs against the next.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Counters {
    connections: u64,
    disconnections: HashMap<String, u64>,
    packets_in: u64,
    packets_out: u64,
    bytes_in: u64,
    bytes_out: u64,
}

fn by_label(vec: &IntCounterVec) -> HashMap<String, u64> {
    let mut out = HashMap::new();
    for family in vec.collect() {
        for m in family.get_metric() {
            let label = m.get_label().first().map(|l| l.value().to_string()).unwrap_or_default();
            *out.entry(label).or_default() += m.get_counter().get_value() as u64;
        }
    }
    out
}

impl Counters {
    fn read(m: &Metrics) -> Counters {
        Counters {
            connections: by_label(&m.sessions_opened).values().sum(),
            disconnections: by_label(&m.sessions_closed),
            packets_in: m.packets_in.get(),
            packets_out: m.packets_out.get(),
            bytes_in: m.bytes_in.get(),
            bytes_out: m.bytes_out.get(),
        }
    }
}

/// What the UI calls aggregated events (`NamespaceEvent`): `{timestamp, type, subType?, count}`.
/// Disconnection reasons are Socket.IO's words (`transport close`), as the metric labels spell
/// them with underscores.
fn aggregated(prev: &Counters, now: &Counters, timestamp_ms: u64) -> Vec<Value> {
    let mut out = Vec::new();
    let mut push = |kind: &str, sub: Option<&str>, count: u64| {
        if count > 0 {
            let mut e = json!({ "timestamp": timestamp_ms, "type": kind, "count": count });
            if let Some(s) = sub {
                e["subType"] = Value::from(s);
            }
            out.push(e);
        }
    };
    push("rawConnection", None, now.connections.saturating_sub(prev.connections));
    let mut reasons: Vec<_> = now.disconnections.iter().collect();
    reasons.sort();
    for (reason, n) in reasons {
        let before = prev.disconnections.get(reason).copied().unwrap_or(0);
        push("rawDisconnection", Some(&reason.replace('_', " ")), n.saturating_sub(before));
    }
    push("packetsIn", None, now.packets_in.saturating_sub(prev.packets_in));
    push("packetsOut", None, now.packets_out.saturating_sub(prev.packets_out));
    push("bytesIn", None, now.bytes_in.saturating_sub(prev.bytes_in));
    push("bytesOut", None, now.bytes_out.saturating_sub(prev.bytes_out));
    out
}

/// Builds this node's successive reports.
pub struct StatsReporter {
    server_id: String,
    hostname: String,
    started: Instant,
    prev: Counters,
}

/// The machine's host name (the pod's name in Kubernetes).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

impl StatsReporter {
    /// Reports named `server_id` (the node name), counting from the counters' values now.
    pub fn new(server_id: String, metrics: &Metrics) -> Self {
        StatsReporter {
            server_id,
            hostname: hostname(),
            started: Instant::now(),
            prev: Counters::read(metrics),
        }
    }

    /// The next `server_stats` payload, at `now_ms` (ms since the epoch).
    pub fn report(&mut self, hub: &Hub, now_ms: u64) -> Value {
        let now = Counters::read(&hub.metrics);
        // Whole seconds, as the UI buckets them.
        let events = aggregated(&self.prev, &now, now_ms - now_ms % 1000);
        self.prev = now;
        let mut namespaces: Vec<(String, usize)> =
            hub.namespaces.iter().map(|e| (e.key().to_string(), e.value().sockets.len())).collect();
        namespaces.sort();
        let polling = hub.metrics.connections.with_label_values(&["polling"]).get().max(0);
        json!({
            "serverId": self.server_id,
            "hostname": self.hostname,
            "pid": std::process::id(),
            "uptime": self.started.elapsed().as_secs_f64(),
            "clientsCount": hub.engine.sessions.len(),
            "pollingClientsCount": polling,
            "aggregatedEvents": events,
            "namespaces": namespaces
                .into_iter()
                .map(|(name, n)| json!({ "name": name, "socketsCount": n }))
                .collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregates_are_the_counter_differences() {
        let m = Metrics::new();
        let before = Counters::read(&m);
        m.sessions_opened.with_label_values(&["polling"]).inc_by(2);
        m.sessions_opened.with_label_values(&["websocket"]).inc();
        m.sessions_closed.with_label_values(&["transport_close"]).inc();
        m.sessions_closed.with_label_values(&["ping_timeout"]).inc_by(2);
        m.packets_in.inc_by(5);
        m.bytes_out.inc_by(1234);
        let now = Counters::read(&m);
        let events = aggregated(&before, &now, 7000);
        assert_eq!(
            events,
            vec![
                json!({ "timestamp": 7000, "type": "rawConnection", "count": 3 }),
                json!({ "timestamp": 7000, "type": "rawDisconnection", "subType": "ping timeout", "count": 2 }),
                json!({ "timestamp": 7000, "type": "rawDisconnection", "subType": "transport close", "count": 1 }),
                json!({ "timestamp": 7000, "type": "packetsIn", "count": 5 }),
                json!({ "timestamp": 7000, "type": "bytesOut", "count": 1234 }),
            ]
        );
        // Nothing new: no events.
        assert!(aggregated(&now, &Counters::read(&m), 9000).is_empty());
    }
}
