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

// ---- Raw HTTP and WebSocket over TCP: what the reference engine.io 6.6 server does. ----

/// One HTTP/1.1 request on its own connection; returns the status and the body.
async fn raw_http(addr: SocketAddr, method: &str, target: &str, body: &str) -> (u16, String) {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{method} {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut resp = Vec::new();
    tcp.read_to_end(&mut resp).await.unwrap();
    let resp = String::from_utf8(resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let chunked = head.to_ascii_lowercase().contains("transfer-encoding: chunked");
    (status, if chunked { unchunk(body) } else { body.to_string() })
}

/// Decode a chunked body (the reference server sends its errors that way).
fn unchunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// The server the `raw_` tests talk to: the hub's engine with the echo handler, or the
/// reference engine.io server when `ENGINE_REFERENCE_ADDR` names one
/// (`node e2e/reference/engine-echo.js` prints it), which proves these tests right.
struct Target {
    addr: SocketAddr,
    engine: Option<Arc<Engine>>,
}

async fn target() -> Target {
    match std::env::var("ENGINE_REFERENCE_ADDR") {
        Ok(addr) => Target { addr: addr.parse().expect("ENGINE_REFERENCE_ADDR is host:port"), engine: None },
        Err(_) => {
            let s = echo_server(|_| {}).await;
            Target { addr: s.addr, engine: Some(s.engine) }
        }
    }
}

impl Target {
    /// No session is left (checked on the hub only).
    async fn assert_no_sessions(&self) {
        if let Some(engine) = &self.engine {
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert!(engine.sessions.is_empty(), "every session ended");
        }
    }

    fn target(&self, query: &str) -> String {
        format!("/engine.io/?EIO=4&{query}")
    }

    async fn raw_handshake(&self) -> String {
        let (status, body) = raw_http(self.addr, "GET", &self.target("transport=polling"), "").await;
        assert_eq!(status, 200, "{body}");
        let open: serde_json::Value = serde_json::from_str(body.strip_prefix('0').unwrap()).unwrap();
        open["sid"].as_str().unwrap().to_string()
    }

    async fn poll_get(&self, sid: &str) -> (u16, String) {
        raw_http(self.addr, "GET", &self.target(&format!("transport=polling&sid={sid}")), "").await
    }

    async fn poll_post(&self, sid: &str, body: &str) -> (u16, String) {
        raw_http(self.addr, "POST", &self.target(&format!("transport=polling&sid={sid}")), body).await
    }
}

/// A WebSocket client written out by hand: masked frames in, server frames parsed.
struct RawWs {
    tcp: tokio::net::TcpStream,
    buf: Vec<u8>,
}

impl RawWs {
    /// Send the upgrade request; returns the socket and the response's status line.
    async fn connect(addr: SocketAddr, target: &str) -> (RawWs, String) {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!(
            "GET {target} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        );
        tcp.write_all(req.as_bytes()).await.unwrap();
        let mut ws = RawWs { tcp, buf: Vec::new() };
        let end = loop {
            if let Some(i) = ws.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            assert!(ws.fill().await, "connection closed during the handshake");
        };
        let head = String::from_utf8_lossy(&ws.buf[..end]).into_owned();
        ws.buf.drain(..end);
        let status = head.lines().next().unwrap_or("").to_string();
        (ws, status)
    }

    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        let n = self.tcp.read(&mut chunk).await.unwrap_or(0);
        self.buf.extend_from_slice(&chunk[..n]);
        n > 0
    }

    async fn send_frame(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        let mask = [0x12, 0x34, 0x56, 0x78];
        let mut f = vec![if fin { 0x80 } else { 0 } | opcode];
        assert!(payload.len() < 126);
        f.push(0x80 | payload.len() as u8);
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.tcp.write_all(&f).await.unwrap();
    }

    async fn send_text(&mut self, text: &str) {
        self.send_frame(true, 0x1, text.as_bytes()).await;
    }

    /// The next server frame (opcode, payload), or `None` at EOF.
    async fn recv(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            if self.buf.len() >= 2 {
                assert_eq!(self.buf[1] & 0x80, 0, "server frames are unmasked");
                let (len, at) = match self.buf[1] & 0x7f {
                    126 if self.buf.len() >= 4 => {
                        (u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize, 4)
                    }
                    127 if self.buf.len() >= 10 => {
                        (u64::from_be_bytes(self.buf[2..10].try_into().unwrap()) as usize, 10)
                    }
                    126 | 127 => (usize::MAX, 0),
                    n => (n as usize, 2),
                };
                if len != usize::MAX && self.buf.len() >= at + len {
                    let op = self.buf[0] & 0x0f;
                    let payload = self.buf[at..at + len].to_vec();
                    self.buf.drain(..at + len);
                    return Some((op, payload));
                }
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    /// The next text message, answering Engine.IO pings on the way.
    async fn recv_text(&mut self) -> String {
        loop {
            let (op, payload) = self.recv().await.expect("a frame");
            assert_eq!(op, 0x1, "a text frame, got {op} {payload:?}");
            if payload == b"2" {
                self.send_text("3").await;
                continue;
            }
            return String::from_utf8(payload).unwrap();
        }
    }

    /// Expect a Close frame with `code` (`None`: no payload), answer it as a client does, and
    /// expect the server to end the connection.
    async fn expect_close(&mut self, code: Option<u16>) {
        loop {
            match self.recv().await {
                Some((0x8, payload)) => {
                    let got = (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
                    assert_eq!(got, code, "close payload {payload:?}");
                    let _ = self.tcp.write_all(&[0x88, 0x80, 0, 0, 0, 0]).await;
                    break;
                }
                Some((0x1, _)) => continue, // e.g. the OPEN packet or a ping
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
        let end = tokio::time::timeout(Duration::from_secs(5), self.recv()).await;
        assert_eq!(end, Ok(None), "the server ends the connection after the closing handshake");
    }
}

/// Open a polling session and upgrade it over a hand-written WebSocket.
async fn upgraded(s: &Target) -> (String, RawWs) {
    let sid = s.raw_handshake().await;
    let (mut ws, status) = RawWs::connect(s.addr, &s.target(&format!("transport=websocket&sid={sid}"))).await;
    assert!(status.starts_with("HTTP/1.1 101"), "{status}");
    ws.send_text("2probe").await;
    assert_eq!(ws.recv_text().await, "3probe");
    ws.send_text("5").await;
    (sid, ws)
}

#[tokio::test]
async fn raw_a_cancelled_poll_closes_the_session() {
    let s = target().await;
    let sid = s.raw_handshake().await;
    let mut tcp = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let req =
        format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", s.target(&format!("transport=polling&sid={sid}")));
    tcp.write_all(req.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    drop(tcp);
    // Give the hub the moment it needs to see the connection end (the FIN travels first).
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (status, body) = s.poll_get(&sid).await;
    assert_eq!((status, code(&body)), (400, 1), "{body}");
    s.assert_no_sessions().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_the_heartbeat_deadline_is_exact() {
    let s = target().await;
    let sid = s.raw_handshake().await;
    let opened = std::time::Instant::now();
    let (status, body) = s.poll_get(&sid).await;
    assert_eq!((status, body.as_str()), (200, "2"), "a ping at pingInterval");
    // The client never answers. A poll parked before pingInterval + pingTimeout (500 ms)
    // learns of the close when it happens...
    tokio::time::sleep(Duration::from_millis(450).saturating_sub(opened.elapsed())).await;
    assert_eq!(s.poll_get(&sid).await, (200, "1".into()));
    assert!(opened.elapsed() >= Duration::from_millis(495), "closed at {:?}", opened.elapsed());
    // ...and one just after it finds no session.
    tokio::time::sleep(Duration::from_millis(510).saturating_sub(opened.elapsed())).await;
    let (status, body) = s.poll_get(&sid).await;
    assert_eq!((status, code(&body)), (400, 1), "closed at 500 ms: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_a_message_while_the_pong_is_awaited_restarts_its_timeout_once() {
    let s = target().await;
    let sid = s.raw_handshake().await;
    let opened = std::time::Instant::now();
    assert_eq!(s.poll_get(&sid).await, (200, "2".into()));
    tokio::time::sleep(Duration::from_millis(400).saturating_sub(opened.elapsed())).await;
    // Two messages: the first moves the deadline to ~600 ms, the second does not move it again.
    assert_eq!(s.poll_post(&sid, "4a").await, (200, "ok".into()));
    tokio::time::sleep(Duration::from_millis(450).saturating_sub(opened.elapsed())).await;
    assert_eq!(s.poll_post(&sid, "4b").await, (200, "ok".into()));
    tokio::time::sleep(Duration::from_millis(520).saturating_sub(opened.elapsed())).await;
    assert_eq!(s.poll_get(&sid).await, (200, "4a\x1e4b".into()), "alive after 500 ms");
    tokio::time::sleep(Duration::from_millis(660).saturating_sub(opened.elapsed())).await;
    let (status, body) = s.poll_get(&sid).await;
    assert_eq!((status, code(&body)), (400, 1), "closed by ~600 ms: {body}");
}

#[tokio::test]
async fn raw_a_client_close_answers_the_pending_poll_with_a_noop() {
    let s = target().await;
    let sid = s.raw_handshake().await;
    let pending = tokio::spawn({
        let (addr, target) = (s.addr, s.target(&format!("transport=polling&sid={sid}")));
        async move { raw_http(addr, "GET", &target, "").await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(s.poll_post(&sid, "1").await, (200, "ok".into()));
    assert_eq!(pending.await.unwrap(), (200, "6".into()));
    let (status, body) = s.poll_get(&sid).await;
    assert_eq!((status, code(&body)), (400, 1));
}

#[tokio::test]
async fn raw_a_second_websocket_is_accepted_then_closed_and_the_first_keeps_working() {
    let s = target().await;
    let (sid, mut first) = upgraded(&s).await;
    first.send_text("4one").await;
    assert_eq!(first.recv_text().await, "4one");
    let (mut second, status) =
        RawWs::connect(s.addr, &s.target(&format!("transport=websocket&sid={sid}"))).await;
    assert!(status.starts_with("HTTP/1.1 101"), "the handshake succeeds: {status}");
    second.expect_close(None).await;
    first.send_text("4two").await;
    assert_eq!(first.recv_text().await, "4two");

    // The same while a first WebSocket only probes: the second is closed, the probe goes on.
    let sid = s.raw_handshake().await;
    let target = s.target(&format!("transport=websocket&sid={sid}"));
    let (mut probe, _) = RawWs::connect(s.addr, &target).await;
    let (mut other, status) = RawWs::connect(s.addr, &target).await;
    assert!(status.starts_with("HTTP/1.1 101"), "{status}");
    other.expect_close(None).await;
    probe.send_text("2probe").await;
    assert_eq!(probe.recv_text().await, "3probe");
    probe.send_text("5").await;
    probe.send_text("4three").await;
    assert_eq!(probe.recv_text().await, "4three");
}

#[tokio::test]
async fn raw_close_frames_that_break_rfc6455_fail_with_1002() {
    let s = target().await;
    let target = s.target("transport=websocket");
    let mut bad: Vec<Vec<u8>> = vec![vec![0x03]];
    bad.extend([0u16, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000].map(|c| c.to_be_bytes().to_vec()));
    for payload in bad {
        let (mut ws, _) = RawWs::connect(s.addr, &target).await;
        assert!(ws.recv_text().await.starts_with("0{"));
        ws.send_frame(true, 0x8, &payload).await;
        ws.expect_close(Some(1002)).await;
    }
    // Codes that may be sent are echoed, and the session ends.
    for code in [1000u16, 1001, 1011, 3000, 4999] {
        let (mut ws, _) = RawWs::connect(s.addr, &target).await;
        assert!(ws.recv_text().await.starts_with("0{"));
        ws.send_frame(true, 0x8, &code.to_be_bytes()).await;
        ws.expect_close(Some(code)).await;
    }
    // Invalid UTF-8 in the reason: 1007.
    let (mut ws, _) = RawWs::connect(s.addr, &target).await;
    assert!(ws.recv_text().await.starts_with("0{"));
    ws.send_frame(true, 0x8, &[0x03, 0xe8, 0xff]).await;
    ws.expect_close(Some(1007)).await;
    s.assert_no_sessions().await;
}

#[tokio::test]
async fn raw_websocket_protocol_errors_are_answered_with_their_close_code() {
    let s = target().await;
    let target = s.target("transport=websocket");
    let cases: [(&[u8], u16); 4] = [
        (&[0x81, 0x02, b'4', b'x'], 1002),             // unmasked
        (&[0xC1, 0x80, 0, 0, 0, 0], 1002),             // RSV1 without an extension
        (&[0x83, 0x80, 0, 0, 0, 0], 1002),             // reserved opcode
        (&[0x82, 0xFE, 0x75, 0x30, 0, 0, 0, 0], 1009), // 30,000 bytes > maxPayload, from the header
    ];
    for (bytes, close) in cases {
        let (mut ws, _) = RawWs::connect(s.addr, &target).await;
        assert!(ws.recv_text().await.starts_with("0{"));
        ws.tcp.write_all(bytes).await.unwrap();
        ws.expect_close(Some(close)).await;
    }
    // A ping in the middle of a fragmented message is answered at once.
    let (mut ws, _) = RawWs::connect(s.addr, &target).await;
    assert!(ws.recv_text().await.starts_with("0{"));
    ws.send_frame(false, 0x1, b"4fr").await;
    ws.send_frame(true, 0x9, b"hb").await;
    assert_eq!(ws.recv().await, Some((0xA, b"hb".to_vec())));
    ws.send_frame(true, 0x0, b"ag").await;
    assert_eq!(ws.recv_text().await, "4frag");
}

#[test]
fn engine_echo_help_prints_each_default_once() {
    use clap::CommandFactory;
    let help = socketio_hub::engine::echo::EchoArgs::command().render_help().to_string();
    for line in help.lines().filter(|l| l.trim_start().starts_with("--")) {
        let defaults = line.matches("[default:").count();
        assert!(defaults <= 1, "{line}");
    }
    assert_eq!(help.matches("[default:").count(), 5, "{help}");
}
