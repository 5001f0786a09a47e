//! The operator's own Prometheus metrics.
//!
//! Invariants: labels are low-cardinality and fixed in code — the reconcile result is one of
//! `ok`, `invalid`, `error`; the condition is one of the three condition types; a pod-cost
//! step is `ok` or `error`; no label is ever built from an object name or error text.

use std::collections::HashMap;
use std::sync::Mutex;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::status::{DEGRADED, PROGRESSING, READY};

/// How one reconcile ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReconcileResult {
    /// Everything applied.
    Ok,
    /// The spec cannot run; reported as `Degraded`.
    Invalid,
    /// An API error; retried with backoff.
    Error,
}

impl ReconcileResult {
    fn label(self) -> &'static str {
        match self {
            ReconcileResult::Ok => "ok",
            ReconcileResult::Invalid => "invalid",
            ReconcileResult::Error => "error",
        }
    }
}

/// Metrics of one operator process.
pub struct Metrics {
    registry: Registry,
    reconciles: IntCounterVec,
    duration: HistogramVec,
    hubs: IntGaugeVec,
    leader: prometheus::IntGauge,
    load_scrapes: IntCounterVec,
    cost_updates: IntCounterVec,
    /// Which conditions are `True` for each hub (`namespace/name`), to derive the gauge.
    states: Mutex<HashMap<String, [bool; 3]>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Fresh metrics in their own registry.
    pub fn new() -> Self {
        let registry = Registry::new();
        let reconciles = IntCounterVec::new(
            Opts::new("socketio_hub_operator_reconciles_total", "Reconciles by result (ok, invalid, error)."),
            &["result"],
        )
        .expect("static metric definition");
        let duration = HistogramVec::new(
            HistogramOpts::new("socketio_hub_operator_reconcile_duration_seconds", "Reconcile duration.")
                .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            &["result"],
        )
        .expect("static metric definition");
        let hubs = IntGaugeVec::new(
            Opts::new(
                "socketio_hub_operator_hubs",
                "SocketIOHub objects whose condition is True, by condition.",
            ),
            &["condition"],
        )
        .expect("static metric definition");
        let leader = prometheus::IntGauge::new(
            "socketio_hub_operator_leader",
            "1 while this process holds the leader lease and reconciles.",
        )
        .expect("static metric definition");
        let load_scrapes = IntCounterVec::new(
            Opts::new(
                "socketio_hub_operator_pod_load_scrapes_total",
                "Reads of a hub pod's /load for its deletion cost, by result (ok, error).",
            ),
            &["result"],
        )
        .expect("static metric definition");
        let cost_updates = IntCounterVec::new(
            Opts::new(
                "socketio_hub_operator_pod_cost_updates_total",
                "Writes of a hub pod's pod-deletion-cost annotation, by result (ok, error).",
            ),
            &["result"],
        )
        .expect("static metric definition");
        registry.register(Box::new(load_scrapes.clone())).expect("fresh registry");
        registry.register(Box::new(cost_updates.clone())).expect("fresh registry");
        for r in ["ok", "error"] {
            load_scrapes.with_label_values(&[r]).reset();
            cost_updates.with_label_values(&[r]).reset();
        }
        // Registering distinct, fresh collectors in a fresh registry cannot collide.
        registry.register(Box::new(reconciles.clone())).expect("fresh registry");
        registry.register(Box::new(duration.clone())).expect("fresh registry");
        registry.register(Box::new(hubs.clone())).expect("fresh registry");
        registry.register(Box::new(leader.clone())).expect("fresh registry");
        for c in [READY, PROGRESSING, DEGRADED] {
            hubs.with_label_values(&[c]).set(0);
        }
        // Export every series from the start, so rates work from the first scrape.
        for r in [ReconcileResult::Ok, ReconcileResult::Invalid, ReconcileResult::Error] {
            reconciles.with_label_values(&[r.label()]).reset();
            duration.with_label_values(&[r.label()]);
        }
        Metrics {
            registry,
            reconciles,
            duration,
            hubs,
            leader,
            load_scrapes,
            cost_updates,
            states: Mutex::new(HashMap::new()),
        }
    }

    /// Count one read of a pod's load.
    pub fn load_scraped(&self, ok: bool) {
        self.load_scrapes.with_label_values(&[if ok { "ok" } else { "error" }]).inc();
    }

    /// Count one write of a pod's deletion cost.
    pub fn cost_updated(&self, ok: bool) {
        self.cost_updates.with_label_values(&[if ok { "ok" } else { "error" }]).inc();
    }

    /// Count one reconcile.
    pub fn reconciled(&self, result: ReconcileResult, seconds: f64) {
        self.reconciles.with_label_values(&[result.label()]).inc();
        self.duration.with_label_values(&[result.label()]).observe(seconds);
    }

    /// Record which conditions of hub `key` are `True` (`None`: the hub is gone).
    pub fn hub_state(&self, key: &str, state: Option<[bool; 3]>) {
        let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        match state {
            Some(s) => states.insert(key.to_string(), s),
            None => states.remove(key),
        };
        for (i, c) in [READY, PROGRESSING, DEGRADED].iter().enumerate() {
            let n = states.values().filter(|s| s[i]).count();
            self.hubs.with_label_values(&[c]).set(n as i64);
        }
    }

    /// Forget hubs not in `live` (deleted hubs are never reconciled again).
    pub fn retain_hubs(&self, live: &std::collections::HashSet<String>) {
        let keys: Vec<String> = {
            let states = self.states.lock().unwrap_or_else(|e| e.into_inner());
            states.keys().filter(|k| !live.contains(*k)).cloned().collect()
        };
        for k in keys {
            self.hub_state(&k, None);
        }
    }

    /// Set the leader gauge.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(leading as i64);
    }

    /// Number of reconciles with `result` so far.
    pub fn reconcile_count(&self, result: ReconcileResult) -> u64 {
        self.reconciles.with_label_values(&[result.label()]).get()
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding gathered metric families into a Vec cannot fail.
        TextEncoder::new().encode(&self.registry.gather(), &mut buf).expect("text encoding into memory");
        String::from_utf8(buf).expect("Prometheus text format is UTF-8")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hubs_gauge_follows_states() {
        let m = Metrics::new();
        m.hub_state("a/x", Some([true, false, false]));
        m.hub_state("a/y", Some([false, true, true]));
        let text = m.render();
        assert!(text.contains("socketio_hub_operator_hubs{condition=\"Ready\"} 1"), "{text}");
        assert!(text.contains("socketio_hub_operator_hubs{condition=\"Degraded\"} 1"), "{text}");
        m.hub_state("a/y", None);
        assert!(m.render().contains("socketio_hub_operator_hubs{condition=\"Degraded\"} 0"));
    }

    #[test]
    fn reconciles_are_counted_by_result() {
        let m = Metrics::new();
        m.reconciled(ReconcileResult::Ok, 0.01);
        m.reconciled(ReconcileResult::Invalid, 0.02);
        m.reconciled(ReconcileResult::Ok, 0.03);
        assert_eq!(m.reconcile_count(ReconcileResult::Ok), 2);
        let text = m.render();
        assert!(text.contains("socketio_hub_operator_reconciles_total{result=\"invalid\"} 1"), "{text}");
        assert!(text.contains("socketio_hub_operator_reconcile_duration_seconds_count{result=\"ok\"} 2"));
    }
}
