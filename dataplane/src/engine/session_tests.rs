use std::future::poll_fn;
use std::net::SocketAddr;

use super::*;
use crate::engine::heartbeat::Beat;
use crate::ids::NodeTag;

fn conn(max_frames: usize) -> Conn {
    let hs = Arc::new(ConnHandshake {
        headers: HashMap::new(),
        query: HashMap::new(),
        address: SocketAddr::from(([127, 0, 0, 1], 1)),
        time: String::new(),
        issued: 0,
        url: "/".into(),
    });
    let limits = QueueLimits { max_frames, max_bytes: 1 << 20 };
    Conn::new(Sid::new(NodeTag(1)), hs, TransportKind::Websocket, limits, 0, 100)
}

#[tokio::test]
async fn queue_is_bounded_and_drains_in_order() {
    let c = conn(3);
    let f = |s: &str| Frame::text(s.as_bytes());
    assert_eq!(c.push(&[f("4a"), f("4b")], Delivery::Reliable), Ok(true));
    assert_eq!(c.push(&[f("4c"), f("4d")], Delivery::Reliable), Err(CloseReason::SlowClient));
    // A volatile frame is dropped while others are still queued.
    assert_eq!(c.push(&[f("4v")], Delivery::Volatile), Ok(false));
    let Drained::Frames(frames) = poll_fn(|cx| c.poll_drain(cx, false)).await else { panic!() };
    assert_eq!(frames, [f("4a"), f("4b")]);
    // Now the transport is idle: a volatile frame goes through.
    assert_eq!(c.push(&[f("4v")], Delivery::Volatile), Ok(true));
    let Drained::Frames(frames) = poll_fn(|cx| c.poll_drain(cx, false)).await else { panic!() };
    let mut rest = frames;
    rest.push_back(f("4w"));
    c.unshift(rest);
    let Drained::Frames(frames) = poll_fn(|cx| c.poll_drain(cx, false)).await else { panic!() };
    assert_eq!(frames, [f("4v"), f("4w")]);
}

#[test]
fn closes_once() {
    let c = conn(8);
    assert!(c.mark_closed(CloseReason::PingTimeout));
    assert!(!c.mark_closed(CloseReason::TransportClose));
    assert_eq!(c.closed(), Some(CloseReason::PingTimeout));
    assert_eq!(c.push(&[Frame::text(b"4x")], Delivery::Reliable), Ok(false));
}

#[test]
fn heartbeat_pings_then_times_out() {
    let c = conn(8);
    assert_eq!(c.beat(50, 40, None), Beat::Nothing);
    assert_eq!(c.beat(100, 40, None), Beat::SendPing);
    assert_eq!(c.beat(120, 40, None), Beat::Nothing);
    c.on_pong(130, 100);
    assert_eq!(c.beat(200, 40, None), Beat::Nothing);
    assert_eq!(c.beat(230, 40, None), Beat::SendPing);
    assert_eq!(c.beat(270, 40, None), Beat::Close(CloseReason::PingTimeout));
    assert_eq!(conn(8).beat(10, 40, Some(5)), Beat::Close(CloseReason::ConnectTimeout));
}

#[test]
fn a_late_beat_does_not_move_the_pong_deadline() {
    let c = conn(8);
    // The ping was due at 100; sent at 130, the pong is still owed by 140.
    assert_eq!(c.beat(130, 40, None), Beat::SendPing);
    assert_eq!(c.beat(139, 40, None), Beat::Nothing);
    assert_eq!(c.beat(140, 40, None), Beat::Close(CloseReason::PingTimeout));
    // Unsent and overdue: the same deadline.
    assert_eq!(conn(8).overdue(140, 40, None), Some(CloseReason::PingTimeout));
    assert_eq!(conn(8).overdue(139, 40, None), None);
}

#[test]
fn one_websocket_at_a_time_may_claim_the_upgrade() {
    let c = conn(8);
    c.finish_upgrade();
    assert!(!c.claim_upgrade(), "already on WebSocket");
    let hs = c.handshake.clone();
    let limits = QueueLimits { max_frames: 8, max_bytes: 1 << 20 };
    let p = Conn::new(Sid::new(NodeTag(1)), hs, TransportKind::Polling, limits, 0, 100);
    assert!(!p.begin_upgrade(), "a probe needs the claim");
    assert!(p.claim_upgrade());
    assert!(!p.claim_upgrade(), "a second WebSocket is refused");
    assert!(p.begin_upgrade());
    p.abort_upgrade();
    assert!(p.claim_upgrade(), "the claim is released when the probe ends");
}
