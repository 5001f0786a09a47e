//! `fanout`: N receivers join one room; one sender (not in the room) triggers M broadcasts to
//! it with `hub:to`, keeping at most W broadcasts in flight (a broadcast is done when every
//! receiver has it), so the server is fed as fast as it drains.
//!
//! Reports deliveries per second counted at the receivers, from the first send to the last
//! delivery, and the latency of each delivery from its broadcast's send time. Sender and
//! receivers share one clock (`origin`), carried in each broadcast as microseconds.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::Args;
use serde_json::json;
use tokio::sync::Notify;

use super::{merge, Common};
use crate::procstat::{cpu_micros, own_pid};
use crate::report::{emit, Latency};
use crate::sio::open_many;
use crate::ws::{parse_u64, Conn};

/// Options of `fanout`.
#[derive(Debug, Clone, Args)]
pub struct FanoutArgs {
    /// Receivers in the room.
    #[arg(long, default_value_t = 10_000)]
    pub receivers: usize,
    /// Broadcasts to send.
    #[arg(long, default_value_t = 100)]
    pub broadcasts: usize,
    /// Broadcasts in flight at most (sent, not yet delivered to every receiver).
    #[arg(long, default_value_t = 8)]
    pub window: usize,
    /// The room's name.
    #[arg(long, default_value = "fanout")]
    pub room: String,
    /// Handshakes in flight at once while opening the receivers.
    #[arg(long, default_value_t = 200)]
    pub concurrency: usize,
    /// Give up after this many seconds of sending.
    #[arg(long, default_value_t = 120)]
    pub timeout_secs: u64,
}

/// What the receivers count, shared by every task of the scenario.
struct Tally {
    origin: Instant,
    receivers: u32,
    per_broadcast: Vec<Cell<u32>>,
    completed: Cell<usize>,
    delivered: Cell<u64>,
    last_delivery: Cell<Option<Instant>>,
    latency: RefCell<Latency>,
    progress: Notify,
    dropped: Cell<usize>,
}

/// The broadcast event the receivers get: `42["b",<seq>,<sent µs>]`.
const PREFIX: &[u8] = b"42[\"b\",";

async fn receive(mut conn: Conn, tally: Rc<Tally>) {
    loop {
        let frame = match conn.next().await {
            Ok(f) => f,
            Err(_) => {
                tally.dropped.set(tally.dropped.get() + 1);
                return;
            }
        };
        let Some(rest) = conn.text(&frame).strip_prefix(PREFIX) else { continue };
        let Some((seq, rest)) = parse_u64(rest) else { continue };
        let Some((sent, _)) = rest.strip_prefix(b",").and_then(parse_u64) else { continue };
        let now = Instant::now();
        let Some(count) = tally.per_broadcast.get(seq as usize) else { continue };
        count.set(count.get() + 1);
        tally.delivered.set(tally.delivered.get() + 1);
        tally.last_delivery.set(Some(now));
        let at = now.duration_since(tally.origin).as_micros() as u64;
        tally.latency.borrow_mut().record(at.saturating_sub(sent));
        if count.get() == tally.receivers {
            tally.completed.set(tally.completed.get() + 1);
            tally.progress.notify_one();
        }
    }
}

/// Run the scenario.
pub async fn run(common: Common, args: FanoutArgs) -> Result<()> {
    let target = Rc::new(common.target());
    let room = args.room.clone();
    let opened = open_many(
        target.clone(),
        args.receivers,
        args.concurrency,
        Some(Rc::new(move |_| room.clone())),
        Duration::from_secs(60),
    )
    .await;
    if opened.failed > 0 {
        bail!(
            "{} of {} receivers failed to open or join: {}",
            opened.failed,
            args.receivers,
            opened.first_error.unwrap_or_default()
        );
    }
    let (mut sender, _) = Conn::socketio(&target).await?;
    let tally = Rc::new(Tally {
        origin: Instant::now(),
        receivers: args.receivers as u32,
        per_broadcast: (0..args.broadcasts).map(|_| Cell::new(0)).collect(),
        completed: Cell::new(0),
        delivered: Cell::new(0),
        last_delivery: Cell::new(None),
        latency: RefCell::new(Latency::default()),
        progress: Notify::new(),
        dropped: Cell::new(0),
    });
    let tasks: Vec<_> =
        opened.conns.into_iter().map(|(_, c)| tokio::task::spawn_local(receive(c, tally.clone()))).collect();
    // Let the receiver tasks reach their first read before timing starts.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let own_cpu0 = cpu_micros(own_pid())?;
    let first_send = Instant::now();
    let deadline = first_send + Duration::from_secs(args.timeout_secs);
    let mut sent = 0usize;
    let mut timed_out = false;
    while tally.completed.get() < args.broadcasts {
        if sent < args.broadcasts && sent - tally.completed.get() < args.window {
            let at = tally.origin.elapsed().as_micros();
            let packet = format!("42[\"hub:to\",\"{}\",\"b\",{sent},{at}]", args.room);
            sender.send_text(packet.as_bytes()).await?;
            sent += 1;
            continue;
        }
        tokio::select! {
            _ = tally.progress.notified() => {}
            r = sender.fill() => {
                r?;
                while sender.try_next().await?.is_some() {}
            }
            _ = tokio::time::sleep_until(deadline.into()) => { timed_out = true; break; }
        }
    }
    let own_cpu = cpu_micros(own_pid())? - own_cpu0;
    let wall = first_send.elapsed().as_secs_f64();
    let last = tally.last_delivery.get().unwrap_or(first_send);
    let secs = last.duration_since(first_send).as_secs_f64().max(1e-9);
    let delivered = tally.delivered.get();
    let expected = (args.receivers * args.broadcasts) as u64;
    let rate = delivered as f64 / secs;
    let latency = tally.latency.borrow();
    let result = merge(
        common.head("fanout"),
        json!({
            "receivers": args.receivers,
            "broadcasts": args.broadcasts,
            "window": args.window,
            "delivered": delivered,
            "expected": expected,
            "timed_out": timed_out,
            "receivers_dropped": tally.dropped.get(),
            "seconds": (secs * 1000.0).round() / 1000.0,
            "deliveries_per_sec": rate.round(),
            "latency": latency.summary(),
            // Near 100 means the generator, not the server, set the pace.
            "generator_cpu_pct": (own_cpu as f64 / wall / 1e4).round(),
        }),
    );
    let human = format!(
        "fanout {}: {delivered}/{expected} deliveries to a room of {} in {secs:.3} s = {:.0} \
         deliveries/s; broadcast latency {}",
        common.label,
        args.receivers,
        rate,
        latency.human()
    );
    emit(&result, &human);
    for t in tasks {
        t.abort();
    }
    Ok(())
}
