//! `cluster::codec::decode` (one mesh frame body from a peer) and `frame_len` (its prefix).
//!
//! Checks: neither panics; a frame length above `MAX_FRAME` or of zero is refused; decoding is
//! deterministic.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use socketio_hub::cluster::codec;

fuzz_target!(|data: &[u8]| {
    if let Some(head) = data.first_chunk::<4>() {
        let announced = u32::from_be_bytes(*head) as usize;
        match codec::frame_len(*head) {
            Ok(n) => assert!(n == announced && n > 0 && n <= codec::MAX_FRAME),
            Err(_) => assert!(announced == 0 || announced > codec::MAX_FRAME),
        }
    }
    let body = Bytes::copy_from_slice(data);
    let first = codec::decode(&body);
    let again = codec::decode(&body);
    assert_eq!(format!("{first:?}"), format!("{again:?}"));
});
