//! The Engine.IO layer on its own, against the echo handler, over real TCP: polling,
//! WebSocket, upgrade, heartbeat, limits and the spec's HTTP errors.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use socketio_hub::engine::{echo::Echo, spawn_sweeper, Engine, EngineSettings};
use socketio_hub::ids::NodeTag;
use socketio_hub::metrics::Metrics;
use socketio_hub_config::{CorsConfig, EngineConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use warp::Filter;

struct Echoer {
    addr: SocketAddr,
    engine: Arc<Engine>,
}

async fn echo_server(tweak: impl FnOnce(&mut EngineSettings)) -> Echoer {
    let mut settings = EngineSettings {
        path: "/engine.io/".into(),
        engine: EngineConfig {
            ping_interval_ms: 300,
            ping_timeout_ms: 200,
            max_payload: 10_000,
            ..EngineConfig::default()
        },
        cors: CorsConfig::default(),
        attach_timeout_ms: None,
    };
    tweak(&mut settings);
    let engine = Engine::new(settings, NodeTag::derive("test", 1), Arc::new(Metrics::new()));
    Echo::install(&engine);
    let listener = socketio_hub::transport::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    spawn_sweeper(engine.clone());
    let other = warp::any().and_then(|| async { Err::<String, _>(warp::reject::not_found()) });
    tokio::spawn(socketio_hub::transport::serve(
        engine.clone(),
        listener,
        other.map(warp::Reply::into_response).boxed(),
    ));
    Echoer { addr, engine }
}

impl Echoer {
    fn url(&self, query: &str) -> String {
        format!("http://{}/engine.io/?{query}", self.addr)
    }

    async fn handshake(&self, http: &reqwest::Client) -> String {
        let body = http.get(self.url("EIO=4&transport=polling")).send().await.unwrap().text().await.unwrap();
        assert!(body.starts_with("0{"), "{body}");
        let open: serde_json::Value = serde_json::from_str(&body[1..]).unwrap();
        assert_eq!(open["upgrades"], serde_json::json!(["websocket"]));
        assert_eq!(open["pingInterval"], 300);
        assert_eq!(open["pingTimeout"], 200);
        assert_eq!(open["maxPayload"], 10_000);
        open["sid"].as_str().unwrap().to_string()
    }
}

async fn get(http: &reqwest::Client, url: String) -> (u16, String) {
    let r = http.get(url).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn post(http: &reqwest::Client, url: String, body: &'static str) -> (u16, String) {
    let r = http.post(url).body(body).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn code(body: &str) -> i64 {
    serde_json::from_str::<serde_json::Value>(body).unwrap()["code"].as_i64().unwrap()
}

#[tokio::test]
async fn polling_echoes_text_and_binary() {
    let s = echo_server(|_| {}).await;
    let http = reqwest::Client::new();
    let sid = s.handshake(&http).await;
    let q = format!("EIO=4&transport=polling&sid={sid}");
    assert_eq!(post(&http, s.url(&q), "4hello\x1ebAQIDBA==").await, (200, "ok".into()));
    assert_eq!(get(&http, s.url(&q)).await, (200, "4hello\x1ebAQIDBA==".into()));
}

#[tokio::test]
async fn http_errors_follow_the_spec() {
    let s = echo_server(|st| st.cors.allowed_origins = vec!["https://good.example".into()]).await;
    let http = reqwest::Client::new();
    let (status, body) = get(&http, s.url("EIO=4&transport=carrier-pigeon")).await;
    assert_eq!((status, code(&body)), (400, 0));
    assert!(body.contains("Transport unknown"));
    let (status, body) = get(&http, s.url("EIO=4&transport=polling&sid=AAAAAAAAAAAAAAAAAAAA")).await;
    assert_eq!((status, code(&body)), (400, 1));
    let (status, body) = post(&http, s.url("EIO=4&transport=polling"), "4x").await;
    assert_eq!((status, code(&body)), (400, 2));
    let (status, body) = get(&http, s.url("EIO=4&transport=websocket")).await;
    assert_eq!((status, code(&body)), (400, 3));
    let r = http
        .get(s.url("EIO=4&transport=polling"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(code(&r.text().await.unwrap()), 4);
    let r = http
        .get(s.url("EIO=4&transport=polling"))
        .header("origin", "https://good.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["access-control-allow-origin"], "https://good.example");
    let (status, body) = get(&http, s.url("EIO=3&transport=polling")).await;
    assert_eq!((status, code(&body)), (400, 5));
}

#[tokio::test]
async fn oversized_bodies_and_overlapping_polls_close_the_session() {
    let s = echo_server(|_| {}).await;
    let http = reqwest::Client::new();
    let sid = s.handshake(&http).await;
    let q = format!("EIO=4&transport=polling&sid={sid}");
    let big = "4".repeat(20_000);
    let r = http.post(s.url(&q)).body(big).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 413);
    assert_eq!(code(&get(&http, s.url(&q)).await.1), 1, "the session is gone");

    let sid = s.handshake(&http).await;
    let q = format!("EIO=4&transport=polling&sid={sid}");
    let first = tokio::spawn({
        let (http, url) = (http.clone(), s.url(&q));
        async move { get(&http, url).await }
    });
    // Wait until the first poll is parked before sending the second.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (status, body) = get(&http, s.url(&q)).await;
    assert_eq!((status, code(&body)), (400, 3));
    let (_, body) = first.await.unwrap();
    assert_eq!(body, "1", "the parked poll learns the session closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_pings_and_times_out() {
    let s = echo_server(|_| {}).await;
    let http = reqwest::Client::new();
    let sid = s.handshake(&http).await;
    let q = format!("EIO=4&transport=polling&sid={sid}");
    assert_eq!(get(&http, s.url(&q)).await.1, "2", "a ping after pingInterval");
    post(&http, s.url(&q), "3").await;
    assert_eq!(get(&http, s.url(&q)).await.1, "2", "answered pings keep it alive");
    // No pong this time: the session closes after pingTimeout.
    let (_, body) = get(&http, s.url(&q)).await;
    assert_eq!(body, "1");
    assert!(s.engine.sessions.is_empty());
}

#[tokio::test]
async fn websocket_echoes_and_answers_control_frames() {
    let s = echo_server(|_| {}).await;
    let url = format!("ws://{}/engine.io/?EIO=4&transport=websocket", s.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let open = ws.next().await.unwrap().unwrap().into_text().unwrap();
    assert!(open.starts_with("0{") && open.contains("\"upgrades\":[]"), "{open}");
    ws.send(Message::text("4héllo")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("4héllo"));
    ws.send(Message::binary(vec![0u8, 255, 7])).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::binary(vec![0u8, 255, 7]));
    ws.send(Message::Ping(vec![9u8].into())).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::Pong(vec![9u8].into()));
    // Over maxPayload: the connection is closed.
    ws.send(Message::text(format!("4{}", "x".repeat(20_000)))).await.unwrap();
    let end = ws.next().await;
    assert!(matches!(end, None | Some(Err(_)) | Some(Ok(Message::Close(_)))), "{end:?}");
}

#[tokio::test]
async fn upgrade_moves_the_session_and_keeps_queued_messages() {
    let s = echo_server(|_| {}).await;
    let http = reqwest::Client::new();
    let sid = s.handshake(&http).await;
    let q = format!("EIO=4&transport=polling&sid={sid}");
    let parked = tokio::spawn({
        let (http, url) = (http.clone(), s.url(&q));
        async move { get(&http, url).await }
    });
    tokio::time::sleep(Duration::from_millis(30)).await;
    let url = format!("ws://{}/engine.io/?EIO=4&transport=websocket&sid={sid}", s.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    ws.send(Message::text("2probe")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("3probe"));
    assert_eq!(parked.await.unwrap().1, "6", "the pending poll is released with a noop");
    // Sent over polling during the upgrade: the echo must arrive over the WebSocket.
    post(&http, s.url(&q), "4in-flight").await;
    ws.send(Message::text("5")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("4in-flight"));
    ws.send(Message::text("4after")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("4after"));
    let (status, body) = get(&http, s.url(&q)).await;
    assert_eq!((status, code(&body)), (400, 3), "polling is refused once upgraded");
}

/// Raw TCP: a fragmented message, and invalid UTF-8 in a text frame.
#[tokio::test]
async fn raw_frames_fragmentation_and_invalid_utf8() {
    let s = echo_server(|_| {}).await;
    let mut tcp = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let req = "GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains("\"maxPayload\"") {
        let n = tcp.read(&mut buf).await.unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&got).contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
    let frame = |fin: bool, op: u8, payload: &[u8]| {
        let mut f = vec![(if fin { 0x80 } else { 0 }) | op, 0x80 | payload.len() as u8, 1, 2, 3, 4];
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ [1, 2, 3, 4][i % 4]));
        f
    };
    let mut out = frame(false, 1, b"4hel");
    out.extend(frame(true, 0, b"lo"));
    tcp.write_all(&out).await.unwrap();
    let n = tcp.read(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"\x81\x064hello");
    tcp.write_all(&frame(true, 1, &[b'4', 0xff, 0xfe])).await.unwrap();
    let n = tcp.read(&mut buf).await.unwrap();
    assert!(n == 0 || buf[0] == 0x88, "closed after invalid UTF-8");
}
