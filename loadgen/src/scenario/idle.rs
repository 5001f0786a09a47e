//! `idle`: open N Socket.IO WebSocket sessions, hold them, and report the server's resident
//! memory per connection, `(RSS after − RSS before) / N`, read from `/proc/<pid>/status`.

use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use serde_json::json;

use super::{merge, Common};
use crate::procstat::{own_pid, rss_kib};
use crate::report::emit;
use crate::sio::{hold, open_many};

/// Options of `idle`.
#[derive(Debug, Clone, Args)]
pub struct IdleArgs {
    /// Sessions to open (at most ~19,900 per generator process).
    #[arg(long, default_value_t = 19_000)]
    pub connections: usize,
    /// Handshakes in flight at once while opening.
    #[arg(long, default_value_t = 200)]
    pub concurrency: usize,
    /// Seconds to wait once all are open before reading the server's RSS.
    #[arg(long, default_value_t = 5)]
    pub settle_secs: u64,
}

/// Run the scenario.
pub async fn run(common: Common, args: IdleArgs) -> Result<()> {
    let pid = common.server_pid.context("idle needs --server-pid")?;
    let before = rss_kib(pid)?;
    let own_before = rss_kib(own_pid())?;
    let target = Rc::new(common.target());
    let started = Instant::now();
    let opened = open_many(target, args.connections, args.concurrency, None, Duration::from_secs(60)).await;
    let open_secs = started.elapsed().as_secs_f64();
    let open = opened.conns.len();
    let holders: Vec<_> = opened.conns.into_iter().map(|(_, c)| tokio::task::spawn_local(hold(c))).collect();
    tokio::time::sleep(Duration::from_secs(args.settle_secs)).await;
    let after = rss_kib(pid)?;
    let own_after = rss_kib(own_pid())?;
    let still_open = holders.iter().filter(|h| !h.is_finished()).count();
    let per_conn = (after as f64 - before as f64) / open.max(1) as f64;
    let result = merge(
        common.head("idle"),
        json!({
            "connections": args.connections,
            "opened": open,
            "still_open": still_open,
            "failed": opened.failed,
            "first_error": opened.first_error,
            "open_secs": (open_secs * 100.0).round() / 100.0,
            "server_rss_before_kib": before,
            "server_rss_after_kib": after,
            "server_rss_per_conn_kib": (per_conn * 100.0).round() / 100.0,
            "generator_rss_per_conn_kib":
                ((own_after as f64 - own_before as f64) / open.max(1) as f64 * 100.0).round() / 100.0,
        }),
    );
    let human = format!(
        "idle {}: {open} of {} sessions open ({still_open} still open after {} s, {} failed), \
         server RSS {before} → {after} KiB = {per_conn:.2} KiB per connection",
        common.label, args.connections, args.settle_secs, opened.failed
    );
    emit(&result, &human);
    for h in holders {
        h.abort();
    }
    Ok(())
}
