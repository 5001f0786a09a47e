//! A raw Engine.IO v4 echo server at `/engine.io/`: every text and binary message comes
//! back. It runs the hub's engine layer alone, without Socket.IO, and is what the engine's
//! own tests talk to.
//!
//! `cargo run --example engine_echo -- --port 3001 --ping-interval 25000 --ping-timeout 20000`

use std::net::SocketAddr;
use std::sync::Arc;

use clap::Parser;
use socketio_hub::engine::echo::{Echo, EchoArgs};
use socketio_hub::engine::{spawn_sweeper, Engine, EngineSettings};
use socketio_hub::ids::NodeTag;
use socketio_hub::metrics::Metrics;
use socketio_hub_config::CorsConfig;
use warp::Filter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = EchoArgs::parse();
    let settings = EngineSettings {
        path: "/engine.io/".into(),
        engine: args.engine_config(),
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
