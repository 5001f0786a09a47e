//! A mesh connection's plaintext as the accepting side parses it: the preamble
//! (`preamble_version`), the handshake carried in the Noise payload (`parse_handshake`; here a
//! `u16` big-endian length then the payload, the encryption itself being `snow`'s), then the
//! decrypted length-prefixed frames (`frame_len`, `decode`) until the input ends or one is
//! refused.
//!
//! Checks: nothing panics; no read goes past what a header announced; the name in an accepted
//! handshake is at most 1024 bytes.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use socketio_hub::cluster::codec;

fuzz_target!(|data: &[u8]| {
    let Some(preamble) = data.first_chunk::<{ codec::PREAMBLE_LEN }>() else { return };
    if codec::preamble_version(preamble).is_err() {
        return;
    }
    let rest = &data[codec::PREAMBLE_LEN..];
    let Some((len, rest)) = rest.split_first_chunk::<2>() else { return };
    let Some(payload) = rest.get(..u16::from_be_bytes(*len) as usize) else { return };
    let Ok((_version, node)) = codec::parse_handshake(payload) else { return };
    assert!(node.name.len() <= 1024);
    let stream = Bytes::copy_from_slice(&rest[payload.len()..]);
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
