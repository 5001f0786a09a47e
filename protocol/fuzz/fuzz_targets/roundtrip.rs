//! Structured round trips: build packets from `arbitrary` input, encode them with the crate's
//! encoders, and check that decoding gives back exactly what was encoded.
#![no_main]

use std::borrow::Cow;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use socketio_hub_protocol::engine::{self, append_binary_to_payload, append_text_to_payload};
use socketio_hub_protocol::socket::{self, PacketType};

#[derive(Arbitrary, Debug)]
enum Input {
    Engine(EnginePacket),
    Payload(Vec<PayloadItem>),
    Socket(SocketPacket),
}

#[derive(Arbitrary, Debug)]
enum EnginePacket {
    Open(String),
    Close,
    Ping(String),
    Pong(String),
    Message(String),
    Upgrade,
    Noop,
}

#[derive(Arbitrary, Debug)]
enum PayloadItem {
    Text(String),
    Binary(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
struct SocketPacket {
    kind: Kind,
    /// The namespace without its leading `/` (commas are removed: they end a namespace).
    nsp: String,
    id: Option<u64>,
    attachments: u8,
}

#[derive(Arbitrary, Debug)]
enum Kind {
    Connect(Option<Vec<(String, Json)>>),
    Disconnect,
    Event(String, Vec<Json>),
    Ack(Vec<Json>),
    ConnectErrorMessage(String),
    ConnectErrorObject(String, Option<Json>),
    BinaryEvent(String, Vec<Json>),
    BinaryAck(Vec<Json>),
}

/// JSON without floats (serde_json's default float parsing is not always exact).
#[derive(Arbitrary, Debug)]
enum Json {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Str(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    fn value(&self) -> Value {
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::from(*b),
            Json::Int(i) => Value::from(*i),
            Json::Uint(u) => Value::from(*u),
            Json::Str(s) => Value::from(s.as_str()),
            Json::Array(items) => Value::Array(items.iter().map(Json::value).collect()),
            Json::Object(fields) => Value::Object(object(fields)),
        }
    }
}

fn object(fields: &[(String, Json)]) -> Map<String, Value> {
    fields.iter().map(|(k, v)| (k.clone(), v.value())).collect()
}

fn engine_round_trip(p: &EnginePacket) {
    let (digit, data, expected) = match p {
        EnginePacket::Open(d) => ('0', d.as_str(), engine::Packet::Open(d)),
        EnginePacket::Close => ('1', "", engine::Packet::Close),
        EnginePacket::Ping(d) => ('2', d.as_str(), engine::Packet::Ping(d)),
        EnginePacket::Pong(d) => ('3', d.as_str(), engine::Packet::Pong(d)),
        EnginePacket::Message(d) => ('4', d.as_str(), engine::Packet::Message(d)),
        EnginePacket::Upgrade => ('5', "", engine::Packet::Upgrade),
        EnginePacket::Noop => ('6', "", engine::Packet::Noop),
    };
    let text = format!("{digit}{data}");
    assert_eq!(engine::decode_text(&text), Ok(expected));
}

fn payload_round_trip(items: &[PayloadItem]) {
    if items.is_empty() {
        return;
    }
    // A text packet cannot carry the separator; JSON never contains it unescaped.
    let texts: Vec<String> = items
        .iter()
        .map(|i| match i {
            PayloadItem::Text(t) => format!("4{}", t.replace('\x1e', "")),
            PayloadItem::Binary(_) => String::new(),
        })
        .collect();
    let mut body = Vec::new();
    let mut max = 0;
    for (item, text) in items.iter().zip(&texts) {
        match item {
            PayloadItem::Text(_) => append_text_to_payload(&mut body, text.as_bytes()),
            PayloadItem::Binary(b) => {
                max = max.max(b.len());
                append_binary_to_payload(&mut body, b);
            }
        }
    }
    let body = String::from_utf8(body).expect("payloads are UTF-8");
    let decoded: Vec<_> = engine::decode_payload(&body, max).collect();
    assert_eq!(decoded.len(), items.len(), "{body:?}");
    for ((item, text), got) in items.iter().zip(&texts).zip(decoded) {
        let expected = match item {
            PayloadItem::Text(_) => engine::Packet::Message(&text[1..]),
            PayloadItem::Binary(b) => engine::Packet::Binary(Cow::Borrowed(b)),
        };
        assert_eq!(got, Ok(expected));
    }
    // One byte less than the largest binary item is refused.
    if max > 0 {
        assert!(engine::decode_payload(&body, max - 1).any(|r| r.is_err()));
    }
}

fn socket_round_trip(p: &SocketPacket) {
    let nsp = format!("/{}", p.nsp.replace(',', ""));
    let (kind, data) = match &p.kind {
        Kind::Connect(auth) => (PacketType::Connect, auth.as_ref().map(|a| Value::Object(object(a)))),
        Kind::Disconnect => (PacketType::Disconnect, None),
        Kind::Event(name, args) | Kind::BinaryEvent(name, args) => {
            let mut items = vec![Value::from(name.as_str())];
            items.extend(args.iter().map(Json::value));
            let kind =
                if matches!(p.kind, Kind::Event(..)) { PacketType::Event } else { PacketType::BinaryEvent };
            (kind, Some(Value::Array(items)))
        }
        Kind::Ack(args) | Kind::BinaryAck(args) => {
            let kind = if matches!(p.kind, Kind::Ack(..)) { PacketType::Ack } else { PacketType::BinaryAck };
            (kind, Some(Value::Array(args.iter().map(Json::value).collect())))
        }
        Kind::ConnectErrorMessage(m) => (PacketType::ConnectError, Some(Value::from(m.as_str()))),
        Kind::ConnectErrorObject(m, d) => {
            let mut obj = Map::new();
            obj.insert("message".into(), Value::from(m.as_str()));
            if let Some(d) = d {
                obj.insert("data".into(), d.value());
            }
            (PacketType::ConnectError, Some(Value::Object(obj)))
        }
    };
    let attachments = if kind.is_binary() { usize::from(p.attachments) } else { 0 };
    let data = data.map(|d| d.to_string());
    let text = socket::encode(kind, &nsp, p.id, attachments, data.as_deref());
    let packet = socket::decode(&text, 255).unwrap_or_else(|e| panic!("{text:?} did not decode: {e}"));
    assert_eq!(
        packet,
        socket::Packet { kind, nsp: &nsp, id: p.id, attachments, data: data.as_deref() },
        "{text:?}"
    );
    if attachments > 0 {
        assert!(socket::decode(&text, attachments - 1).is_err());
    }

    match &p.kind {
        Kind::Connect(auth) => {
            assert_eq!(packet.connect_auth(), Ok(auth.as_ref().map(|a| object(a))));
        }
        Kind::Event(name, args) | Kind::BinaryEvent(name, args) => {
            let event = packet.event().expect("event data");
            assert_eq!(event.name, name.as_str());
            let got: Vec<&str> = event.args.iter().map(|a| a.get()).collect();
            let want: Vec<String> = args.iter().map(|a| a.value().to_string()).collect();
            assert_eq!(got, want);
        }
        Kind::Ack(args) | Kind::BinaryAck(args) => {
            let got: Vec<String> =
                packet.ack_args().expect("ack data").iter().map(|a| a.get().to_owned()).collect();
            let want: Vec<String> = args.iter().map(|a| a.value().to_string()).collect();
            assert_eq!(got, want);
        }
        Kind::Disconnect | Kind::ConnectErrorMessage(_) | Kind::ConnectErrorObject(..) => {}
    }
}

fuzz_target!(|input: Input| {
    match &input {
        Input::Engine(p) => engine_round_trip(p),
        Input::Payload(items) => payload_round_trip(items),
        Input::Socket(p) => socket_round_trip(p),
    }
});
