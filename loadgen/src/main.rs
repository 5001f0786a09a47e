//! `loadgen`: the benchmark load generator for socketio-hub and its peers (Node `socket.io`,
//! `socketioxide`).
//!
//! It speaks raw Engine.IO v4 / Socket.IO v5 over its own minimal WebSocket client, dials from
//! rotating 127.0.0.x source addresses so ephemeral ports never run out, and runs one scenario
//! per invocation on a single-threaded runtime (the runner pins it to one core). Each scenario
//! prints a `RESULT {json}` line and a line for people. `webhook-echo` is the application the
//! hub calls in serverless mode for the echo scenario.

mod procstat;
mod report;
mod scenario;
mod sio;
mod webhook;
mod ws;

use anyhow::Result;
use clap::{Parser, Subcommand};

use scenario::echo::EchoArgs;
use scenario::fanout::FanoutArgs;
use scenario::handshake::HandshakeArgs;
use scenario::idle::IdleArgs;
use scenario::soak::SoakArgs;
use scenario::Common;
use webhook::WebhookArgs;

/// Load generator for Socket.IO servers (Engine.IO v4 over WebSocket).
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Hold N idle sessions; report the server's RSS per connection.
    Idle {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: IdleArgs,
    },
    /// Broadcast to a room of N receivers; report deliveries/s and broadcast latency.
    Fanout {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: FanoutArgs,
    },
    /// Open, namespace-connect and close in a loop; report handshakes/s.
    Handshake {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: HandshakeArgs,
    },
    /// Events with acks at a fixed rate; report ack latency percentiles and server CPU per echo.
    Echo {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: EchoArgs,
    },
    /// Hold N sessions with steady traffic and reconnect churn for a long time (leak hunting).
    Soak {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: SoakArgs,
    },
    /// The webhook application for the hub's serverless echo: acks each event with its args.
    WebhookEcho {
        #[command(flatten)]
        args: WebhookArgs,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    procstat::raise_nofile();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        match cli.scenario {
            Scenario::Idle { common, args } => scenario::idle::run(common, args).await,
            Scenario::Fanout { common, args } => scenario::fanout::run(common, args).await,
            Scenario::Handshake { common, args } => scenario::handshake::run(common, args).await,
            Scenario::Echo { common, args } => scenario::echo::run(common, args).await,
            Scenario::Soak { common, args } => scenario::soak::run(common, args).await,
            Scenario::WebhookEcho { args } => webhook::run(args).await,
        }
    })
}
