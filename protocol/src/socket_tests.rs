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

fn arb_kind() -> impl Strategy<Value = PacketType> {
    prop_oneof![
        Just(PacketType::Event),
        Just(PacketType::Ack),
        Just(PacketType::BinaryEvent),
        Just(PacketType::BinaryAck),
    ]
}

proptest! {
    #[test]
    fn never_panics(s in ".*") {
        if let Ok(packet) = decode(&s, 16) {
            let _ = packet.event();
            let _ = packet.ack_args();
            let _ = packet.connect_auth();
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
