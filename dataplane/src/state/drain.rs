//! Taking a node's clients away from it without a stampede: the paced close shared by the
//! SIGTERM drain (`Running::shutdown`) and the fence (the node is cut off from the majority of
//! its cluster), and the fence itself.
//!
//! Invariants: a paced close closes the sessions present at its start evenly over its period
//! (each told the server is going away, a reason Socket.IO clients reconnect on — through a
//! balancer, to another node) and stops early when its `go_on` says so; while fenced, the node
//! is not ready, refuses new sessions, and keeps no recovery session of its own (its clients
//! recover on the majority side, from the replicas and logs there).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::Hub;
use crate::engine::CloseReason;

/// Close this node's sessions evenly over `period` with `reason` (all at once when `period` is
/// zero), while `go_on()` holds. Returns how many were closed.
pub async fn close_paced(
    hub: &Hub,
    period: Duration,
    reason: CloseReason,
    go_on: impl Fn() -> bool,
) -> usize {
    let started = tokio::time::Instant::now();
    let total = hub.engine.sessions.len();
    let tick = Duration::from_millis(50);
    let steps = (period.as_millis() / tick.as_millis()).max(1) as usize;
    let mut closed = 0;
    if period.is_zero() || total == 0 {
        return closed;
    }
    for step in 1..=steps {
        if !go_on() {
            break;
        }
        // After step k of n, k/n of the sessions present at the start have been closed.
        let due = total * step / steps;
        if due > closed {
            let batch: Vec<_> =
                hub.engine.sessions.iter().take(due - closed).map(|e| e.value().clone()).collect();
            closed += batch.len();
            for conn in batch {
                hub.engine.close(&conn, reason);
            }
        }
        tokio::time::sleep_until(started + period * step as u32 / steps as u32).await;
    }
    closed
}

/// What the front doors (REST, server links, `hub:*` commands) answer while the node is fenced.
pub const FENCED: &str = "this node is cut off from the majority of its cluster; retry through another node";

impl Hub {
    /// Why this node takes no operation now (`None`: it does). Every front door asks here, so
    /// nothing it accepts reaches only the minority side of a partition.
    pub fn unavailable(&self) -> Option<&'static str> {
        self.engine.is_fenced().then_some(FENCED)
    }

    /// Fence the node (it sees less than half of its cluster): not ready, no new sessions,
    /// recovery state forgotten, clients closed paced over `drain_period_ms`, until `unfence`.
    pub fn fence(self: &Arc<Self>) {
        let epoch = self.fence_epoch.fetch_add(1, Ordering::SeqCst) + 1;
        self.engine.set_fenced(true);
        self.ready.store(false, Ordering::SeqCst);
        for ns in self.namespaces.iter() {
            if let Some(rec) = &ns.recovery {
                rec.fence();
            }
        }
        let period = Duration::from_millis(self.config.drain_period_ms);
        let hub = self.clone();
        tokio::spawn(async move {
            let go_on = || hub.engine.is_fenced() && hub.fence_epoch.load(Ordering::SeqCst) == epoch;
            let closed = close_paced(&hub, period, CloseReason::ServerShutdown, go_on).await;
            if go_on() {
                // Sessions that opened meanwhile cannot exist (refused); close any left.
                hub.engine.close_all(CloseReason::ServerShutdown);
            }
            tracing::warn!(closed, "fenced: clients sent to the rest of the cluster");
        });
    }

    /// The node sees a majority again: after the recovery settle time (its log restarts it,
    /// so it does not replay from a gap), ready and open to new sessions — unless fenced again
    /// or draining by then.
    pub fn unfence(self: &Arc<Self>, settle: Duration) {
        let epoch = self.fence_epoch.fetch_add(1, Ordering::SeqCst) + 1;
        for ns in self.namespaces.iter() {
            if let Some(rec) = &ns.recovery {
                rec.rejoined();
            }
        }
        let hub = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(settle).await;
            if hub.fence_epoch.load(Ordering::SeqCst) != epoch || hub.engine.is_draining() {
                return;
            }
            hub.engine.set_fenced(false);
            hub.ready.store(true, Ordering::SeqCst);
            tracing::info!("fence lifted: ready");
        });
    }
}
