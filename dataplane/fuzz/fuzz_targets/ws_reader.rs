//! `transport::ws_reader::Reader` on arbitrary client bytes, with a fuzzed size limit and a
//! fuzzed way of splitting the bytes into reads.
//!
//! Checks: the events do not depend on how the input is split; no message exceeds the limit
//! and no control payload 125 bytes; an error is the last item and carries 1002, 1007 or 1009;
//! nothing follows a Close; an idle reader holds no buffers after a complete stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use socketio_hub::transport::ws_reader::{Event, Reader};

#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<(u16, String)>),
    Error(u16),
}

fn run(max: usize, data: &[u8], cuts: &[usize]) -> (Vec<Seen>, bool) {
    let mut r = Reader::new(max);
    let mut out = Vec::new();
    let mut start = 0;
    for &end in cuts.iter().chain(std::iter::once(&data.len())) {
        let mut chunk = data[start..end].to_vec();
        for item in r.feed(&mut chunk) {
            out.push(match item {
                Ok(Event::Text(t)) => Seen::Text(t.into_owned()),
                Ok(Event::Binary(b)) => Seen::Binary(b.into_owned()),
                Ok(Event::Ping(b)) => Seen::Ping(b.into_owned()),
                Ok(Event::Pong(b)) => Seen::Pong(b.into_owned()),
                Ok(Event::Close(c)) => Seen::Close(c.map(|c| (c.code, c.reason.into_owned()))),
                Err(e) => Seen::Error(e.close_code()),
            });
        }
        start = end;
    }
    (out, r.holds_buffers())
}

fuzz_target!(|input: &[u8]| {
    let Some((head, data)) = input.split_first_chunk::<3>() else { return };
    // Small limits are where the arithmetic is interesting; 0xffff means "no practical limit".
    let max = match u16::from_le_bytes([head[0], head[1]]) {
        u16::MAX => usize::MAX,
        n => n as usize,
    };
    // Cut points: every `step` bytes (1 = byte by byte).
    let step = (head[2] as usize % 16) + 1;
    let cuts: Vec<usize> = (step..data.len()).step_by(step).collect();
    let (whole, _) = run(max, data, &[]);
    let (split, _) = run(max, data, &cuts);
    assert_eq!(whole, split, "events depend on the read split (step {step})");
    for (i, s) in whole.iter().enumerate() {
        let last = i + 1 == whole.len();
        match s {
            Seen::Text(t) => assert!(t.len() <= max),
            Seen::Binary(b) => assert!(b.len() <= max),
            Seen::Ping(b) | Seen::Pong(b) => assert!(b.len() <= 125),
            Seen::Close(c) => {
                assert!(last, "an event after a close");
                if let Some((_, reason)) = c {
                    assert!(reason.len() <= 123);
                }
            }
            Seen::Error(code) => {
                assert!(last, "an event after an error");
                assert!([1002, 1007, 1009].contains(code));
            }
        }
    }
});
