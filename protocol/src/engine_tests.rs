use super::*;
use proptest::prelude::*;

#[test]
fn decodes_the_spec_examples() {
    assert_eq!(decode_text("4hello"), Ok(Packet::Message("hello")));
    assert_eq!(decode_text("2probe"), Ok(Packet::Ping("probe")));
    assert_eq!(decode_text("3"), Ok(Packet::Pong("")));
    assert_eq!(decode_text("5"), Ok(Packet::Upgrade));
    assert_eq!(decode_text("6"), Ok(Packet::Noop));
    assert_eq!(decode_text("1"), Ok(Packet::Close));
    assert_eq!(decode_text(""), Err(EngineError::Empty));
    assert_eq!(decode_text("9x"), Err(EngineError::UnknownType('9')));
    assert_eq!(decode_text("é"), Err(EngineError::UnknownType('\u{c3}')));
}

#[test]
fn decodes_a_polling_payload_with_binary() {
    // From the Engine.IO v4 spec: "4hello\x1ebAQIDBA==".
    let items: Vec<_> = decode_payload("4hello\x1ebAQIDBA==", 100).collect();
    assert_eq!(items, vec![Ok(Packet::Message("hello")), Ok(Packet::Binary(Cow::Owned(vec![1, 2, 3, 4])))]);
}

#[test]
fn refuses_oversized_binary_before_decoding() {
    let big = format!("b{}", "A".repeat(4000));
    let err = decode_payload(&big, 1000).next().unwrap().unwrap_err();
    assert!(matches!(err, EngineError::TooLarge { .. }));
    assert_eq!(decode_payload("b!!!", 100).next().unwrap(), Err(EngineError::Base64));
}

#[test]
fn encodes_payloads() {
    let mut out = Vec::new();
    append_text_to_payload(&mut out, b"4hello");
    append_binary_to_payload(&mut out, &[1, 2, 3, 4]);
    assert_eq!(out, b"4hello\x1ebAQIDBA==");
}

#[test]
fn encodes_open() {
    let open = encode_open(&OpenInfo {
        sid: "lv_VI97HAXpY6yYWAAAC",
        upgrades: &["websocket"],
        ping_interval: 25000,
        ping_timeout: 20000,
        max_payload: 1000000,
    });
    assert_eq!(
        open,
        r#"0{"maxPayload":1000000,"pingInterval":25000,"pingTimeout":20000,"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"]}"#
    );
}

#[test]
fn binary_limit_is_exact() {
    // Regression (fuzz target engine_payload): the bound allowed up to 3 bytes over the maximum.
    assert_eq!(
        decode_payload("bAQIDBA==", 3).next().unwrap(),
        Err(EngineError::TooLarge { size: 4, max: 3 })
    );
    assert_eq!(
        decode_payload("bAQIDBA==", 4).next().unwrap(),
        Ok(Packet::Binary(Cow::Owned(vec![1, 2, 3, 4])))
    );
    assert_eq!(decode_payload("bAQID", 2).next().unwrap(), Err(EngineError::TooLarge { size: 3, max: 2 }));
    assert_eq!(decode_payload("b", 0).next().unwrap(), Ok(Packet::Binary(Cow::Owned(vec![]))));
}

#[test]
fn binary_limit_cannot_overflow() {
    // Regression (fuzz target engine_payload): `max_payload + 3` overflowed for usize::MAX.
    let items: Vec<_> = decode_payload("4hi\x1ebAAAA", usize::MAX).collect();
    assert_eq!(items, vec![Ok(Packet::Message("hi")), Ok(Packet::Binary(Cow::Owned(vec![0, 0, 0])))]);
}

/// Every Engine.IO packet type with its data (types without data get none).
fn arb_packet() -> impl Strategy<Value = (u8, String)> {
    (0u8..=6, ".*").prop_map(|(t, data)| (t, if matches!(t, 1 | 5 | 6) { String::new() } else { data }))
}

