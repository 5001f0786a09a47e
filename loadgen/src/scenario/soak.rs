//! `soak`: hold N WebSocket sessions for a long time with steady traffic and reconnect churn,
//! so that a leak in the server (memory, tasks, file descriptors, room index, session table)
//! shows in its per-minute readings (`bench/soak.sh` takes those; this side only drives).
//!
//! Every session joins one of `--rooms` shared rooms (`soak-<k>`, the same names in every
//! generator process, so with one generator per node each room spans the cluster) and then, on
//! its own schedule, emits with an ack id: mostly `hub:to` its room (a broadcast every other
//! member receives), and every fourth operation a `hub:join` of a room of its own (`tmp-<i>`)
//! that the next operation leaves again (rooms appearing and disappearing). Each session lives
//! a random lifetime around `--churn-lifetime-secs` (0: forever), then closes — alternately
//! with the Engine.IO/WebSocket close handshake (`41`, `1`, close frame) and by dropping the TCP
//! connection — and a new session takes its place at once, so the count stays at N.
//!
//! Prints `READY` once the first N sessions are open, a `PROGRESS {json}` line every
//! `--report-secs`, and the `RESULT {json}` line after `--duration-secs` (counted from READY),
//! when every session is closed the same two ways. A session waits for its outstanding acks
//! (up to `--ack-wait-secs`) before a churn close, so `unacked` counts only acks that did not
//! come in that time.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;
use serde_json::json;
use tokio::sync::Semaphore;

use super::{merge, Common};
use crate::procstat::{cpu_micros, own_pid, rss_kib};
use crate::report::{emit, Latency};
use crate::sio::{ack_id, join};
use crate::ws::{Conn, Target};

/// Options of `soak`.
#[derive(Debug, Clone, Args)]
pub struct SoakArgs {
    /// Sessions held at once (at most ~19,900 per generator process).
    #[arg(long, default_value_t = 10_000)]
    pub connections: usize,
    /// Shared rooms the sessions are spread over.
    #[arg(long, default_value_t = 100)]
    pub rooms: usize,
    /// Operations (emits with acks) per second, all sessions together.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Mean session lifetime before a churn close and reopen, seconds (0 = no churn).
    #[arg(long, default_value_t = 600)]
    pub churn_lifetime_secs: u64,
    /// Seconds of traffic after READY.
    #[arg(long, default_value_t = 120)]
    pub duration_secs: u64,
    /// Seconds between PROGRESS lines.
    #[arg(long, default_value_t = 60)]
    pub report_secs: u64,
    /// Handshakes in flight at once (initial opening and reopening).
    #[arg(long, default_value_t = 100)]
    pub concurrency: usize,
    /// Seed of the lifetimes and send phases (give each generator process its own).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// How long a closing session waits for its outstanding acks; those still missing then
    /// count as `unacked`.
    #[arg(long, default_value_t = 30)]
    pub ack_wait_secs: u64,
}

#[derive(Default)]
struct Counts {
    open: Cell<u64>,
    opened: Cell<u64>,
    open_errors: Cell<u64>,
    conn_errors: Cell<u64>,
    churn_graceful: Cell<u64>,
    churn_abrupt: Cell<u64>,
    sent: Cell<u64>,
    acked: Cell<u64>,
    bad_acks: Cell<u64>,
    unacked: Cell<u64>,
    delivered: Cell<u64>,
    latency: RefCell<Latency>,
    interval_latency: RefCell<Latency>,
    first_error: RefCell<Option<String>>,
}

impl Counts {
    fn bump(c: &Cell<u64>) {
        c.set(c.get() + 1);
    }

    fn error(&self, c: &Cell<u64>, e: &io::Error) {
        Self::bump(c);
        self.first_error.borrow_mut().get_or_insert_with(|| e.to_string());
    }
}

struct Plan {
    target: Target,
    rooms: usize,
    /// Time between one session's operations.
    period: Duration,
    mean_life: Option<Duration>,
    seed: u64,
    ack_wait: Duration,
    /// Set once READY is printed: when the traffic ends.
    end: Cell<Option<Instant>>,
    opens: Semaphore,
}

/// splitmix64: a deterministic stream of pseudo-random numbers per session.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A fraction in [0, 1) from `x`.
fn unit(x: u64) -> f64 {
    (mix(x) >> 11) as f64 / (1u64 << 53) as f64
}

/// How a session ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Close {
    /// `41` (leave `/`), `1` (Engine.IO close), then the WebSocket close frame.
    Graceful,
    /// The TCP connection dropped with no closing handshake.
    Abrupt,
}

async fn close(mut conn: Conn, how: Close) {
    if how == Close::Graceful {
        // The server may already be gone; nothing to count then.
        if conn.send_text(b"41").await.is_ok() && conn.send_text(b"1").await.is_ok() {
            let _ = conn.close().await;
        }
    }
}

/// What one life of a session ended with.
enum Ended {
    /// Its lifetime was up: close it this way and open another.
    Churn(Close),
    /// The run is over.
    Done,
    /// The connection failed.
    Failed,
}

struct Pending {
    id: u64,
    sent: Instant,
}

