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

proptest! {
    #[test]
    fn never_panics(s in ".*") {
        let _ = decode_text(&s);
        for item in decode_payload(&s, 1 << 16) { let _ = item; }
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
