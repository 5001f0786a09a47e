//! The `socketio-hub` binary: parse options, start the hub, drain on SIGTERM.

use std::time::Duration;

use anyhow::Context as _;
use clap::Parser as _;
use socketio_hub::cli::Cli;
use socketio_hub_config::LogFormat;
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(seconds) = cli.sleep {
        std::thread::sleep(Duration::from_secs(seconds));
        return Ok(());
    }
    let print = cli.print_config;
    let config = cli.into_config().context("configuration")?;
    if print {
        print!("{}", config.to_toml());
        return Ok(());
    }
    let filter = EnvFilter::try_new(&config.log.level).context("log filter")?;
    match config.log.format {
        LogFormat::Text => {
            tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init()
        }
        LogFormat::Json => {
            tracing_subscriber::fmt().json().with_env_filter(filter).with_writer(std::io::stderr).init()
        }
    }
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = config.workers {
        rt.worker_threads(n);
    }
    let rt = rt.enable_all().build().context("tokio runtime")?;
    rt.block_on(run(config))
}

async fn run(config: socketio_hub_config::HubConfig) -> anyhow::Result<()> {
    let grace = Duration::from_millis(config.shutdown_grace_ms);
    let endpoint = config.endpoint();
    let running = socketio_hub::start(config.clone()).await.context("starting the hub")?;
    let endpoint = if config.public_endpoint.is_none() {
        format!("http://localhost:{}", running.client_addr.port())
    } else {
        endpoint
    };
    // The ready line is a contract: tests and tools parse it.
    println!("socketio-hub ready clients={} admin={}", running.client_addr, running.admin_addr);
    let keys = &running.hub.keys;
    println!("connection string: {}", keys.connection_string(&endpoint));
    if keys.generated {
        println!("(a new access key was generated for this run; set SOCKETIO_HUB_ACCESS_KEYS to keep one)");
    }
    if config.demo_page {
        println!("demo chat: {endpoint}/");
    }
    wait_for_signal().await;
    running.shutdown(grace).await;
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: draining"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: draining"),
    }
}
