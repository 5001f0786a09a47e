//! No application: every connect is accepted; events other than the `hub:` commands have
//! nowhere to go and are counted as dropped.

use std::sync::Arc;

use super::{BoxFut, ConnectDecision, ConnectRequest, EventCall, Upstream};
use crate::metrics::Metrics;
use crate::state::{Args, Socket};

/// The emulator's upstream.
pub struct NoUpstream {
    metrics: Arc<Metrics>,
}

impl NoUpstream {
    /// A new one counting dropped events in `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        NoUpstream { metrics }
    }
}

impl Upstream for NoUpstream {
    fn connect(&self, _req: ConnectRequest) -> BoxFut<ConnectDecision> {
        Box::pin(async { ConnectDecision::Accept { rooms: Vec::new() } })
    }

    fn connected(&self, _socket: Arc<Socket>) -> BoxFut<()> {
        Box::pin(async {})
    }

    fn event(&self, call: EventCall) -> BoxFut<Option<Args>> {
        self.metrics.events_dropped.with_label_values(&["no_upstream"]).inc();
        tracing::debug!(event = %call.event, "event dropped: no application is configured");
        Box::pin(async { None })
    }

    fn disconnected(&self, _socket: Arc<Socket>, _reason: &'static str) -> BoxFut<()> {
        Box::pin(async {})
    }
}