/// One life of session slot `i`, `generation` `g`: join its room, then operate until its
/// lifetime or the run ends. Returns the connection to close, if it is to be closed.
async fn live(i: usize, g: u64, mut conn: Conn, plan: &Plan, counts: &Counts) -> (Option<Conn>, Ended) {
    let rng = plan.seed.wrapping_mul(1_000_003).wrapping_add(i as u64).wrapping_mul(7919).wrapping_add(g);
    let room = format!("soak-{}", i % plan.rooms.max(1));
    if let Err(e) = join(&mut conn, &room).await {
        counts.error(&counts.conn_errors, &e);
        return (None, Ended::Failed);
    }
    let now = Instant::now();
    let close_at = plan.mean_life.map(|m| now + m.mul_f64(0.5 + unit(rng)));
    let mut next = now + plan.period.mul_f64(unit(rng ^ 0x5eed));
    let mut pending: VecDeque<Pending> = VecDeque::new();
    let mut id: u64 = 0;
    let mut op: u64 = mix(rng) % 4;
    let how = if g.is_multiple_of(2) { Close::Graceful } else { Close::Abrupt };
    let far = now + Duration::from_secs(365 * 24 * 3600);
    let mut stopping: Option<(Instant, Ended)> = None;
    loop {
        let end = plan.end.get().unwrap_or(far);
        if stopping.is_none() {
            if Instant::now() >= end {
                stopping = Some((Instant::now() + plan.ack_wait, Ended::Done));
            } else if close_at.is_some_and(|c| Instant::now() >= c) {
                stopping = Some((Instant::now() + plan.ack_wait, Ended::Churn(how)));
            }
        }
        if let Some((give_up, _)) = &stopping {
            if pending.is_empty() || Instant::now() >= *give_up {
                counts.unacked.set(counts.unacked.get() + pending.len() as u64);
                let (_, ended) = stopping.take().expect("checked above");
                return (Some(conn), ended);
            }
        }
        let wake = match (&stopping, close_at) {
            (Some((give_up, _)), _) => *give_up,
            (None, Some(c)) => next.min(c).min(end),
            (None, None) => next.min(end),
        };
        tokio::select! {
            _ = tokio::time::sleep_until(wake.into()) => {
                if stopping.is_some() || Instant::now() < next {
                    continue;
                }
                id += 1;
                let packet = match op % 4 {
                    1 => format!("42{id}[\"hub:join\",\"tmp-{i}\"]"),
                    2 => format!("42{id}[\"hub:leave\",\"tmp-{i}\"]"),
                    _ => format!("42{id}[\"hub:to\",\"{room}\",\"soak\",{i},{id}]"),
                };
                op += 1;
                next += plan.period;
                if let Err(e) = conn.send_text(packet.as_bytes()).await {
                    counts.error(&counts.conn_errors, &e);
                    return (None, Ended::Failed);
                }
                pending.push_back(Pending { id, sent: Instant::now() });
                Counts::bump(&counts.sent);
            }
            r = conn.fill() => {
                if let Err(e) = r {
                    counts.error(&counts.conn_errors, &e);
                    return (None, Ended::Failed);
                }
                loop {
                    let frame = match conn.try_next().await {
                        Ok(Some(f)) => f,
                        Ok(None) => break,
                        Err(e) => {
                            counts.error(&counts.conn_errors, &e);
                            return (None, Ended::Failed);
                        }
                    };
                    let text = conn.text(&frame);
                    if text.starts_with(b"42[\"soak\"") {
                        Counts::bump(&counts.delivered);
                        continue;
                    }
                    let Some((got, args)) = ack_id(text) else { continue };
                    if !args.windows(9).any(|w| w == b"\"ok\":true") {
                        Counts::bump(&counts.bad_acks);
                    }
                    if let Some(pos) = pending.iter().position(|p| p.id == got) {
                        let p = pending.remove(pos).expect("position is in range");
                        let us = p.sent.elapsed().as_micros() as u64;
                        counts.latency.borrow_mut().record(us);
                        counts.interval_latency.borrow_mut().record(us);
                        Counts::bump(&counts.acked);
                    }
                }
            }
        }
    }
}

