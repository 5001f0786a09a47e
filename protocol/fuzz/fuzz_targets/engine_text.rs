//! `engine::decode_text` on any text (a WebSocket text frame, or one polling item).
//!
//! Checks beyond "never panics": a decoded packet's data is exactly the input after the type
//! digit (it borrows, nothing is dropped or rewritten), and an error is only ever `Empty` or
//! `UnknownType` for the first byte.
#![no_main]

use libfuzzer_sys::fuzz_target;
use socketio_hub_protocol::engine::{decode_text, Packet};
use socketio_hub_protocol::EngineError;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match decode_text(&text) {
        Ok(packet) => {
            let rest = &text[1..];
            match packet {
                Packet::Open(d) | Packet::Ping(d) | Packet::Pong(d) | Packet::Message(d) => {
                    assert_eq!(d, rest);
                    // Borrowed from the input, not copied.
                    assert_eq!(d.as_ptr(), rest.as_ptr());
                }
                Packet::Close | Packet::Upgrade | Packet::Noop => {}
                Packet::Binary(_) => panic!("a text packet decoded as binary"),
            }
        }
        Err(EngineError::Empty) => assert!(text.is_empty()),
        Err(EngineError::UnknownType(c)) => assert_eq!(c as u32, u32::from(text.as_bytes()[0])),
        Err(e) => panic!("unexpected error from decode_text: {e:?}"),
    }
});
