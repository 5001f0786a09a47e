//! An Engine.IO handler that echoes every message back: the engine's test peer and the body
//! of `examples/engine_echo.rs`, with that example's command line (`EchoArgs`).

use std::sync::{Arc, OnceLock, Weak};

use bytes::Bytes;
use clap::Parser;
use socketio_hub_config::EngineConfig;

use super::{CloseReason, Conn, Delivery, Engine, EngineHandler};
use crate::frame::{Frame, FrameBuilder};

/// The command line of `examples/engine_echo.rs`. Clap prints each default itself, so the
/// help texts do not repeat them.
#[derive(Debug, Clone, Parser)]
#[command(name = "engine_echo", about = "A raw Engine.IO v4 echo server at /engine.io/.")]
pub struct EchoArgs {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 3001)]
    pub port: u16,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: std::net::IpAddr,
    /// Ping interval in ms.
    #[arg(long, default_value_t = 25_000)]
    pub ping_interval: u64,
    /// Ping timeout in ms.
    #[arg(long, default_value_t = 20_000)]
    pub ping_timeout: u64,
    /// Largest message in bytes.
    #[arg(long, default_value_t = 1_000_000)]
    pub max_payload: usize,
}

impl EchoArgs {
    /// The engine settings these arguments ask for.
    pub fn engine_config(&self) -> EngineConfig {
        EngineConfig {
            ping_interval_ms: self.ping_interval,
            ping_timeout_ms: self.ping_timeout,
            max_payload: self.max_payload,
            ..EngineConfig::default()
        }
    }
}

/// Echoes text messages as `4<text>` and binary messages as binary.
#[derive(Default)]
pub struct Echo {
    engine: OnceLock<Weak<Engine>>,
}

impl Echo {
    /// An echo handler plugged into `engine`; sessions need no attach.
    pub fn install(engine: &Arc<Engine>) {
        let echo = Arc::new(Echo::default());
        let _ = echo.engine.set(Arc::downgrade(engine));
        engine.set_handler(echo);
    }

    fn send(&self, conn: &Arc<Conn>, frame: Frame) {
        if let Err(reason) = conn.push(&[frame], Delivery::Reliable) {
            if let Some(engine) = self.engine.get().and_then(Weak::upgrade) {
                engine.close(conn, reason);
            }
        }
    }
}

impl EngineHandler for Echo {
    fn on_message(&self, conn: &Arc<Conn>, text: &str) {
        let mut b = FrameBuilder::with_capacity(1 + text.len());
        b.payload().push(b'4');
        b.payload().extend_from_slice(text.as_bytes());
        self.send(conn, b.text());
    }

    fn on_binary(&self, conn: &Arc<Conn>, data: Bytes) {
        self.send(conn, Frame::binary(&data));
    }

    fn on_close(&self, _conn: &Arc<Conn>, _reason: CloseReason) {}
}