/// Session slot `i`: open, live, close, and open again until the run is over.
async fn slot(i: usize, plan: Rc<Plan>, counts: Rc<Counts>, first_open: Rc<Cell<usize>>) {
    let mut first = true;
    for g in 0u64.. {
        if plan.end.get().is_some_and(|e| Instant::now() >= e) {
            return;
        }
        let opened = {
            let Ok(_permit) = plan.opens.acquire().await else { return };
            tokio::time::timeout(Duration::from_secs(30), Conn::socketio(&plan.target))
                .await
                .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "open timed out")))
        };
        let conn = match opened {
            Ok((c, _sid)) => c,
            Err(e) => {
                counts.error(&counts.open_errors, &e);
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        Counts::bump(&counts.opened);
        counts.open.set(counts.open.get() + 1);
        if std::mem::take(&mut first) {
            first_open.set(first_open.get() + 1);
        }
        let (conn, ended) = live(i, g, conn, &plan, &counts).await;
        counts.open.set(counts.open.get() - 1);
        match ended {
            Ended::Churn(how) => {
                Counts::bump(if how == Close::Graceful {
                    &counts.churn_graceful
                } else {
                    &counts.churn_abrupt
                });
                if let Some(c) = conn {
                    close(c, how).await;
                }
            }
            Ended::Done => {
                // The end of the run closes half of the sessions each way too.
                let how = if i.is_multiple_of(2) { Close::Graceful } else { Close::Abrupt };
                if let Some(c) = conn {
                    close(c, how).await;
                }
                return;
            }
            Ended::Failed => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
}

fn progress(counts: &Counts, started: Instant) -> serde_json::Value {
    let interval = std::mem::take(&mut *counts.interval_latency.borrow_mut());
    json!({
        "t_secs": started.elapsed().as_secs(),
        "open": counts.open.get(),
        "opened": counts.opened.get(),
        "open_errors": counts.open_errors.get(),
        "connection_errors": counts.conn_errors.get(),
        "churn_graceful": counts.churn_graceful.get(),
        "churn_abrupt": counts.churn_abrupt.get(),
        "sent": counts.sent.get(),
        "acked": counts.acked.get(),
        "bad_acks": counts.bad_acks.get(),
        "unacked": counts.unacked.get(),
        "delivered": counts.delivered.get(),
        "interval_ack_latency": interval.summary(),
    })
}

/// Run the scenario.
pub async fn run(common: Common, args: SoakArgs) -> Result<()> {
    let clients = args.connections.max(1);
    let plan = Rc::new(Plan {
        target: common.target(),
        rooms: args.rooms.max(1),
        period: Duration::from_secs_f64(clients as f64 / args.rate.max(0.001)),
        mean_life: (args.churn_lifetime_secs > 0).then(|| Duration::from_secs(args.churn_lifetime_secs)),
        seed: args.seed,
        ack_wait: Duration::from_secs(args.ack_wait_secs),
        end: Cell::new(None),
        opens: Semaphore::new(args.concurrency.max(1)),
    });
    let counts = Rc::new(Counts::default());
    let first_open = Rc::new(Cell::new(0usize));
    let started = Instant::now();
    let slots: Vec<_> = (0..clients)
        .map(|i| tokio::task::spawn_local(slot(i, plan.clone(), counts.clone(), first_open.clone())))
        .collect();
    // READY once every slot has had its first session (open errors are retried).
    while first_open.get() < clients {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if started.elapsed() > Duration::from_secs(600) {
            anyhow::bail!("only {} of {clients} sessions opened in 600 s", first_open.get());
        }
    }
    let ramp_secs = started.elapsed().as_secs_f64();
    let ready_at = Instant::now();
    let end = ready_at + Duration::from_secs(args.duration_secs);
    plan.end.set(Some(end));
    println!("READY {clients} sessions open in {ramp_secs:.1} s");
    let cpu0 = cpu_micros(own_pid())?;
    let mut tick = ready_at;
    while Instant::now() < end {
        tick = (tick + Duration::from_secs(args.report_secs.max(1))).min(end);
        tokio::time::sleep_until(tick.into()).await;
        eprintln!("PROGRESS {}", progress(&counts, ready_at));
    }
    for s in slots {
        let _ = s.await;
    }
    let secs = ready_at.elapsed().as_secs_f64();
    let cpu1 = cpu_micros(own_pid())?;
    let result = merge(
        common.head("soak"),
        merge(
            json!({
                "connections": clients,
                "rooms": args.rooms,
                "target_rate": args.rate,
                "churn_lifetime_secs": args.churn_lifetime_secs,
                "ramp_secs": (ramp_secs * 10.0).round() / 10.0,
                "seconds": secs.round(),
                "ack_latency": counts.latency.borrow().summary(),
                "first_error": counts.first_error.borrow().clone(),
                "generator_cpu_pct": ((cpu1 - cpu0) as f64 / secs / 1e4).round(),
                "generator_rss_kib": rss_kib(own_pid())?,
            }),
            progress(&counts, ready_at),
        ),
    );
    let human = format!(
        "soak {}: {clients} sessions for {:.0} s: {} ops sent, {} acked, {} unacked, {} bad; {} \
         deliveries; {} churn closes ({} graceful), {} connection errors, {} open errors; ack \
         latency {}",
        common.label,
        secs,
        counts.sent.get(),
        counts.acked.get(),
        counts.unacked.get(),
        counts.bad_acks.get(),
        counts.delivered.get(),
        counts.churn_graceful.get() + counts.churn_abrupt.get(),
        counts.churn_graceful.get(),
        counts.conn_errors.get(),
        counts.open_errors.get(),
        counts.latency.borrow().human(),
    );
    emit(&result, &human);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_spread_evenly() {
        let xs: Vec<f64> = (0..10_000).map(unit).collect();
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        assert!((mean - 0.5).abs() < 0.02, "mean {mean}");
        let low = xs.iter().filter(|x| **x < 0.1).count();
        assert!((800..1200).contains(&low), "{low} of 10000 below 0.1");
    }
}
