//! The heartbeat sweeper: one task for all sessions instead of a timer per session.
//!
//! Every tick it sends pings that are due, closes sessions whose pong is late, and closes
//! sessions the layer above did not mark attached within the connect timeout. Idle sessions therefore
//! carry two integers for their heartbeat and no timer or task of their own.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::Engine;
use super::{CloseReason, Conn, Delivery};
use crate::frame::Frame;

/// What the sweeper decided for one session at time `now`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Beat {
    Nothing,
    SendPing,
    Close(CloseReason),
}

impl Conn {
    pub(crate) fn beat(&self, now: u64, ping_timeout: u64, connect_deadline: Option<u64>) -> Beat {
        if let Some(deadline) = connect_deadline {
            if now >= deadline && !self.attached.load(Ordering::Relaxed) {
                return Beat::Close(CloseReason::ConnectTimeout);
            }
        }
        let pong_deadline = self.pong_deadline.load(Ordering::Relaxed);
        if pong_deadline != 0 {
            return if now >= pong_deadline { Beat::Close(CloseReason::PingTimeout) } else { Beat::Nothing };
        }
        if now >= self.ping_due.load(Ordering::Relaxed) {
            self.pong_deadline.store(now + ping_timeout, Ordering::Relaxed);
            return Beat::SendPing;
        }
        Beat::Nothing
    }
}

/// Start the sweeper for `engine`; it stops when the engine shuts down.
pub fn spawn_sweeper(engine: Arc<Engine>) -> tokio::task::JoinHandle<()> {
    let cfg = &engine.settings.engine;
    let tick = (cfg.ping_interval_ms.min(cfg.ping_timeout_ms) / 8).clamp(10, 1000);
    let attach_timeout = engine.settings.attach_timeout_ms;
    let ping_timeout = cfg.ping_timeout_ms;
    tokio::spawn(async move {
        let ping = Frame::text(b"2");
        let mut interval = tokio::time::interval(Duration::from_millis(tick));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut to_close = Vec::new();
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = engine.shutdown.cancelled() => return,
            }
            let now = engine.now_ms();
            for entry in engine.sessions.iter() {
                let conn = entry.value();
                let connect_deadline = attach_timeout.map(|t| conn.opened_at + t);
                match conn.beat(now, ping_timeout, connect_deadline) {
                    Beat::Nothing => {}
                    Beat::SendPing => {
                        if let Err(reason) = conn.push(std::slice::from_ref(&ping), Delivery::Reliable) {
                            to_close.push((conn.clone(), reason));
                        }
                    }
                    Beat::Close(reason) => to_close.push((conn.clone(), reason)),
                }
            }
            // Closing touches the session map, so it happens after the iteration's locks are gone.
            for (conn, reason) in to_close.drain(..) {
                engine.close(&conn, reason);
            }
        }
    })
}
