//! The server-link wire format: `upstream::link::wire::Reassembly` fed a fuzzed sequence of
//! WebSocket text and binary messages, with a fuzzed attachment limit.
//!
//! Input: one byte of limit, then records `[kind][u16 LE length][bytes]` (even kind: a text
//! message, taken as lossy UTF-8; odd: a binary message).
//!
//! Checks: nothing panics; a completed message carries exactly the attachments it announced,
//! never more than the limit; after an error the stream is not continued (as the link does).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use socketio_hub::upstream::link::wire::Reassembly;

fuzz_target!(|data: &[u8]| {
    let Some((&limit, mut rest)) = data.split_first() else { return };
    let max = limit as usize % 32;
    let mut r = Reassembly::new(max);
    while let Some((head, tail)) = rest.split_first_chunk::<3>() {
        let len = (u16::from_le_bytes([head[1], head[2]]) as usize).min(tail.len());
        let (body, next) = tail.split_at(len);
        rest = next;
        let result = if head[0] % 2 == 0 {
            r.text(&String::from_utf8_lossy(body))
        } else {
            r.binary(Bytes::copy_from_slice(body))
        };
        match result {
            Ok(Some((msg, attachments))) => {
                assert_eq!(attachments.len(), msg.attachments());
                assert!(attachments.len() <= max);
            }
            Ok(None) => {}
            Err(_) => return,
        }
    }
});
