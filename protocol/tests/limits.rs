//! Size limits are enforced before the decoder allocates, and decoding borrows.
//!
//! This test binary counts the allocations each thread makes (a global allocator wrapper), so
//! "refused before allocation" is measured rather than assumed. It lives in its own integration
//! test so the counting allocator touches no other test.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use proptest::prelude::*;
use socketio_hub_protocol::engine::{self, decode_payload};
use socketio_hub_protocol::socket::{self, decode};
use socketio_hub_protocol::{EngineError, SocketError};

struct Counting;

thread_local! {
    // `const` initialisation: reading it never allocates, so the allocator cannot recurse.
    static ALLOCATED: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded to the system allocator unchanged; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATED.try_with(|n| n.set(n.get() + layout.size()));
        // SAFETY: the caller upholds `alloc`'s contract, passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATED.try_with(|n| n.set(n.get() + new_size));
        // SAFETY: as for `dealloc`, and `new_size` is the caller's valid request.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The bytes `f` allocated on this thread, with its result.
fn allocated<T>(f: impl FnOnce() -> T) -> (usize, T) {
    let before = ALLOCATED.with(Cell::get);
    let out = f();
    (ALLOCATED.with(Cell::get) - before, out)
}

#[test]
fn oversized_binary_item_is_refused_without_allocating() {
    let body = format!("4hello\x1eb{}", "QUJD".repeat(1 << 20)); // 3 MiB once decoded
    let mut items = decode_payload(&body, 1 << 20);
    let (bytes, first) = allocated(|| items.next());
    assert_eq!(first, Some(Ok(engine::Packet::Message("hello"))));
    assert_eq!(bytes, 0);
    let (bytes, second) = allocated(|| items.next());
    assert_eq!(second, Some(Err(EngineError::TooLarge { size: 3 << 20, max: 1 << 20 })));
    assert_eq!(bytes, 0, "the refused item allocated");
}

#[test]
fn binary_item_at_the_limit_allocates_only_its_bytes() {
    let body = format!("b{}", "QUJD".repeat(1000));
    let (bytes, item) = allocated(|| decode_payload(&body, 3000).next());
    assert!(matches!(item, Some(Ok(engine::Packet::Binary(ref b))) if b.len() == 3000));
    assert!(bytes <= 3000 + 64, "decoding 3000 bytes allocated {bytes}");
}

#[test]
fn too_many_attachments_are_refused_without_allocating() {
    let (bytes, got) = allocated(|| decode("5999999-/admin,1[\"a\"]", 10));
    assert_eq!(got, Err(SocketError::Attachments));
    assert_eq!(bytes, 0);
    let (bytes, got) = allocated(|| decode("51000000000-[]", usize::MAX));
    assert_eq!(got, Err(SocketError::Attachments));
    assert_eq!(bytes, 0);
}

#[test]
fn decoding_a_packet_borrows() {
    let text = format!("2/chat,12[\"message\",\"{}\",{{\"a\":[1,2,3]}}]", "x".repeat(100_000));
    let (bytes, packet) = allocated(|| decode(&text, 10));
    let packet = packet.unwrap();
    assert_eq!(bytes, 0, "decode copied something");
    assert_eq!((packet.nsp, packet.id), ("/chat", Some(12)));
    // The arguments are slices of the input; only the small Vec of references is allocated.
    let (bytes, event) = allocated(|| packet.event());
    let event = event.unwrap();
    assert_eq!(event.args.len(), 2);
    assert!(bytes < 1024, "event() allocated {bytes} bytes");
    let (bytes, text_packet) = allocated(|| engine::decode_text(&text));
    assert!(text_packet.is_ok());
    assert_eq!(bytes, 0);
}

proptest! {
    #[test]
    fn any_attachment_count_over_the_limit_is_refused_without_allocating(max in 0usize..1000, over in 1usize..10_000_000) {
        let n = max + over;
        let text = format!("6{n}-/a,3[{{\"_placeholder\":true,\"num\":0}}]");
        let (bytes, got) = allocated(|| decode(&text, max));
        prop_assert_eq!(got, Err(SocketError::Attachments));
        prop_assert_eq!(bytes, 0);
    }

    #[test]
    fn any_oversized_binary_item_is_refused_without_allocating(max in 0usize..20_000, over in 1usize..2_000) {
        let len = max + over;
        let mut body = Vec::new();
        engine::append_binary_to_payload(&mut body, &vec![0xa5; len]);
        let body = String::from_utf8(body).unwrap();
        let (bytes, got) = allocated(|| decode_payload(&body, max).next());
        prop_assert_eq!(got, Some(Err(EngineError::TooLarge { size: len, max })));
        prop_assert_eq!(bytes, 0);
    }
}

#[test]
fn the_counter_sees_allocations() {
    // A sanity check of the counter itself: an encode allocates, so a zero above means something.
    let (bytes, _) = allocated(|| socket::encode(socket::PacketType::Event, "/", None, 0, Some("[\"a\"]")));
    assert!(bytes > 0);
}
