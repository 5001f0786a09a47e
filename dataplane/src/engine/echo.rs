//! An Engine.IO handler that echoes every message back: the engine's test peer and the body
//! of `examples/engine_echo.rs`.

use std::sync::{Arc, OnceLock, Weak};

use bytes::Bytes;

use super::{CloseReason, Conn, Delivery, Engine, EngineHandler};
use crate::frame::{Frame, FrameBuilder};

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
