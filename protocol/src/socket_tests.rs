use super::*;
use proptest::prelude::*;

fn p(text: &str) -> Packet<'_> {
    decode(text, 10).unwrap()
}

#[test]
fn decodes_the_spec_examples() {
    assert_eq!(p("0"), Packet { kind: PacketType::Connect, nsp: "/", id: None, attachments: 0, data: None });
    assert_eq!(p("0/admin,{\"token\":\"123\"}").data, Some("{\"token\":\"123\"}"));
    assert_eq!(p("0/admin,").nsp, "/admin");
    assert_eq!(p("1/admin,").kind, PacketType::Disconnect);
    let e = p("2[\"foo\"]");
    assert_eq!((e.nsp, e.id), ("/", None));
    assert_eq!(e.event().unwrap().name, "foo");
    let e = p("2/admin,456[\"project:delete\",123]");
    assert_eq!((e.nsp, e.id), ("/admin", Some(456)));
    let ev = e.event().unwrap();
    assert_eq!(ev.name, "project:delete");
    assert_eq!(ev.args.iter().map(|a| a.get()).collect::<Vec<_>>(), ["123"]);
    assert_eq!(p("3/admin,456[]").ack_args().unwrap().len(), 0);
    let b = p("51-[\"baz\",{\"_placeholder\":true,\"num\":0}]");
    assert_eq!((b.kind, b.attachments), (PacketType::BinaryEvent, 1));
    let b = p("61-/admin,456[{\"_placeholder\":true,\"num\":0}]");
    assert_eq!((b.kind, b.attachments, b.nsp, b.id), (PacketType::BinaryAck, 1, "/admin", Some(456)));
    assert_eq!(p("4{\"message\":\"Not authorized\"}").kind, PacketType::ConnectError);
}

#[test]
fn refuses_bad_packets() {
    assert_eq!(decode("", 10), Err(SocketError::Empty));
    assert_eq!(decode("7", 10), Err(SocketError::UnknownType('7')));
    assert_eq!(decode("5[\"a\"]", 10), Err(SocketError::Attachments));
    assert_eq!(decode("511-[\"a\"]", 10), Err(SocketError::Attachments));
    assert_eq!(decode("599999999999-[]", 10), Err(SocketError::Attachments));
    assert_eq!(decode("299999999999999999999999[\"a\"]", 10), Err(SocketError::AckId));
    assert!(matches!(decode("2{}", 10), Err(SocketError::Data(..))));
    assert!(matches!(decode("0[]", 10), Err(SocketError::Data(..))));
    assert!(matches!(decode("1/a,x", 10), Err(SocketError::Data(..))));
    assert!(p("2[]").event().is_err());
    assert!(p("2[1]").event().is_err());
    assert!(p("2[\"a\",").event().is_err());
}

