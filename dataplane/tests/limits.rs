//! The abuse limits end to end (`[limits]`, issue 9 gap 4): a hub started in-process on port 0,
//! raw Engine.IO handshakes over real HTTP, raw Socket.IO clients over real WebSockets, the
//! REST API, and `/metrics` to see each refusal counted.
//!
//! Each test turns on one limit, shows what it refuses (with the message a client sees) and that
//! the rest keeps working. Nothing sleeps except where real time is the subject (the token
//! buckets refill in real time here; their arithmetic is unit-tested with paused time).

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use socketio_hub::auth::AccessKeys;
use socketio_hub::Running;
use socketio_hub_config::{HubConfig, LimitsConfig, PermissionGrant};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const KEY: &str = "limits-test-key-0123456789";
const WAIT: Duration = Duration::from_secs(5);

async fn start_hub(limits: LimitsConfig) -> Running {
    let mut c = HubConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: "127.0.0.1:0".parse().unwrap(),
        demo_page: false,
        limits,
        ..HubConfig::default()
    };
    c.auth.access_keys = vec![KEY.into()];
    c.permissions = vec![PermissionGrant { namespace: "*".into(), join: vec!["*".into()], emit: vec![] }];
    c.validate().expect("valid test configuration");
    socketio_hub::start(c).await.expect("hub starts")
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().timeout(WAIT).build().unwrap()
}

