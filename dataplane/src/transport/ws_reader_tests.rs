use proptest::prelude::*;

use super::*;

/// An event or error with everything owned, to compare runs.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<(u16, String)>),
    Error(u16),
}

fn seen(item: Result<Event<'_>, ReadError>) -> Seen {
    match item {
        Ok(Event::Text(t)) => Seen::Text(t.into_owned()),
        Ok(Event::Binary(b)) => Seen::Binary(b.into_owned()),
        Ok(Event::Ping(b)) => Seen::Ping(b.into_owned()),
        Ok(Event::Pong(b)) => Seen::Pong(b.into_owned()),
        Ok(Event::Close(c)) => Seen::Close(c.map(|c| (c.code, c.reason.into_owned()))),
        Err(e) => Seen::Error(e.close_code()),
    }
}

/// Feed `bytes` in pieces cut at `cuts` (offsets, any order), collecting everything.
fn run(max: usize, bytes: &[u8], cuts: &[usize]) -> Vec<Seen> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.push(0);
    cuts.push(bytes.len());
    cuts.sort_unstable();
    cuts.dedup();
    let mut r = Reader::new(max);
    let mut out = Vec::new();
    for w in cuts.windows(2) {
        let mut chunk = bytes[w[0]..w[1]].to_vec();
        out.extend(r.feed(&mut chunk).map(seen));
    }
    out
}

fn one_shot(max: usize, bytes: &[u8]) -> Vec<Seen> {
    run(max, bytes, &[])
}

