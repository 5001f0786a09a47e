//! `handshake`: C workers each loop open → Engine.IO open packet → `40` → CONNECT reply
//! `40{"sid":…}` → close, for D seconds; reports completed handshakes per second and the
//! latency of each (TCP connect to CONNECT reply).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;
use serde_json::json;

use super::{merge, Common};
use crate::procstat::{cpu_micros, own_pid};
use crate::report::{emit, Latency};
use crate::ws::Conn;

/// Options of `handshake`.
#[derive(Debug, Clone, Args)]
pub struct HandshakeArgs {
    /// Handshakes in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Seconds to run.
    #[arg(long, default_value_t = 10)]
    pub duration_secs: u64,
}

#[derive(Default)]
struct Counts {
    done: Cell<u64>,
    failed: Cell<u64>,
    first_error: RefCell<Option<String>>,
    latency: RefCell<Latency>,
}

/// Run the scenario.
pub async fn run(common: Common, args: HandshakeArgs) -> Result<()> {
    let target = Rc::new(common.target());
    let counts = Rc::new(Counts::default());
    let cpu_before = common.server_pid.map(cpu_micros).transpose()?;
    let own_cpu0 = cpu_micros(own_pid())?;
    let start = Instant::now();
    let end = start + Duration::from_secs(args.duration_secs);
    let workers: Vec<_> = (0..args.concurrency)
        .map(|_| {
            let (target, counts) = (target.clone(), counts.clone());
            tokio::task::spawn_local(async move {
                while Instant::now() < end {
                    let t0 = Instant::now();
                    match Conn::socketio(&target).await {
                        Ok((conn, _sid)) => {
                            let t1 = Instant::now();
                            if t1 <= end {
                                counts.done.set(counts.done.get() + 1);
                                counts.latency.borrow_mut().record((t1 - t0).as_micros() as u64);
                            }
                            let _ = conn.close().await;
                        }
                        Err(e) => {
                            counts.failed.set(counts.failed.get() + 1);
                            counts.first_error.borrow_mut().get_or_insert(e.to_string());
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.await;
    }
    let cpu_after = common.server_pid.map(cpu_micros).transpose()?;
    let own_cpu = cpu_micros(own_pid())? - own_cpu0;
    let wall = start.elapsed().as_secs_f64();
    let secs = args.duration_secs as f64;
    let done = counts.done.get();
    let rate = done as f64 / secs;
    let cpu_per = match (cpu_before, cpu_after) {
        (Some(b), Some(a)) if done > 0 => Some(((a - b) as f64 / done as f64 * 10.0).round() / 10.0),
        _ => None,
    };
    let latency = counts.latency.borrow();
    let result = merge(
        common.head("handshake"),
        json!({
            "concurrency": args.concurrency,
            "seconds": secs,
            "handshakes": done,
            "failed": counts.failed.get(),
            "first_error": *counts.first_error.borrow(),
            "handshakes_per_sec": rate.round(),
            "server_cpu_us_per_handshake": cpu_per,
            "latency": latency.summary(),
            // Near 100 means the generator, not the server, set the pace.
            "generator_cpu_pct": (own_cpu as f64 / wall / 1e4).round(),
        }),
    );
    let human = format!(
        "handshake {}: {done} handshakes in {secs} s = {rate:.0}/s ({} failed), latency {}",
        common.label,
        counts.failed.get(),
        latency.human()
    );
    emit(&result, &human);
    Ok(())
}
