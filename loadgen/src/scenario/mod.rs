//! The load scenarios, one module each; every one prints one `RESULT {json}` line and one line
//! for people.
//!
//! All run on a single-threaded runtime (the generator is pinned to one core), so shared
//! counters are plain `Cell`s behind `Rc`, never atomics or locks.

pub mod echo;
pub mod fanout;
pub mod handshake;
pub mod idle;
pub mod soak;

use std::net::SocketAddr;

use clap::Args;
use serde_json::{json, Value};

use crate::ws::Target;

/// Options every client scenario takes.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// The server's client address.
    #[arg(long, default_value = "127.0.0.1:3000")]
    pub target: SocketAddr,
    /// The Socket.IO path.
    #[arg(long, default_value = "/socket.io/")]
    pub path: String,
    /// How many loopback source addresses (127.0.0.1..=127.0.0.N) to rotate through.
    #[arg(long, default_value_t = 64)]
    pub sources: u8,
    /// The server's name in the report.
    #[arg(long, default_value = "server")]
    pub label: String,
    /// The server's pid, for its memory and CPU readings.
    #[arg(long)]
    pub server_pid: Option<u32>,
}

impl Common {
    /// The dial target these options describe.
    pub fn target(&self) -> Target {
        Target::new(self.target, self.path.clone(), self.sources)
    }

    /// The fields every report starts with.
    pub fn head(&self, scenario: &str) -> Value {
        json!({"scenario": scenario, "server": self.label, "target": self.target.to_string()})
    }
}

/// Merge the fields of `extra` into the object `base`.
pub fn merge(mut base: Value, extra: Value) -> Value {
    if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
        b.extend(e);
    }
    base
}