/// A masked client frame.
fn frame(fin: bool, opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut f = vec![if fin { 0x80 } else { 0 } | opcode];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n <= 0xffff => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

const M: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

#[test]
fn rfc6455_section_5_7_examples() {
    // A single-frame masked text message.
    let hello = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
    assert_eq!(one_shot(100, &hello), [Seen::Text("Hello".into())]);
    // A masked Pong with body "Hello".
    let pong = [0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
    assert_eq!(one_shot(100, &pong), [Seen::Pong(b"Hello".to_vec())]);
    // The unmasked examples are what a server sends; from a client they are refused.
    assert_eq!(one_shot(100, &[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]), [Seen::Error(1002)]);
    assert_eq!(one_shot(100, &[0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]), [Seen::Error(1002)]);
    // The fragmented "Hel" + "lo", masked as a client must.
    let mut frag = frame(false, 0x1, b"Hel", M);
    frag.extend(frame(true, 0x0, b"lo", M));
    assert_eq!(one_shot(100, &frag), [Seen::Text("Hello".into())]);
    // 256 bytes in one frame (16-bit length) and 64 KiB (64-bit length).
    let b256: Vec<u8> = (0..=255).collect();
    let f = frame(true, 0x2, &b256, M);
    assert_eq!(&f[..4], &[0x82, 0xFE, 0x01, 0x00]);
    assert_eq!(one_shot(1 << 20, &f), [Seen::Binary(b256)]);
    let b64k = vec![0xa5u8; 65536];
    let f = frame(true, 0x2, &b64k, M);
    assert_eq!(&f[..10], &[0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0]);
    assert_eq!(one_shot(1 << 20, &f), [Seen::Binary(b64k)]);
}

#[test]
fn a_frame_in_one_read_is_borrowed_not_copied() {
    let mut bytes = frame(true, 0x1, b"4hello", M);
    let mut r = Reader::new(100);
    let events: Vec<_> = r.feed(&mut bytes).collect();
    assert!(matches!(&events[..], [Ok(Event::Text(Cow::Borrowed("4hello")))]), "{events:?}");
    assert!(!r.holds_buffers());
}

#[test]
fn partial_frames_are_kept_and_released() {
    let bytes = frame(true, 0x2, &[1, 2, 3, 4, 5, 6, 7, 8, 9], M);
    let mut r = Reader::new(100);
    // A header split after one byte, then the rest of the header and part of the payload.
    assert_eq!(r.feed(&mut bytes[..1].to_vec()).count(), 0);
    assert!(r.holds_buffers());
    assert_eq!(r.feed(&mut bytes[1..9].to_vec()).count(), 0);
    let got: Vec<_> = r.feed(&mut bytes[9..].to_vec()).map(seen).collect();
    assert_eq!(got, [Seen::Binary(vec![1, 2, 3, 4, 5, 6, 7, 8, 9])]);
    assert!(!r.holds_buffers(), "an idle reader holds no heap memory");
    assert_eq!(r.feed(&mut []).count(), 0);
    assert!(!r.holds_buffers());
}

#[test]
fn control_frames_may_interleave_a_fragmented_message() {
    let mut b = frame(false, 0x1, b"4he", M);
    b.extend(frame(true, 0x9, b"p1", M));
    b.extend(frame(false, 0x0, b"ll", M));
    b.extend(frame(true, 0xA, b"", M));
    b.extend(frame(true, 0x0, b"o", M));
    let expect = [Seen::Ping(b"p1".to_vec()), Seen::Pong(vec![]), Seen::Text("4hello".into())];
    assert_eq!(one_shot(100, &b), expect);
    // The same, byte by byte.
    let cuts: Vec<usize> = (0..b.len()).collect();
    assert_eq!(run(100, &b, &cuts), expect);
}

#[test]
fn fragmentation_errors() {
    // A continuation with no message.
    assert_eq!(one_shot(100, &frame(true, 0x0, b"x", M)), [Seen::Error(1002)]);
    // A new message while one is fragmented.
    let mut b = frame(false, 0x1, b"a", M);
    b.extend(frame(true, 0x2, b"b", M));
    assert_eq!(one_shot(100, &b), [Seen::Error(1002)]);
    // A fragmented or long control frame.
    assert_eq!(one_shot(100, &frame(false, 0x9, b"x", M)), [Seen::Error(1002)]);
    assert_eq!(one_shot(1000, &frame(true, 0x9, &[0; 126], M)), [Seen::Error(1002)]);
    // Reserved bits and opcodes.
    assert_eq!(one_shot(100, &[0xC1, 0x80, 0, 0, 0, 0]), [Seen::Error(1002)]);
    for op in [3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
        assert_eq!(one_shot(100, &frame(true, op, b"", M)), [Seen::Error(1002)], "opcode {op}");
    }
    // A 64-bit length with the top bit set.
    let b = [0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4];
    assert_eq!(one_shot(usize::MAX, &b), [Seen::Error(1002)]);
}

#[test]
fn close_frames_are_validated() {
    assert_eq!(one_shot(100, &frame(true, 0x8, b"", M)), [Seen::Close(None)]);
    let ok = [&1000u16.to_be_bytes()[..], b"bye"].concat();
    assert_eq!(one_shot(100, &frame(true, 0x8, &ok, M)), [Seen::Close(Some((1000, "bye".into())))]);
    // A 1-byte payload cannot hold a code.
    assert_eq!(one_shot(100, &frame(true, 0x8, &[3], M)), [Seen::Error(1002)]);
    for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535] {
        let b = frame(true, 0x8, &code.to_be_bytes(), M);
        assert_eq!(one_shot(100, &b), [Seen::Error(1002)], "code {code}");
    }
    for code in
        [1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999]
    {
        let b = frame(true, 0x8, &code.to_be_bytes(), M);
        assert_eq!(one_shot(100, &b), [Seen::Close(Some((code, String::new())))], "code {code}");
    }
    let bad_reason = [&1000u16.to_be_bytes()[..], &[0xff, 0xfe]].concat();
    assert_eq!(one_shot(100, &frame(true, 0x8, &bad_reason, M)), [Seen::Error(1007)]);
    // Nothing is read after a close.
    let mut b = frame(true, 0x8, b"", M);
    b.extend(frame(true, 0x1, b"late", M));
    assert_eq!(one_shot(100, &b), [Seen::Close(None)]);
}

#[test]
fn utf8_is_checked_across_fragments_and_fails_fast() {
    // "κόσμε" with a fragment boundary inside a two-byte sequence.
    let text = "κόσμε".as_bytes();
    let mut b = frame(false, 0x1, &text[..3], M);
    b.extend(frame(true, 0x0, &text[3..], M));
    assert_eq!(one_shot(100, &b), [Seen::Text("κόσμε".into())]);
    // An invalid byte in the first fragment fails before the message ends.
    assert_eq!(one_shot(100, &frame(false, 0x1, &[b'a', 0xff], M)), [Seen::Error(1007)]);
    // ...and inside one frame still arriving.
    let f = frame(true, 0x1, &[b'a', 0xc0, 0x80, b'b', b'c', b'd'], M);
    assert_eq!(one_shot(100, &f[..9]), [Seen::Error(1007)]);
    // A sequence cut off by the end of the message.
    let mut b = frame(false, 0x1, &text[..3], M);
    b.extend(frame(true, 0x0, b"", M));
    assert_eq!(one_shot(100, &b), [Seen::Error(1007)]);
    // Binary messages are not UTF-8-checked.
    assert_eq!(one_shot(100, &frame(true, 0x2, &[0xff], M)), [Seen::Binary(vec![0xff])]);
}

#[test]
fn size_limits_are_judged_from_headers() {
    // A 2^62-byte frame is refused from its 10 header bytes, before any payload.
    let mut head = [0x82, 0xFF, 0x40, 0, 0, 0, 0, 0, 0, 0];
    let mut r = Reader::new(1 << 20);
    let got: Vec<_> = r.feed(&mut head).collect();
    assert!(matches!(&got[..], [Err(e)] if e.is_too_large() && e.close_code() == 1009), "{got:?}");
    assert!(r.is_done() && !r.holds_buffers());
    // Exactly the limit passes, one more byte does not.
    assert_eq!(one_shot(4, &frame(true, 0x2, &[0; 4], M)), [Seen::Binary(vec![0; 4])]);
    assert_eq!(one_shot(4, &frame(true, 0x2, &[0; 5], M)), [Seen::Error(1009)]);
    // Fragments add up: 3 + 2 > 4 is refused at the second header.
    let mut b = frame(false, 0x2, &[0; 3], M);
    b.extend(frame(true, 0x0, &[0; 2], M));
    assert_eq!(one_shot(4, &b), [Seen::Error(1009)]);
    // Control frames are bounded by 125, not by the message limit.
    assert_eq!(one_shot(4, &frame(true, 0x9, &[7; 100], M)), [Seen::Ping(vec![7; 100])]);
}

#[test]
fn buffers_follow_what_arrived_not_what_a_header_announced() {
    // Found by the ws_reader fuzz target: a huge announced length was reserved up front.
    let mut r = Reader::new(usize::MAX >> 1);
    let mut b = vec![0x82, 0xFF, 0, 0, 0, 0xE8, 0x03, 0, 0x8A, 0x85, 1, 2, 3, 4, 9, 9, 9];
    assert_eq!(r.feed(&mut b).count(), 0);
    let held = r.partial.as_ref().and_then(|p| p.message.as_ref()).map_or(0, |m| m.data.capacity());
    assert!(held <= 64, "{held} bytes buffered for 3 received");
    let mut r = Reader::new(1 << 20);
    let mut b = frame(false, 0x1, b"x", M);
    b.extend(&frame(true, 0x0, &[b'y'; 1000], M)[..20]);
    assert_eq!(r.feed(&mut b).count(), 0);
    let held = r.partial.as_ref().and_then(|p| p.message.as_ref()).map_or(0, |m| m.data.capacity());
    assert!(held <= 64, "{held} bytes buffered for 7 received");
}

#[test]
fn unmask_matches_bytewise_xor_at_any_offset() {
    let data: Vec<u8> = (0..37).collect();
    for offset in 0..8 {
        let mut fast = data.clone();
        unmask(&mut fast, M, offset);
        let slow: Vec<u8> = data.iter().enumerate().map(|(i, b)| b ^ M[(offset + i) % 4]).collect();
        assert_eq!(fast, slow, "offset {offset}");
    }
}

/// One message as a client would send it: fragments, pings in between, a mask per frame.
#[derive(Debug, Clone)]
struct Sent {
    text: bool,
    data: Vec<u8>,
    /// Fragment sizes (the rest goes in the last fragment).
    cuts: Vec<usize>,
    /// Insert a ping before fragment i when `pings[i]`.
    pings: Vec<bool>,
    mask: [u8; 4],
}

fn sent() -> impl Strategy<Value = Sent> {
    (
        any::<bool>(),
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..300),
            "\\PC{0,80}".prop_map(|s: String| s.into_bytes()),
        ],
        proptest::collection::vec(0usize..300, 0..4),
        proptest::collection::vec(any::<bool>(), 0..5),
        any::<[u8; 4]>(),
    )
        .prop_map(|(text, data, cuts, pings, mask)| {
            // Text messages carry UTF-8 (cut anywhere, even inside a character).
            let data = if text { String::from_utf8_lossy(&data).into_owned().into_bytes() } else { data };
            Sent { text, data, cuts, pings, mask }
        })
}