#[test]
fn encodes_the_spec_examples() {
    assert_eq!(encode(PacketType::Connect, "/", None, 0, Some("{\"sid\":\"x\"}")), "0{\"sid\":\"x\"}");
    assert_eq!(encode(PacketType::Event, "/admin", Some(456), 0, Some("[\"a\",1]")), "2/admin,456[\"a\",1]");
    assert_eq!(encode(PacketType::BinaryAck, "/", Some(1), 2, Some("[]")), "62-1[]");
    assert_eq!(encode(PacketType::Disconnect, "/chat", None, 0, None), "1/chat,");
    let mut out = Vec::new();
    write_event_data(&mut out, "say \"hi\"", ["1", "{\"a\":2}"]);
    assert_eq!(out, br#"["say \"hi\"",1,{"a":2}]"#);
}

#[test]
fn namespaces() {
    assert!(is_valid_namespace("/"));
    assert!(is_valid_namespace("/admin"));
    assert!(!is_valid_namespace("admin"));
    assert!(!is_valid_namespace(""));
    assert!(!is_valid_namespace("/a,b"));
}

#[test]
fn attachment_limit_is_checked_before_anything_else() {
    assert_eq!(decode("53-[\"a\"]", 2), Err(SocketError::Attachments));
    assert_eq!(decode("53-/x,1[\"a\"]", 3).map(|p| p.attachments), Ok(3));
    // Seven digits are refused before they are parsed, whatever the limit.
    assert_eq!(decode("51000000-[]", usize::MAX), Err(SocketError::Attachments));
    assert_eq!(decode("5999999-[]", usize::MAX).map(|p| p.attachments), Ok(999_999));
}

/// JSON values without floats (serde_json's default float parsing is not exact to the bit).
fn arb_json() -> BoxedStrategy<serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        ".*".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(".*", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
    .boxed()
}

fn arb_object() -> impl Strategy<Value = serde_json::Map<String, serde_json::Value>> {
    proptest::collection::btree_map(".{0,8}", arb_json(), 0..5).prop_map(|m| m.into_iter().collect())
}

/// A namespace as the encoder accepts it: `/`, or `/` and anything without a comma.
fn arb_nsp() -> impl Strategy<Value = String> {
    prop_oneof![Just("/".to_string()), "/[^,]{1,16}", "/[a-z0-9_-]{1,12}"]
}

/// Any packet type with data of the JSON shape that type requires.
fn arb_packet() -> impl Strategy<Value = (PacketType, Option<String>)> {
    use serde_json::Value;
    let array = proptest::collection::vec(arb_json(), 0..5);
    prop_oneof![
        proptest::option::of(arb_object())
            .prop_map(|a| (PacketType::Connect, a.map(|a| Value::Object(a).to_string()))),
        Just((PacketType::Disconnect, None)),
        (any::<String>(), array.clone()).prop_map(|(name, args)| {
            let mut out = Vec::new();
            let args: Vec<String> = args.iter().map(Value::to_string).collect();
            write_event_data(&mut out, &name, args.iter().map(String::as_str));
            (PacketType::Event, Some(String::from_utf8(out).unwrap()))
        }),
        array.clone().prop_map(|a| (PacketType::Ack, Some(Value::Array(a).to_string()))),
        ".*".prop_map(|m| (PacketType::ConnectError, Some(Value::from(m).to_string()))),
        (any::<String>(), proptest::option::of(arb_json())).prop_map(|(m, d)| {
            let mut obj = serde_json::json!({ "message": m });
            if let Some(d) = d {
                obj["data"] = d;
            }
            (PacketType::ConnectError, Some(obj.to_string()))
        }),
        (any::<String>(), array.clone()).prop_map(|(name, mut args)| {
            args.insert(0, Value::from(name));
            (PacketType::BinaryEvent, Some(Value::Array(args).to_string()))
        }),
        array.prop_map(|a| (PacketType::BinaryAck, Some(Value::Array(a).to_string()))),
    ]
}

fn arb_kind() -> impl Strategy<Value = PacketType> {
    prop_oneof![
        Just(PacketType::Event),
        Just(PacketType::Ack),
        Just(PacketType::BinaryEvent),
        Just(PacketType::BinaryAck),
    ]
}

fn exercise(s: &str, max_attachments: usize) -> Result<(), TestCaseError> {
    if let Ok(packet) = decode(s, max_attachments) {
        prop_assert!(packet.attachments <= max_attachments);
        prop_assert!(is_valid_namespace(packet.nsp));
        // Decoding is a fixed point of encoding.
        let again = encode(packet.kind, packet.nsp, packet.id, packet.attachments, packet.data);
        prop_assert_eq!(decode(&again, max_attachments), Ok(packet.clone()));
        let _ = packet.event();
        let _ = packet.ack_args();
        let _ = packet.connect_auth();
    }
    Ok(())
}

proptest! {
    #[test]
    fn never_panics(s in ".*", max in any::<usize>()) {
        exercise(&s, max)?;
    }

    #[test]
    fn never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512), max in 0usize..64) {
        exercise(&String::from_utf8_lossy(&bytes), max)?;
    }

    #[test]
    fn never_panics_on_packet_like_text(
        s in "[0-7]([0-9]{0,8}-)?(/[a-z,]{0,4},)?[0-9]{0,22}(\\[|\\{|\")?.{0,16}(\\]|\\})?",
        max in 0usize..8,
    ) {
        exercise(&s, max)?;
    }

    #[test]
    fn every_type_round_trips((kind, data) in arb_packet(), nsp in arb_nsp(), id in proptest::option::of(any::<u64>()),
                              attachments in 0usize..1000) {
        let attachments = if kind.is_binary() { attachments } else { 0 };
        let text = encode(kind, &nsp, id, attachments, data.as_deref());
        let back = decode(&text, 1000).unwrap();
        prop_assert_eq!(&back, &Packet { kind, nsp: &nsp, id, attachments, data: data.as_deref() });
        let value: Option<serde_json::Value> = data.as_deref().map(|d| serde_json::from_str(d).unwrap());
        match kind {
            PacketType::Connect => {
                prop_assert_eq!(back.connect_auth().unwrap(), value.map(|v| v.as_object().unwrap().clone()));
            }
            PacketType::Event | PacketType::BinaryEvent => {
                let value = value.unwrap();
                let items = value.as_array().unwrap();
                let ev = back.event().unwrap();
                prop_assert_eq!(ev.name.as_ref(), items[0].as_str().unwrap());
                let args: Vec<String> = items[1..].iter().map(|v| v.to_string()).collect();
                prop_assert_eq!(ev.args.iter().map(|a| a.get()).collect::<Vec<_>>(), args);
            }
            PacketType::Ack | PacketType::BinaryAck => {
                let args: Vec<String> = value.unwrap().as_array().unwrap().iter().map(|v| v.to_string()).collect();
                prop_assert_eq!(back.ack_args().unwrap().iter().map(|a| a.get()).collect::<Vec<_>>(), args);
            }
            PacketType::Disconnect => prop_assert_eq!(back.data, None),
            PacketType::ConnectError => prop_assert!(back.data.is_some()),
        }
    }

    #[test]
    fn attachments_over_the_limit_are_refused(n in 0usize..1_000_000, max in 0usize..1_000_000) {
        let text = format!("5{n}-/admin,7[\"a\"]");
        let got = decode(&text, max);
        if n > max {
            prop_assert_eq!(got, Err(SocketError::Attachments));
        } else {
            prop_assert_eq!(got.map(|p| p.attachments), Ok(n));
        }
    }

    #[test]
    fn round_trips(kind in arb_kind(), nsp in "(/|/[a-z0-9_-]{1,12})", id in proptest::option::of(any::<u64>()),
                   attachments in 0usize..16, name in "[^\"\\\\]{1,10}", arg in any::<i64>()) {
        let mut data = Vec::new();
        write_event_data(&mut data, &name, [arg.to_string().as_str()]);
        let data = String::from_utf8(data).unwrap();
        let attachments = if kind.is_binary() { attachments } else { 0 };
        let text = encode(kind, &nsp, id, attachments, Some(&data));
        let back = decode(&text, 16).unwrap();
        prop_assert_eq!(back.clone(), Packet { kind, nsp: &nsp, id, attachments, data: Some(&data) });
        if matches!(kind, PacketType::Event | PacketType::BinaryEvent) {
            let ev = back.event().unwrap();
            prop_assert_eq!(ev.name, name);
            prop_assert_eq!(ev.args[0].get(), arg.to_string());
        }
    }
}
