//! `echo`: C clients each send an event with an ack on a fixed schedule, together a fixed total
//! rate (open loop: a late ack never delays the next send). The latency of each ack is measured
//! from its send's *scheduled* time, so a stall is charged to every send it delayed (no
//! coordinated omission), with one allowance: tokio's timers fire up to about a millisecond
//! late, so a send up to [`TIMER_SLACK`] behind schedule is measured from when it actually left
//! (`start = min(sent, scheduled + TIMER_SLACK)`). The send lag itself is reported. Reports
//! p50/p90/p99/p99.9/max and the server's CPU time per echo (`utime + stime` delta over the
//! measured window, divided by the echoes sent in it).
//!
//! Two forms: `--mode echo` sends `["echo", seq]` and expects the app to ack `[seq]`;
//! `--mode hub-to` sends `["hub:to", "<own room>", "x", seq]` to a room only the sender is in
//! (so nothing is delivered) and measures the server's `{"ok":true}` ack: a round trip through
//! the server alone, with no application code.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use serde_json::json;

use super::{merge, Common};
use crate::procstat::{cpu_micros, own_pid};
use crate::report::{emit, Latency};
use crate::sio::{ack_id, open_many};
use crate::ws::Conn;

/// How late a send may leave (timer granularity) and still be measured from when it left.
pub const TIMER_SLACK: Duration = Duration::from_millis(1);

/// What each client sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// `echo` event, acked by the application with the same arguments.
    Echo,
    /// `hub:to` to the sender's own room, acked by the server.
    HubTo,
}

/// Options of `echo`.
#[derive(Debug, Clone, Args)]
pub struct EchoArgs {
    /// Clients.
    #[arg(long, default_value_t = 1_000)]
    pub clients: usize,
    /// Total sends per second, spread evenly over the clients.
    #[arg(long, default_value_t = 10_000.0)]
    pub rate: f64,
    /// Seconds measured (after the warm-up).
    #[arg(long, default_value_t = 20)]
    pub duration_secs: u64,
    /// Seconds sent but not measured first.
    #[arg(long, default_value_t = 3)]
    pub warmup_secs: u64,
    /// What to send.
    #[arg(long, value_enum, default_value_t = Mode::Echo)]
    pub mode: Mode,
    /// The application's pid (webhook app), for its CPU time per echo.
    #[arg(long)]
    pub app_pid: Option<u32>,
    /// Handshakes in flight at once while opening.
    #[arg(long, default_value_t = 200)]
    pub concurrency: usize,
}

#[derive(Default)]
struct Counts {
    sent: Cell<u64>,
    measured_sent: Cell<u64>,
    acked: Cell<u64>,
    bad_acks: Cell<u64>,
    errors: Cell<u64>,
    latency: RefCell<Latency>,
    send_lag: RefCell<Latency>,
}

struct Plan {
    start: Instant,
    measure_from: Instant,
    end: Instant,
    drain_until: Instant,
    period: Duration,
    mode: Mode,
}

async fn client(i: usize, clients: usize, mut conn: Conn, plan: Rc<Plan>, counts: Rc<Counts>) {
    let mut next = plan.start + plan.period.mul_f64(i as f64 / clients as f64);
    // pending[k] is when ack id base + k's latency starts, None once acked.
    let mut pending: VecDeque<Option<Instant>> = VecDeque::new();
    let mut base: u64 = 1;
    let mut seq: u64 = 0;
    let room = format!("echo-{i}");
    loop {
        if next >= plan.end && pending.iter().all(Option::is_none) {
            return;
        }
        tokio::select! {
            biased;
            _ = tokio::time::sleep_until(next.into()), if next < plan.end => {
                let id = base + pending.len() as u64;
                let packet = match plan.mode {
                    Mode::Echo => format!("42{id}[\"echo\",{seq}]"),
                    Mode::HubTo => format!("42{id}[\"hub:to\",\"{room}\",\"x\",{seq}]"),
                };
                let sent_at = Instant::now();
                if conn.send_text(packet.as_bytes()).await.is_err() {
                    counts.errors.set(counts.errors.get() + 1);
                    return;
                }
                pending.push_back(Some(sent_at.min(next + TIMER_SLACK)));
                counts.sent.set(counts.sent.get() + 1);
                if next >= plan.measure_from {
                    counts.measured_sent.set(counts.measured_sent.get() + 1);
                    counts.send_lag.borrow_mut().record((sent_at - next).as_micros() as u64);
                }
                seq += 1;
                next += plan.period;
            }
            r = conn.fill() => {
                if r.is_err() {
                    counts.errors.set(counts.errors.get() + 1);
                    return;
                }
                loop {
                    let frame = match conn.try_next().await {
                        Ok(Some(f)) => f,
                        Ok(None) => break,
                        Err(_) => {
                            counts.errors.set(counts.errors.get() + 1);
                            return;
                        }
                    };
                    let Some((id, args)) = ack_id(conn.text(&frame)) else { continue };
                    // Ack ids start at 1 and follow the sequence numbers, so `echo` must
                    // return `[id - 1]`; `hub:to` must return `[{"ok":true}]`.
                    let good = match plan.mode {
                        Mode::Echo => args == format!("[{}]", id.wrapping_sub(1)).as_bytes(),
                        Mode::HubTo => args.windows(9).any(|w| w == b"\"ok\":true"),
                    };
                    if !good {
                        counts.bad_acks.set(counts.bad_acks.get() + 1);
                    }
                    let now = Instant::now();
                    let Some(slot) = id.checked_sub(base).and_then(|k| pending.get_mut(k as usize))
                    else {
                        continue;
                    };
                    if let Some(start) = slot.take() {
                        counts.acked.set(counts.acked.get() + 1);
                        if start >= plan.measure_from {
                            counts.latency.borrow_mut().record((now - start).as_micros() as u64);
                        }
                    }
                    while pending.front().is_some_and(Option::is_none) {
                        pending.pop_front();
                        base += 1;
                    }
                }
            }
            _ = tokio::time::sleep_until(plan.drain_until.into()) => return,
        }
    }
}

