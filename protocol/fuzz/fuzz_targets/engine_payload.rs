//! `engine::decode_payload` (an HTTP long-polling POST body) with a fuzzed `max_payload`.
//!
//! Checks: one item per `\x1e`-separated part; a decoded binary item never exceeds
//! `max_payload` (the limit is enforced, not just approximated); text items borrow their data.
#![no_main]

use libfuzzer_sys::fuzz_target;
use socketio_hub_protocol::engine::{decode_payload, Packet};
use socketio_hub_protocol::EngineError;

fuzz_target!(|data: &[u8]| {
    let Some((head, body)) = data.split_first_chunk::<4>() else { return };
    // Small limits are the interesting ones; the all-ones value checks that the limit
    // arithmetic cannot overflow.
    let max = match u32::from_le_bytes(*head) {
        u32::MAX => usize::MAX,
        n => (n % 4096) as usize,
    };
    let body = String::from_utf8_lossy(body);
    let parts: Vec<&str> = body.split('\x1e').collect();
    let mut count = 0;
    for (item, part) in decode_payload(&body, max).zip(&parts) {
        count += 1;
        match item {
            Ok(Packet::Binary(bytes)) => {
                assert!(part.starts_with('b'));
                assert!(bytes.len() <= max, "binary item of {} bytes passed max {max}", bytes.len());
            }
            Ok(Packet::Message(m)) => assert_eq!(m, &part[1..]),
            Ok(_) => assert!(!part.starts_with('b')),
            Err(EngineError::TooLarge { size, max: m }) => {
                assert_eq!(m, max);
                assert!(size > max);
            }
            Err(_) => {}
        }
    }
    assert_eq!(count, parts.len());
});
