//! A mesh connection's byte stream as the accepting side reads it: the handshake
//! (`handshake_head`, then `handshake_tail` over the announced length), then length-prefixed
//! frames (`frame_len`, `decode`) until the input ends or a frame is refused.
//!
//! Checks: nothing panics; no read goes past what a header announced; the name in an accepted
//! handshake is at most 1024 bytes.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use socketio_hub::cluster::codec;

fuzz_target!(|data: &[u8]| {
    let Some(head) = data.first_chunk::<{ codec::HANDSHAKE_HEAD }>() else { return };
    let Ok((_version, name_len)) = codec::handshake_head(head) else { return };
    assert!(name_len <= 1024);
    let rest = &data[codec::HANDSHAKE_HEAD..];
    let Some(tail) = rest.get(..name_len + 8) else { return };
    let Ok(node) = codec::handshake_tail(tail) else { return };
    assert_eq!(node.name.len(), name_len);
    let stream = Bytes::copy_from_slice(&rest[name_len + 8..]);
    let mut at = 0;
    while let Some(prefix) = stream.get(at..at + 4) {
        let Ok(len) = codec::frame_len([prefix[0], prefix[1], prefix[2], prefix[3]]) else { return };
        let Some(_) = stream.get(at + 4..at + 4 + len) else { return };
        if codec::decode(&stream.slice(at + 4..at + 4 + len)).is_err() {
            return;
        }
        at += 4 + len;
    }
});