fn expected(t: u8, data: &str) -> Packet<'_> {
    match t {
        0 => Packet::Open(data),
        1 => Packet::Close,
        2 => Packet::Ping(data),
        3 => Packet::Pong(data),
        4 => Packet::Message(data),
        5 => Packet::Upgrade,
        _ => Packet::Noop,
    }
}

#[derive(Debug, Clone)]
enum Item {
    Text(u8, String),
    Binary(Vec<u8>),
}

fn arb_item() -> impl Strategy<Value = Item> {
    prop_oneof![
        // A text packet never holds the separator (JSON escapes it), so the strategy leaves it out.
        (0u8..=6, "[^\x1e]*")
            .prop_map(|(t, d)| Item::Text(t, if matches!(t, 1 | 5 | 6) { String::new() } else { d })),
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(Item::Binary),
    ]
}

proptest! {
    #[test]
    fn never_panics(s in ".*", max in prop_oneof![0usize..1 << 16, Just(usize::MAX)]) {
        let _ = decode_text(&s);
        for item in decode_payload(&s, max) { let _ = item; }
    }

    #[test]
    fn never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512), max in any::<usize>()) {
        let s = String::from_utf8_lossy(&bytes);
        let _ = decode_text(&s);
        for item in decode_payload(&s, max) {
            if let Ok(Packet::Binary(b)) = item {
                prop_assert!(b.len() <= max);
            }
        }
    }

    #[test]
    fn text_round_trips((t, data) in arb_packet()) {
        let text = format!("{}{data}", char::from(b'0' + t));
        prop_assert_eq!(decode_text(&text), Ok(expected(t, &data)));
    }

    #[test]
    fn mixed_payload_round_trips(items in proptest::collection::vec(arb_item(), 1..8)) {
        let mut out = Vec::new();
        let mut largest = 0;
        for item in &items {
            match item {
                Item::Text(t, d) => append_text_to_payload(&mut out, format!("{}{d}", char::from(b'0' + t)).as_bytes()),
                Item::Binary(b) => {
                    largest = largest.max(b.len());
                    append_binary_to_payload(&mut out, b);
                }
            }
        }
        let body = String::from_utf8(out).unwrap();
        let decoded: Vec<_> = decode_payload(&body, largest).collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(decoded.len(), items.len());
        for (got, item) in decoded.iter().zip(&items) {
            match item {
                Item::Text(t, d) => prop_assert_eq!(got, &expected(*t, d)),
                Item::Binary(b) => prop_assert_eq!(got, &Packet::Binary(Cow::Borrowed(b.as_slice()))),
            }
        }
        if largest > 0 {
            let refused = decode_payload(&body, largest - 1).filter(|r| matches!(r, Err(EngineError::TooLarge { .. })));
            prop_assert_eq!(refused.count(), items.iter().filter(|i| matches!(i, Item::Binary(b) if b.len() == largest)).count());
        }
    }

    #[test]
    fn binary_limit_is_exact_for_any_size(len in 0usize..2048, max in 0usize..2048) {
        let mut body = Vec::new();
        append_binary_to_payload(&mut body, &vec![7u8; len]);
        let body = String::from_utf8(body).unwrap();
        let item = decode_payload(&body, max).next().unwrap();
        if len <= max {
            prop_assert_eq!(item, Ok(Packet::Binary(Cow::Owned(vec![7u8; len]))));
        } else {
            prop_assert_eq!(item, Err(EngineError::TooLarge { size: len, max }));
        }
    }

    #[test]
    fn payload_round_trips(texts in proptest::collection::vec("[^\x1e]*", 1..5), bin in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut out = Vec::new();
        for t in &texts {
            append_text_to_payload(&mut out, format!("4{t}").as_bytes());
        }
        append_binary_to_payload(&mut out, &bin);
        let body = String::from_utf8(out).unwrap();
        let decoded: Vec<_> = decode_payload(&body, 1 << 16).collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(decoded.len(), texts.len() + 1);
        for (d, t) in decoded.iter().zip(&texts) {
            prop_assert_eq!(d, &Packet::Message(t));
        }
        prop_assert_eq!(decoded.last().unwrap(), &Packet::Binary(Cow::Owned(bin)));
    }
}
