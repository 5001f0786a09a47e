//! Metrics of the server links, registered in the node's registry next to the others. Labels
//! are fixed sets (a reason, a kind), never instance names or ids.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Server-link metrics.
pub(crate) struct LinkMetrics {
    /// Connected application servers.
    pub links: IntGauge,
    /// Client sessions bound to an application server.
    pub bound_sessions: IntGauge,
    /// Sessions here bound to a server linked to another node.
    pub remote_bound: IntGauge,
    /// Sessions of other nodes bound to a server linked here.
    pub relayed: IntGauge,
    /// Messages queued for application servers and not yet written to their links.
    pub in_flight: IntGauge,
    /// Messages for application servers dropped, by reason (`saturated`, `no_app_server`).
    pub dropped: IntCounterVec,
    /// Sessions moved to another application server.
    pub rebinds: IntCounter,
    /// Link round trip (hub ping to application pong).
    pub latency: Histogram,
    /// Time from a client's CONNECT to the application's answer.
    pub connect_seconds: Histogram,
    /// Link requests refused, by reason (`unauthorized`, `version`, `disabled`, `bad_request`,
    /// `unavailable`: the node is fenced).
    pub refused: IntCounterVec,
    /// Link messages from application servers that were invalid, by kind.
    pub bad_messages: IntCounterVec,
}

fn reg<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, m: T) -> T {
    // One `Link` per node registers these constant names once.
    r.register(Box::new(m.clone())).expect("link metric registered once");
    m
}

impl LinkMetrics {
    /// Create and register the link metrics in `r`.
    pub fn new(r: &Registry) -> Self {
        let buckets =
            vec![0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];
        let gauge = |name: &str, help: &str| reg(r, IntGauge::new(name, help).expect("valid metric"));
        let counter_vec = |name: &str, help: &str, label: &str| {
            reg(r, IntCounterVec::new(Opts::new(name, help), &[label]).expect("valid metric"))
        };
        let histogram = |name: &str, help: &str| {
            reg(
                r,
                Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.clone()))
                    .expect("valid metric"),
            )
        };
        LinkMetrics {
            links: gauge("server_links", "Connected application servers (server links)."),
            bound_sessions: gauge("link_bound_sessions", "Client sessions bound to an application server."),
            remote_bound: gauge(
                "link_remote_bound_sessions",
                "Client sessions of this node bound to an application server linked to another node.",
            ),
            relayed: gauge(
                "link_relayed_sessions",
                "Client sessions of other nodes bound to an application server linked here.",
            ),
            in_flight: gauge("link_in_flight", "Messages queued for application servers, not yet written."),
            dropped: counter_vec("link_dropped_total", "Messages for application servers dropped.", "reason"),
            rebinds: reg(
                r,
                IntCounter::new("link_rebinds_total", "Sessions moved to another application server.")
                    .expect("valid metric"),
            ),
            latency: histogram("link_latency_seconds", "Server link round trip (ping to pong)."),
            connect_seconds: histogram("link_connect_seconds", "Client CONNECT to the application's answer."),
            refused: counter_vec("link_refused_total", "Server link requests refused.", "reason"),
            bad_messages: counter_vec(
                "link_bad_messages_total",
                "Invalid messages from application servers.",
                "kind",
            ),
        }
        .init_series()
    }

    /// Create the series the chart's dashboard and alerts select by label value, at 0.
    fn init_series(self) -> Self {
        // `saturated`: a server's queue (or a waiting session's) was full; `no_app_server`: none
        // linked; `unbound`: relayed for a session no longer bound here; `mesh`: the relay hop failed.
        for reason in ["saturated", "no_app_server", "unbound", "mesh"] {
            self.dropped.with_label_values(&[reason]);
        }
        for reason in ["unauthorized", "version", "disabled", "bad_request", "unavailable"] {
            self.refused.with_label_values(&[reason]);
        }
        self
    }
}
