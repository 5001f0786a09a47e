//! A plain WebSocket echo server on the hub's own framing code (no Engine.IO), for
//! conformance suites such as Autobahn's `fuzzingclient` (`bench/autobahn.sh` runs it).
//!
//! `cargo run --release --example ws_echo -- --port 9001 --max-message 16777216`

use std::net::SocketAddr;

use clap::Parser;

#[derive(Parser)]
#[command(about = "A WebSocket echo server on the hub's framing code.")]
struct Args {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 9001)]
    port: u16,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    /// Largest message (and frame) in bytes.
    #[arg(long, default_value_t = 16 << 20)]
    max_message: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let listener = socketio_hub::transport::bind(SocketAddr::new(args.host, args.port))?;
    println!("ws echo ready at ws://{}/", listener.local_addr()?);
    socketio_hub::transport::serve_websocket_echo(listener, args.max_message).await;
    Ok(())
}
