//! `socket::decode` plus the data accessors (`event`, `ack_args`, `connect_auth`).
//!
//! Checks: the attachment limit holds; the namespace is well formed; re-encoding a decoded
//! packet and decoding it again gives the same packet (decode is a fixed point of encode).
#![no_main]

use libfuzzer_sys::fuzz_target;
use socketio_hub_protocol::socket::{decode, encode, is_valid_namespace, PacketType};

fuzz_target!(|data: &[u8]| {
    let Some((&limit, text)) = data.split_first() else { return };
    let max_attachments = usize::from(limit % 32);
    let text = String::from_utf8_lossy(text);
    let Ok(packet) = decode(&text, max_attachments) else { return };

    assert!(packet.attachments <= max_attachments);
    if !packet.kind.is_binary() {
        assert_eq!(packet.attachments, 0);
    }
    assert!(is_valid_namespace(packet.nsp), "namespace {:?}", packet.nsp);

    let again = encode(packet.kind, packet.nsp, packet.id, packet.attachments, packet.data);
    assert_eq!(decode(&again, max_attachments).as_ref(), Ok(&packet), "re-encoded as {again:?}");

    match packet.kind {
        PacketType::Event | PacketType::BinaryEvent => {
            if let Ok(event) = packet.event() {
                // The arguments are slices of the input, not copies.
                let data = packet.data.expect("an event has data");
                let range = data.as_ptr() as usize..data.as_ptr() as usize + data.len();
                for arg in &event.args {
                    assert!(range.contains(&(arg.get().as_ptr() as usize)));
                }
            }
        }
        PacketType::Ack | PacketType::BinaryAck => {
            let _ = packet.ack_args();
        }
        PacketType::Connect => {
            let auth = packet.connect_auth();
            if packet.data.is_none() {
                assert_eq!(auth, Ok(None));
            }
        }
        PacketType::Disconnect | PacketType::ConnectError => {}
    }
    // The accessors must refuse, not panic, on the wrong packet type too.
    let _ = packet.event();
    let _ = packet.ack_args();
    let _ = packet.connect_auth();
});