/// Run the scenario.
pub async fn run(common: Common, args: EchoArgs) -> Result<()> {
    let target = Rc::new(common.target());
    let room: Option<Rc<dyn Fn(usize) -> String>> = match args.mode {
        Mode::HubTo => Some(Rc::new(|i| format!("echo-{i}"))),
        Mode::Echo => None,
    };
    let opened = open_many(target, args.clients, args.concurrency, room, Duration::from_secs(60)).await;
    if opened.failed > 0 {
        bail!(
            "{} of {} clients failed to open: {}",
            opened.failed,
            args.clients,
            opened.first_error.unwrap_or_default()
        );
    }
    let start = Instant::now() + Duration::from_millis(200);
    let measure_from = start + Duration::from_secs(args.warmup_secs);
    let end = measure_from + Duration::from_secs(args.duration_secs);
    let plan = Rc::new(Plan {
        start,
        measure_from,
        end,
        drain_until: end + Duration::from_secs(5),
        period: Duration::from_secs_f64(args.clients as f64 / args.rate),
        mode: args.mode,
    });
    let counts = Rc::new(Counts::default());
    let tasks: Vec<_> = opened
        .conns
        .into_iter()
        .map(|(i, c)| tokio::task::spawn_local(client(i, args.clients, c, plan.clone(), counts.clone())))
        .collect();

    tokio::time::sleep_until(measure_from.into()).await;
    let read_cpu = |pid: Option<u32>| pid.map(cpu_micros).transpose();
    let (server0, app0, own0) =
        (read_cpu(common.server_pid)?, read_cpu(args.app_pid)?, cpu_micros(own_pid())?);
    tokio::time::sleep_until(end.into()).await;
    let (server1, app1, own1) =
        (read_cpu(common.server_pid)?, read_cpu(args.app_pid)?, cpu_micros(own_pid())?);
    for t in tasks {
        let _ = t.await;
    }

    let measured = counts.measured_sent.get();
    let per_echo = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) if measured > 0 => {
            Some(((b - a) as f64 / measured as f64 * 100.0).round() / 100.0)
        }
        _ => None,
    };
    let secs = args.duration_secs as f64;
    let latency = counts.latency.borrow();
    let lost = counts.sent.get() - counts.acked.get();
    let mode = match args.mode {
        Mode::Echo => "echo",
        Mode::HubTo => "hub-to",
    };
    let result = merge(
        common.head("echo"),
        json!({
            "mode": mode,
            "clients": args.clients,
            "target_rate": args.rate,
            "seconds": secs,
            "sent": counts.sent.get(),
            "acked": counts.acked.get(),
            "unacked": lost,
            "bad_acks": counts.bad_acks.get(),
            "connection_errors": counts.errors.get(),
            "measured_rate": (measured as f64 / secs).round(),
            "latency": latency.summary(),
            "send_lag": counts.send_lag.borrow().summary(),
            "server_cpu_us_per_echo": per_echo(server0, server1),
            "app_cpu_us_per_echo": per_echo(app0, app1),
            "generator_cpu_pct": ((own1 - own0) as f64 / secs / 1e4).round(),
        }),
    );
    let human = format!(
        "echo ({mode}) {}: {} clients at {:.0}/s for {secs} s, {} unacked; ack latency {}; \
         server CPU {} µs/echo",
        common.label,
        args.clients,
        args.rate,
        lost,
        latency.human(),
        per_echo(server0, server1).map_or("n/a".into(), |v| format!("{v:.2}")),
    );
    emit(&result, &human);
    Ok(())
}
