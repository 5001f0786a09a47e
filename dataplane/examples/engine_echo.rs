//! A raw Engine.IO v4 echo server at `/engine.io/`: every text and binary message comes
//! back. It runs the hub's engine layer alone, without Socket.IO, and is what the engine's
//! own tests talk to.
//!
//! `cargo run --example engine_echo -- --port 3001 --ping-interval 25000 --ping-timeout 20000`

use std::net::SocketAddr;
use std::sync::Arc;

use clap::Parser;
use socketio_hub::engine::{echo::Echo, spawn_sweeper, Engine, EngineSettings};
use socketio_hub::ids::NodeTag;
use socketio_hub::metrics::Metrics;
use socketio_hub_config::{CorsConfig, EngineConfig};
use warp::Filter;

#[derive(Parser)]
struct Args {
    /// Port to listen on (0 picks a free one). [default: 3001]
    #[arg(long, default_value_t = 3001)]
    port: u16,
    /// Address to bind. [default: 127.0.0.1]
    #[arg(long, default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    /// Ping interval in ms. [default: 25000]
    #[arg(long, default_value_t = 25_000)]
    ping_interval: u64,
    /// Ping timeout in ms. [default: 20000]
    #[arg(long, default_value_t = 20_000)]
    ping_timeout: u64,
    /// Largest message in bytes. [default: 1000000]
    #[arg(long, default_value_t = 1_000_000)]
    max_payload: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let engine_cfg = EngineConfig {
        ping_interval_ms: args.ping_interval,
        ping_timeout_ms: args.ping_timeout,
        max_payload: args.max_payload,
        ..EngineConfig::default()
    };
    let settings = EngineSettings {
        path: "/engine.io/".into(),
        engine: engine_cfg,
        cors: CorsConfig::default(),
        attach_timeout_ms: None,
    };
    let engine = Engine::new(settings, NodeTag::derive("echo", 0), Arc::new(Metrics::new()));
    Echo::install(&engine);
    let listener = socketio_hub::transport::bind(SocketAddr::new(args.host, args.port))?;
    println!("engine echo ready at http://{}/engine.io/", listener.local_addr()?);
    spawn_sweeper(engine.clone());
    let not_found = warp::any().and_then(|| async { Err::<String, _>(warp::reject::not_found()) });
    socketio_hub::transport::serve(engine, listener, not_found.map(warp::Reply::into_response).boxed()).await;
    Ok(())
}