fn encode(msgs: &[Sent]) -> (Vec<u8>, Vec<Seen>) {
    let mut bytes = Vec::new();
    let mut expect = Vec::new();
    for m in msgs {
        let mut bounds: Vec<usize> = m.cuts.iter().map(|c| c % (m.data.len() + 1)).collect();
        bounds.sort_unstable();
        bounds.dedup();
        let mut start = 0;
        let mut pieces = Vec::new();
        for b in bounds {
            pieces.push(&m.data[start..b]);
            start = b;
        }
        pieces.push(&m.data[start..]);
        for (i, piece) in pieces.iter().enumerate() {
            if m.pings.get(i).copied().unwrap_or(false) {
                bytes.extend(frame(true, 0x9, &[i as u8], m.mask));
                expect.push(Seen::Ping(vec![i as u8]));
            }
            let op = if i > 0 {
                0x0
            } else if m.text {
                0x1
            } else {
                0x2
            };
            bytes.extend(frame(i + 1 == pieces.len(), op, piece, m.mask));
        }
        expect.push(if m.text {
            Seen::Text(String::from_utf8(m.data.clone()).expect("utf8 by construction"))
        } else {
            Seen::Binary(m.data.clone())
        });
    }
    (bytes, expect)
}

proptest! {
    #[test]
    fn messages_survive_any_fragmentation_and_any_read_split(
        msgs in proptest::collection::vec(sent(), 0..6),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let (bytes, expect) = encode(&msgs);
        prop_assert_eq!(run(1 << 16, &bytes, &cuts), expect);
    }

    #[test]
    fn arbitrary_bytes_read_the_same_however_split(
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
        max in 0usize..300,
    ) {
        let whole = one_shot(max, &bytes);
        prop_assert_eq!(run(max, &bytes, &cuts), whole.clone());
        // At most one error, and it is last; no message over the limit.
        for (i, s) in whole.iter().enumerate() {
            match s {
                Seen::Error(code) => {
                    prop_assert!(i + 1 == whole.len());
                    prop_assert!([1002, 1007, 1009].contains(code));
                }
                Seen::Text(t) => prop_assert!(t.len() <= max),
                Seen::Binary(b) => prop_assert!(b.len() <= max),
                Seen::Ping(b) | Seen::Pong(b) => prop_assert!(b.len() <= 125),
                Seen::Close(_) => prop_assert!(i + 1 == whole.len()),
            }
        }
    }
}