/// A polling handshake (with `headers`): the status and body text.
async fn handshake(addr: SocketAddr, headers: &[(&str, &str)]) -> (u16, String) {
    let mut req = http().get(format!("http://{addr}/socket.io/?EIO=4&transport=polling"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("handshake request");
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// The sid of a successful handshake's OPEN packet.
fn sid_of(open: &str) -> String {
    let v: Value = serde_json::from_str(open.strip_prefix('0').expect("OPEN packet")).unwrap();
    v["sid"].as_str().unwrap().to_string()
}

/// End a polling session from the client side (Engine.IO close packet).
async fn close_session(addr: SocketAddr, sid: &str) {
    let resp = http()
        .post(format!("http://{addr}/socket.io/?EIO=4&transport=polling&sid={sid}"))
        .body("1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

async fn metric(hub: &Running, line_start: &str) -> u64 {
    let text =
        http().get(format!("http://{}/metrics", hub.admin_addr)).send().await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(line_start).map(|v| v.trim().parse::<f64>().unwrap() as u64))
        .unwrap_or(0)
}

fn refusals(limit: &str) -> String {
    format!("socketio_hub_limit_refusals_total{{limit=\"{limit}\"}}")
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A WebSocket client joined to `/`, with its socket id.
async fn ws_client(addr: SocketAddr) -> (Ws, String) {
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr}/socket.io/?EIO=4&transport=websocket"))
            .await
            .expect("WebSocket handshake");
    assert!(next_text(&mut ws).await.starts_with("0{"));
    ws.send(Message::text("40")).await.unwrap();
    let reply = next_text(&mut ws).await;
    let v: Value = serde_json::from_str(reply.strip_prefix("40").expect("CONNECT reply")).unwrap();
    (ws, v["sid"].as_str().unwrap().to_string())
}

/// The next text frame (pings answered), or `None` when the connection ends.
async fn try_text(ws: &mut Ws) -> Option<String> {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.expect("a frame or the end within the deadline") {
            Some(Ok(Message::Text(t))) if t.as_str() == "2" => ws.send(Message::text("3")).await.ok()?,
            Some(Ok(Message::Text(t))) => return Some(t.as_str().to_string()),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => {}
        }
    }
}

async fn next_text(ws: &mut Ws) -> String {
    try_text(ws).await.expect("the connection is open")
}

/// `hub:join` with an ack: the ack's first argument.
async fn hub_join(ws: &mut Ws, id: u32, room: &str) -> Value {
    ws.send(Message::text(format!(r#"42{id}["hub:join","{room}"]"#))).await.unwrap();
    let want = format!("43{id}");
    loop {
        let t = next_text(ws).await;
        if let Some(rest) = t.strip_prefix(&want) {
            return serde_json::from_str::<Value>(rest).unwrap()[0].clone();
        }
    }
}

#[tokio::test]
async fn connections_per_ip_are_capped_and_freed_when_sessions_end() {
    let hub = start_hub(LimitsConfig { connections_per_ip: 2, ..Default::default() }).await;
    let addr = hub.client_addr;
    let (s1, open1) = handshake(addr, &[]).await;
    let (s2, _) = handshake(addr, &[]).await;
    assert_eq!((s1, s2), (200, 200));
    let (status, body) = handshake(addr, &[]).await;
    assert_eq!((status, body.as_str()), (429, "too many connections from this address (limit 2)"));
    // A WebSocket session counts the same: refused at the handshake.
    let err =
        tokio_tungstenite::connect_async(format!("ws://{addr}/socket.io/?EIO=4&transport=websocket")).await;
    match err {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 429),
        other => panic!("expected 429, got {other:?}"),
    }
    // A session that ends frees its slot.
    close_session(addr, &sid_of(&open1)).await;
    assert_eq!(handshake(addr, &[]).await.0, 200);
    assert_eq!(metric(&hub, &refusals("connections_per_ip")).await, 2);
    assert_eq!(metric(&hub, "socketio_hub_limit_tracked_ips").await, 1);
}

#[tokio::test]
async fn the_proxy_header_names_the_client_only_when_configured() {
    let xff = |ip: &'static str| [("x-forwarded-for", ip)];
    // Not configured: the header is ignored, every request is 127.0.0.1.
    let plain = start_hub(LimitsConfig { connections_per_ip: 1, ..Default::default() }).await;
    assert_eq!(handshake(plain.client_addr, &xff("198.51.100.1")).await.0, 200);
    assert_eq!(
        handshake(plain.client_addr, &xff("198.51.100.2")).await.0,
        429,
        "a client cannot pick its IP"
    );

    let proxied = start_hub(LimitsConfig {
        connections_per_ip: 1,
        trusted_proxy_header: Some("X-Forwarded-For".into()),
        ..Default::default()
    })
    .await;
    let addr = proxied.client_addr;
    assert_eq!(handshake(addr, &xff("198.51.100.1")).await.0, 200);
    assert_eq!(handshake(addr, &xff("198.51.100.1")).await.0, 429);
    assert_eq!(handshake(addr, &xff("198.51.100.2")).await.0, 200, "another client behind the proxy");
    // The rightmost entry is the one the trusted proxy appended; what the client wrote is left of it.
    assert_eq!(handshake(addr, &xff("203.0.113.9, 198.51.100.2")).await.0, 429);
    assert_eq!(handshake(addr, &xff("198.51.100.2, 203.0.113.9")).await.0, 200);
}

#[tokio::test]
async fn handshakes_per_second_per_ip_are_rate_limited() {
    // 1/s (a burst of one), so that even a loaded machine makes the second request within the
    // second; the bucket's arithmetic at other rates is unit-tested with paused time.
    let hub = start_hub(LimitsConfig { handshakes_per_second_per_ip: 1, ..Default::default() }).await;
    let addr = hub.client_addr;
    assert_eq!(handshake(addr, &[]).await.0, 200);
    let (status, body) = handshake(addr, &[]).await;
    assert_eq!(
        (status, body.as_str()),
        (429, "too many new connections per second from this address (limit 1/s)")
    );
    assert_eq!(metric(&hub, &refusals("handshakes_per_ip")).await, 1);
    // The bucket refills at 1/s.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(handshake(addr, &[]).await.0, 200);
}

#[tokio::test]
async fn a_flooding_connection_is_closed_and_the_others_keep_working() {
    let hub = start_hub(LimitsConfig { packets_per_second: 20, ..Default::default() }).await;
    let addr = hub.client_addr;
    let (mut calm, _) = ws_client(addr).await;
    let (mut flood, _) = ws_client(addr).await;
    // A burst of twice the rate passes (the CONNECT was one packet already)...
    for i in 0..38 {
        flood.send(Message::text(format!(r#"42["spam",{i}]"#))).await.unwrap();
    }
    // ...and past it the hub closes the connection.
    for i in 0..50 {
        if flood.send(Message::text(format!(r#"42["spam",{i}]"#))).await.is_err() {
            break;
        }
    }
    while try_text(&mut flood).await.is_some() {}
    assert_eq!(metric(&hub, "socketio_hub_sessions_closed_total{reason=\"rate_limited\"}").await, 1);
    assert!(metric(&hub, &refusals("inbound_rate")).await >= 1);
    // The calm client is untouched.
    assert_eq!(hub_join(&mut calm, 1, "still-here").await, json!({ "ok": true }));
}

#[tokio::test]
async fn inbound_bytes_per_second_are_limited_too() {
    let hub = start_hub(LimitsConfig { bytes_per_second: 10_000, ..Default::default() }).await;
    let (mut ws, _) = ws_client(hub.client_addr).await;
    let big = "x".repeat(4_000);
    for _ in 0..20 {
        if ws.send(Message::text(format!(r#"42["blob","{big}"]"#))).await.is_err() {
            break;
        }
    }
    while try_text(&mut ws).await.is_some() {}
    assert_eq!(metric(&hub, "socketio_hub_sessions_closed_total{reason=\"rate_limited\"}").await, 1);
}

#[tokio::test]
async fn rooms_per_socket_refuse_joins_from_clients_and_rest() {
    let hub = start_hub(LimitsConfig { rooms_per_socket: 2, ..Default::default() }).await;
    let (mut ws, id) = ws_client(hub.client_addr).await;
    assert_eq!(hub_join(&mut ws, 1, "a").await, json!({ "ok": true }));
    assert_eq!(hub_join(&mut ws, 2, "b").await, json!({ "ok": true }));
    assert_eq!(hub_join(&mut ws, 3, "a").await, json!({ "ok": true }), "re-joining is not a new room");
    assert_eq!(
        hub_join(&mut ws, 4, "c").await,
        json!({ "ok": false, "error": "room limit reached (2 rooms per socket)" })
    );

    // The REST API's join goes through the same check.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let token = AccessKeys::from_keys(vec![KEY.into()])
        .mint(json!({ "sub": "app", "exp": now + 60 }).as_object().unwrap());
    let url = |p: &str| format!("http://{}/api/v1/{p}", hub.client_addr);
    // A second socket with room to spare, selected together with the full one: it joins, the
    // full one is refused, and the answer says which (and `matched` counts only the joined).
    let (_ws2, id2) = ws_client(hub.client_addr).await;
    let join = |body: Value| {
        let (req, token) = (http().post(url("sockets/join")), token.clone());
        async move {
            let r = req.bearer_auth(&token).json(&body).send().await.unwrap();
            assert!(r.status().is_success(), "{}", r.status());
            r.json::<Value>().await.unwrap()
        }
    };
    assert_eq!(
        join(json!({ "sockets": [id, id2], "join": ["d"] })).await,
        json!({
            "matched": 1,
            "refused": { "sockets": [id], "limit": 2, "error": "room limit reached (2 rooms per socket)" },
        })
    );
    assert_eq!(join(json!({ "sockets": [id2], "join": ["e"] })).await, json!({ "matched": 1 }), "no refusal");
    let rooms: Value =
        http().get(url("rooms")).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    let names: Vec<&str> =
        rooms["rooms"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["a", "b", "d", "e"], "{rooms}");
    let fetched: Value = http()
        .post(url("sockets/fetch"))
        .bearer_auth(&token)
        .json(&json!({ "sockets": [id] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(fetched["sockets"][0]["rooms"], json!([id, "a", "b"]), "the refused socket is as it was");
    assert_eq!(metric(&hub, &refusals("rooms_per_socket")).await, 2);
}

#[tokio::test]
async fn namespaces_per_connection_get_connect_error() {
    let hub = start_hub(LimitsConfig { namespaces_per_connection: 2, ..Default::default() }).await;
    let (mut ws, _) = ws_client(hub.client_addr).await;
    ws.send(Message::text("40/a,")).await.unwrap();
    assert!(next_text(&mut ws).await.starts_with("40/a,{"));
    ws.send(Message::text("40/b,")).await.unwrap();
    let refused = next_text(&mut ws).await;
    let data: Value = serde_json::from_str(refused.strip_prefix("44/b,").expect("CONNECT_ERROR")).unwrap();
    assert_eq!(
        data,
        json!({ "message": "namespace limit reached (2 namespaces per connection)", "data": { "reason": "namespaces_per_connection" } })
    );
    // Leaving one makes room for another.
    ws.send(Message::text("41/a,")).await.unwrap();
    ws.send(Message::text("40/b,")).await.unwrap();
    assert!(next_text(&mut ws).await.starts_with("40/b,{"));
    assert_eq!(metric(&hub, &refusals("namespaces_per_connection")).await, 1);
    assert_eq!(metric(&hub, "socketio_hub_connects_rejected_total{reason=\"limit\"}").await, 1);
}

#[tokio::test]
async fn a_node_serves_at_most_limits_namespaces_from_clients_and_rest() {
    let hub = start_hub(LimitsConfig { namespaces: 3, ..Default::default() }).await;
    // `/` and two more fit (the Admin UI's namespace, when on, does not count).
    let (mut ws, _) = ws_client(hub.client_addr).await;
    for ns in ["/a", "/b"] {
        ws.send(Message::text(format!("40{ns},"))).await.unwrap();
        assert!(next_text(&mut ws).await.starts_with(&format!("40{ns},{{")), "{ns} is served");
    }
    ws.send(Message::text("40/c,")).await.unwrap();
    let refused = next_text(&mut ws).await;
    let data: Value = serde_json::from_str(refused.strip_prefix("44/c,").expect("CONNECT_ERROR")).unwrap();
    assert_eq!(
        data,
        json!({ "message": "this hub serves its maximum of 3 namespaces", "data": { "reason": "namespaces" } })
    );
    // Namespaces it serves keep working, for this connection and new ones.
    ws.send(Message::text("41/a,")).await.unwrap();
    ws.send(Message::text("40/a,")).await.unwrap();
    assert!(next_text(&mut ws).await.starts_with("40/a,{"));
    let (mut other, _) = ws_client(hub.client_addr).await;
    other.send(Message::text("40/b,")).await.unwrap();
    assert!(next_text(&mut other).await.starts_with("40/b,{"));
    assert!(metric(&hub, &refusals("namespaces")).await >= 1);
    assert_eq!(hub.hub.namespaces.iter().filter(|n| !n.internal).count(), 3);
}
