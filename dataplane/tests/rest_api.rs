//! The REST API end to end: a hub started in-process on port 0, raw Engine.IO/Socket.IO clients
//! over WebSocket, and every `/api/v1` route called over real HTTP.
//!
//! Nothing sleeps: a client that must *not* receive something is checked with a barrier (a
//! later packet it must receive next), and every read has a deadline so a missing packet fails
//! the test instead of hanging it.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use socketio_hub::auth::AccessKeys;
use socketio_hub::Running;
use socketio_hub_config::{ClientAuth, HubConfig, PermissionGrant};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const KEY: &str = "rest-api-test-key-0123456789";
const WAIT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------- the hub and the REST caller

struct TestHub {
    running: Running,
    http: reqwest::Client,
}

async fn start_hub(tweak: impl FnOnce(&mut HubConfig)) -> TestHub {
    let mut c = HubConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: "127.0.0.1:0".parse().unwrap(),
        demo_page: false,
        ..HubConfig::default()
    };
    c.auth.access_keys = vec![KEY.into()];
    tweak(&mut c);
    c.validate().expect("valid test configuration");
    let running = socketio_hub::start(c).await.expect("hub starts");
    let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    TestHub { running, http }
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// An application's REST token: signed with the access key, expiring in 5 minutes.
fn app_token() -> String {
    AccessKeys::from_keys(vec![KEY.into()])
        .mint(json!({ "sub": "test-app", "exp": now() + 300 }).as_object().unwrap())
}

/// A REST answer: status and JSON body.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: Value,
}

impl TestHub {
    fn addr(&self) -> SocketAddr {
        self.running.client_addr
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}/api/v1/{path}", self.addr())
    }

    /// Call with the application's token; `body` is sent as JSON.
    async fn api(&self, method: &str, path: &str, body: Option<Value>) -> Answer {
        let bearer = format!("Bearer {}", app_token());
        self.raw(method, path, body.map(|b| b.to_string()), Some(&bearer)).await
    }

    async fn post(&self, path: &str, body: Value) -> Answer {
        self.api("POST", path, Some(body)).await
    }

    async fn get(&self, path: &str) -> Answer {
        self.api("GET", path, None).await
    }

    /// Call with any body text and `Authorization` header.
    async fn raw(&self, method: &str, path: &str, body: Option<String>, auth: Option<&str>) -> Answer {
        let mut req = self.http.request(method.parse().unwrap(), self.url(path));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        let resp = req.send().await.expect("REST request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer { status, body }
    }

    async fn metrics(&self) -> String {
        let url = format!("http://{}/metrics", self.running.admin_addr);
        self.http.get(url).send().await.unwrap().text().await.unwrap()
    }

    async fn client(&self) -> Client {
        Client::connect(self.addr(), "", "40").await.expect("connects")
    }

    /// A client of the main namespace, joined to `rooms` through the REST API.
    async fn client_in(&self, rooms: &[&str]) -> Client {
        let c = self.client().await;
        if !rooms.is_empty() {
            let r = self.post("sockets/join", json!({ "sockets": [c.sid], "join": rooms })).await;
            assert_eq!((r.status, &r.body), (200, &json!({ "matched": 1 })));
        }
        c
    }
}

fn error_of(a: &Answer) -> &str {
    a.body["error"].as_str().unwrap_or_else(|| panic!("no error message in {a:?}"))
}

// ---------------------------------------------------------------- a raw Socket.IO client

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

#[derive(Debug, Clone, PartialEq)]
enum Frame {
    Text(String),
    Binary(Vec<u8>),
}

struct Client {
    ws: Ws,
    /// The socket id of the first namespace joined.
    sid: String,
    held: VecDeque<Frame>,
    next_ack: u64,
}

impl Client {
    /// Open a WebSocket session (`query` is appended to the Engine.IO query), send `connect`
    /// (`40`, `40/chat,`, `40{"token":…}`) and wait for the CONNECT reply. `Err` carries a
    /// CONNECT_ERROR packet.
    async fn connect(addr: SocketAddr, query: &str, connect: &str) -> Result<Client, String> {
        let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket{query}");
        let (ws, _) = tokio_tungstenite::connect_async(url).await.expect("WebSocket handshake");
        let mut c = Client { ws, sid: String::new(), held: VecDeque::new(), next_ack: 1 };
        let open = c.text().await;
        assert!(open.starts_with("0{"), "OPEN packet expected, got {open}");
        c.send(connect).await;
        let reply = c.text().await;
        // `40/chat,…` is answered with `40/chat,{…}`, `40…` with `40{…}`.
        let ok_prefix = match connect.strip_prefix("40/") {
            Some(rest) => format!("40/{},", rest.split(',').next().unwrap_or_default()),
            None => "40".to_string(),
        };
        match reply.strip_prefix(&ok_prefix) {
            Some(data) if data.starts_with('{') => {
                let v: Value = serde_json::from_str(data).unwrap();
                c.sid = v["sid"].as_str().expect("sid").to_string();
                Ok(c)
            }
            _ => Err(reply),
        }
    }

    async fn send(&mut self, text: &str) {
        self.ws.send(Message::text(text.to_string())).await.expect("send");
    }

    /// The next frame (pings answered), within `WAIT`.
    async fn frame(&mut self) -> Frame {
        if let Some(f) = self.held.pop_front() {
            return f;
        }
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a frame within the deadline")
                .expect("the connection is open")
                .expect("a WebSocket frame");
            match msg {
                Message::Text(t) if t.as_str() == "2" => self.send("3").await,
                Message::Text(t) => return Frame::Text(t.as_str().to_string()),
                Message::Binary(b) => return Frame::Binary(b.to_vec()),
                Message::Close(_) => panic!("connection closed while a frame was expected"),
                _ => {}
            }
        }
    }

    async fn text(&mut self) -> String {
        match self.frame().await {
            Frame::Text(t) => t,
            other => panic!("text frame expected, got {other:?}"),
        }
    }

    async fn binary(&mut self) -> Vec<u8> {
        match self.frame().await {
            Frame::Binary(b) => b,
            other => panic!("binary frame expected, got {other:?}"),
        }
    }

    /// Send an event with an ack (`args` is the JSON array including the event name) and wait
    /// for the ack, holding back whatever else arrives meanwhile.
    async fn call(&mut self, args: Value) -> Value {
        let id = self.next_ack;
        self.next_ack += 1;
        self.send(&format!("42{id}{args}")).await;
        let want = format!("43{id}");
        let mut other = Vec::new();
        let reply = loop {
            match self.frame().await {
                Frame::Text(t) if t.starts_with(&want) && t[want.len()..].starts_with('[') => break t,
                f => other.push(f),
            }
        };
        self.held.extend(other);
        serde_json::from_str(&reply[want.len()..]).unwrap()
    }

    /// The next event packet of the main namespace: its ack id (if any) and its array.
    async fn event(&mut self) -> (Option<u64>, Value) {
        let t = self.text().await;
        let rest = t.strip_prefix("42").unwrap_or_else(|| panic!("event expected, got {t}"));
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let id = (digits > 0).then(|| rest[..digits].parse().unwrap());
        (id, serde_json::from_str(&rest[digits..]).unwrap())
    }

    /// Wait for the server to end the connection; returns the text frames seen before.
    async fn closed(&mut self) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            match tokio::time::timeout(WAIT, self.ws.next()).await.expect("the connection closes") {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return seen,
                Some(Ok(Message::Text(t))) => seen.push(t.as_str().to_string()),
                Some(Ok(_)) => {}
            }
        }
    }
}

// ---------------------------------------------------------------- authentication

#[tokio::test]
async fn missing_or_bad_credentials_get_401_saying_why() {
    let hub = start_hub(|_| {}).await;
    let keys = AccessKeys::from_keys(vec![KEY.into()]);
    let other = AccessKeys::from_keys(vec!["some-other-key-0123456789".into()]);
    let mint = |k: &AccessKeys, claims: Value| k.mint(claims.as_object().unwrap());
    let body = Some(json!({ "event": "e" }).to_string());
    let cases: Vec<(Option<String>, &str)> = vec![
        (None, "missing Authorization header"),
        (Some("Basic dXNlcjpwYXNz".into()), "must be \"Bearer <JWT>\""),
        (Some("Bearer not-a-jwt".into()), "token is malformed"),
        (Some(format!("Bearer {}", mint(&other, json!({ "exp": now() + 60 })))), "signature is invalid"),
        (Some(format!("Bearer {}", mint(&keys, json!({ "exp": now() - 60 })))), "token expired"),
        (Some(format!("Bearer {}", mint(&keys, json!({ "sub": "x" })))), "no exp claim"),
        (
            Some(format!(
                "Bearer {}",
                mint(&keys, json!({ "exp": now() + 60, "aud": "socketio-hub:client" }))
            )),
            "client token",
        ),
    ];
    for (auth, want) in cases {
        let a = hub.raw("POST", "emit", body.clone(), auth.as_deref()).await;
        assert_eq!(a.status, 401, "{auth:?}: {a:?}");
        assert!(error_of(&a).contains(want), "{auth:?}: {:?} should mention {want:?}", a.body);
    }
    // Credentials are checked before the body is even read.
    let a = hub.raw("POST", "emit", Some("{oops".into()), None).await;
    assert_eq!(a.status, 401);
    // A token signed with the secondary key works too (key rotation).
    let rotated =
        start_hub(|c| c.auth.access_keys = vec!["new-primary-key-0123456789".into(), KEY.into()]).await;
    let a = rotated.post("emit", json!({ "event": "e" })).await;
    assert_eq!((a.status, &a.body), (202, &json!({ "delivered": 0 })));
}

// ---------------------------------------------------------------- bad requests

#[tokio::test]
async fn malformed_requests_get_4xx_naming_the_problem() {
    let hub = start_hub(|c| c.socketio.namespaces = vec!["/".into(), "/chat".into()]).await;
    let bearer = format!("Bearer {}", app_token());
    let raw = |body: &str| hub.raw("POST", "emit", Some(body.to_string()), Some(&bearer));

    let a = raw("{\"event\": oops").await;
    assert_eq!(a.status, 400);
    assert!(error_of(&a).starts_with("the request body is not JSON"), "{a:?}");
    let a = raw("[1,2]").await;
    assert_eq!((a.status, error_of(&a)), (400, "the request body must be a JSON object, not an array"));
    let a = raw("").await;
    assert_eq!((a.status, error_of(&a)), (400, "the request body is empty; send a JSON object"));

    let cases = [
        (json!({ "args": [] }), "event: is required"),
        (json!({ "event": "connect" }), "event: \"connect\" is a reserved Socket.IO event name"),
        (json!({ "event": "hub:join" }), "event: \"hub:join\" is reserved: hub: events are client commands"),
        (
            json!({ "event": "e", "rooms": "lobby" }),
            "rooms: invalid type: string \"lobby\", expected a sequence",
        ),
        (json!({ "event": "e", "sockets": ["nope"] }), "sockets[0]: \"nope\" is not a socket id"),
        (json!({ "event": "e", "args": [{ "_binary": "***" }] }), "args: invalid base64 in a _binary value"),
        (json!({ "event": "e", "ack": { "timeoutMs": 0 } }), "ack.timeoutMs: must be between 1 and 300000"),
        (json!({ "event": "e", "namespace": "chat" }), "namespace: \"chat\" is not a namespace"),
    ];
    for (body, want) in cases {
        let a = hub.post("emit", body.clone()).await;
        assert_eq!(a.status, 400, "{body}: {a:?}");
        assert!(error_of(&a).starts_with(want), "{body}: {:?} should start with {want:?}", a.body);
    }
    let a = hub.post("emit", json!({ "event": "e", "exceptRoom": ["x"] })).await;
    assert_eq!(a.status, 400);
    assert!(error_of(&a)
        .starts_with("unknown field \"exceptRoom\"; expected one of: namespace, rooms, exceptRooms"));
    let a = hub.post("sockets/join", json!({ "rooms": ["a"], "join": ["AAAAbbbbccccddddeeee"] })).await;
    assert_eq!(a.status, 400);
    assert!(error_of(&a).contains("must not look like a socket id"), "{a:?}");

    // Namespaces the hub does not serve are 404; served but empty ones select nothing.
    let a = hub.post("emit", json!({ "namespace": "/nope", "event": "e" })).await;
    assert_eq!(
        (a.status, error_of(&a)),
        (404, "namespace \"/nope\" is not served by this hub (see socketio.namespaces)")
    );
    assert_eq!(hub.get("rooms?namespace=/nope").await.status, 404);
    let a = hub.post("sockets/fetch", json!({ "namespace": "/chat" })).await;
    assert_eq!((a.status, &a.body), (200, &json!({ "sockets": [] })));

    // Routes and methods.
    let a = hub.get("emits").await;
    assert_eq!((a.status, error_of(&a)), (404, "no route GET /api/v1/emits"));
    let a = hub.get("emit").await;
    assert_eq!((a.status, error_of(&a)), (405, "GET is not allowed on /api/v1/emit; use POST"));
    let a = hub.get("rooms?namespace=/&limit=3").await;
    assert_eq!((a.status, error_of(&a)), (400, "unknown field \"limit\"; expected one of: namespace"));

    // Bodies over 1 MiB.
    let big = json!({ "event": "e", "args": ["x".repeat(1 << 20)] }).to_string();
    let a = hub.raw("POST", "emit", Some(big), Some(&bearer)).await;
    assert_eq!((a.status, error_of(&a)), (413, "the request body is larger than 1048576 bytes"));
}

// ---------------------------------------------------------------- emit

#[tokio::test]
async fn emit_reaches_rooms_sockets_and_namespaces_once() {
    let hub = start_hub(|_| {}).await;
    let mut a = hub.client_in(&["all"]).await;
    let mut b = hub.client_in(&["all", "muted"]).await;
    let mut other = Client::connect(hub.addr(), "", "40/other,").await.unwrap();

    let emit = |body: Value| hub.post("emit", body);
    let a1 = emit(json!({ "namespace": "/", "rooms": ["all"], "exceptRooms": ["muted"], "event": "m", "args": ["except"] })).await;
    assert_eq!((a1.status, &a1.body), (202, &json!({ "delivered": 1 })));
    let a2 = emit(json!({ "sockets": [b.sid], "event": "m", "args": ["to-b", { "n": 1 }] })).await;
    assert_eq!(a2.body, json!({ "delivered": 1 }));
    // b is in both rooms and gets one copy.
    let a3 = emit(json!({ "rooms": ["all", "muted"], "event": "m", "args": ["both-rooms"] })).await;
    assert_eq!(a3.body, json!({ "delivered": 2 }));
    let a4 = emit(json!({ "event": "m", "args": ["everyone"] })).await;
    assert_eq!(a4.body, json!({ "delivered": 2 }), "a namespace-wide emit stays in its namespace");
    let a5 = emit(json!({ "namespace": "/other", "event": "m", "args": ["other-ns"] })).await;
    assert_eq!(a5.body, json!({ "delivered": 1 }));

    assert_eq!(a.text().await, r#"42["m","except"]"#);
    assert_eq!(a.text().await, r#"42["m","both-rooms"]"#);
    assert_eq!(a.text().await, r#"42["m","everyone"]"#);
    assert_eq!(b.text().await, r#"42["m","to-b",{"n":1}]"#);
    assert_eq!(b.text().await, r#"42["m","both-rooms"]"#);
    assert_eq!(b.text().await, r#"42["m","everyone"]"#);
    assert_eq!(other.text().await, r#"42/other,["m","other-ns"]"#);

    // A namespace nobody joined (but the hub serves) reaches nobody.
    let a6 = emit(json!({ "namespace": "/empty", "event": "m" })).await;
    assert_eq!((a6.status, &a6.body), (202, &json!({ "delivered": 0 })));
}

#[tokio::test]
async fn binary_args_arrive_as_attachments() {
    let hub = start_hub(|_| {}).await;
    let mut c = hub.client_in(&["bin"]).await;
    let data = base64::engine::general_purpose::STANDARD.encode(b"hello");
    let a = hub
        .post("emit", json!({ "rooms": ["bin"], "event": "file", "args": [{ "name": "a", "data": { "_binary": data } }] }))
        .await;
    assert_eq!((a.status, &a.body), (202, &json!({ "delivered": 1 })));
    let header = c.text().await;
    let array = header.strip_prefix("451-").unwrap_or_else(|| panic!("binary event expected, got {header}"));
    let array: Value = serde_json::from_str(array).unwrap();
    assert_eq!(array, json!(["file", { "name": "a", "data": { "_placeholder": true, "num": 0 } }]));
    assert_eq!(c.binary().await, b"hello");
}

#[tokio::test]
async fn volatile_emit_reaches_a_ready_client() {
    let hub = start_hub(|_| {}).await;
    let mut c = hub.client_in(&["vol"]).await;
    let a = hub.post("emit", json!({ "rooms": ["vol"], "event": "v", "args": [1], "volatile": true })).await;
    assert_eq!((a.status, &a.body), (202, &json!({ "delivered": 1 })));
    assert_eq!(c.text().await, r#"42["v",1]"#);
}

#[tokio::test]
async fn emit_with_ack_collects_answers_and_timeouts() {
    let hub = start_hub(|c| {
        c.permissions = vec![PermissionGrant { namespace: "/".into(), join: vec!["*".into()], emit: vec![] }]
    })
    .await;
    let mut answers = hub.client_in(&["ackers"]).await;
    let mut silent = hub.client_in(&["ackers"]).await;

    let started = Instant::now();
    let body = json!({ "rooms": ["ackers"], "event": "q", "args": [5], "ack": { "timeoutMs": 500 } });
    let request = hub.post("emit", body);
    let clients = async {
        let (id, args) = answers.event().await;
        assert_eq!(args, json!(["q", 5]));
        answers.send(&format!("43{}[\"got\",5]", id.expect("an ack id"))).await;
        let (silent_id, args) = silent.event().await;
        assert_eq!(args, json!(["q", 5]));
        silent_id.unwrap()
    };
    let (a, silent_id) = tokio::join!(request, clients);
    assert!(started.elapsed() >= Duration::from_millis(500), "waited for the silent socket");
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(
        a.body,
        json!({ "responses": [{ "sid": answers.sid, "args": ["got", 5] }], "timedOut": [silent.sid] })
    );

    // The hub forgot the timed-out ack: a late answer is dropped as unexpected.
    let dropped = || hub.running.hub.metrics.events_dropped.with_label_values(&["unexpected_ack"]).get();
    let before = dropped();
    silent.send(&format!("43{silent_id}[\"late\"]")).await;
    // Packets of one connection are handled in order, so once this ack arrives so did the late one.
    assert_eq!(silent.call(json!(["hub:join", "barrier"])).await, json!([{ "ok": true }]));
    assert_eq!(dropped(), before + 1);

    // When everyone answers, the request returns without waiting for the timeout; binary acks
    // come back as {"_binary": base64}.
    let started = Instant::now();
    let body = json!({ "rooms": ["ackers"], "event": "q2", "ack": { "timeoutMs": 60000 } });
    let request = hub.post("emit", body);
    let clients = async {
        let (id, _) = answers.event().await;
        answers.send(&format!("461-{}[{{\"_placeholder\":true,\"num\":0}}]", id.unwrap())).await;
        answers.ws.send(Message::binary(b"hi".to_vec())).await.unwrap();
        let (id, _) = silent.event().await;
        silent.send(&format!("43{}[]", id.unwrap())).await;
    };
    let (a, ()) = tokio::join!(request, clients);
    assert!(started.elapsed() < Duration::from_secs(30), "returned once everyone answered");
    assert_eq!(a.status, 200, "{a:?}");
    let mut responses = a.body["responses"].as_array().unwrap().clone();
    responses.sort_by_key(|r| r["sid"].as_str().unwrap().to_string());
    let mut want = vec![
        json!({ "sid": answers.sid, "args": [{ "_binary": "aGk=" }] }),
        json!({ "sid": silent.sid, "args": [] }),
    ];
    want.sort_by_key(|r| r["sid"].as_str().unwrap().to_string());
    assert_eq!(responses, want);
    assert_eq!(a.body["timedOut"], json!([]));

    // Nobody selected: an immediate, empty answer.
    let a = hub.post("emit", json!({ "rooms": ["nobody"], "event": "q", "ack": {} })).await;
    assert_eq!((a.status, &a.body), (200, &json!({ "responses": [], "timedOut": [] })));
}

// ---------------------------------------------------------------- sockets/*

#[tokio::test]
async fn join_and_leave_by_room_and_by_socket_id() {
    let hub = start_hub(|_| {}).await;
    let mut a = hub.client_in(&["src"]).await;
    let mut b = hub.client().await;
    let _bystander = hub.client().await;

    let r = hub
        .post("sockets/join", json!({ "namespace": "/", "rooms": ["src"], "join": ["dst", "extra"] }))
        .await;
    assert_eq!((r.status, &r.body), (200, &json!({ "matched": 1 })));
    let r = hub.post("sockets/join", json!({ "sockets": [b.sid], "join": ["dst"] })).await;
    assert_eq!(r.body, json!({ "matched": 1 }));
    let rooms = hub.get("rooms").await;
    assert_eq!(
        rooms.body,
        json!({ "rooms": [{ "name": "dst", "size": 2 }, { "name": "extra", "size": 1 }, { "name": "src", "size": 1 }] })
    );
    let r = hub.post("emit", json!({ "rooms": ["dst"], "event": "x", "args": [1] })).await;
    assert_eq!(r.body, json!({ "delivered": 2 }));
    assert_eq!(a.text().await, r#"42["x",1]"#);
    assert_eq!(b.text().await, r#"42["x",1]"#);

    let r = hub.post("sockets/leave", json!({ "sockets": [a.sid], "leave": ["dst"] })).await;
    assert_eq!((r.status, &r.body), (200, &json!({ "matched": 1 })));
    let r = hub.post("emit", json!({ "rooms": ["dst"], "event": "x", "args": [2] })).await;
    assert_eq!(r.body, json!({ "delivered": 1 }));
    assert_eq!(b.text().await, r#"42["x",2]"#);
    // a is no longer in dst: the next thing it receives is the barrier.
    hub.post("emit", json!({ "sockets": [a.sid], "event": "barrier" })).await;
    assert_eq!(a.text().await, r#"42["barrier"]"#);

    let fetched = hub.post("sockets/fetch", json!({ "sockets": [a.sid] })).await;
    assert_eq!(fetched.body["sockets"][0]["rooms"], json!([a.sid, "src", "extra"]));
    // Leaving by room: everyone in "src" leaves "extra"; nothing matches an empty room.
    let r = hub.post("sockets/leave", json!({ "rooms": ["src"], "leave": ["extra", "src"] })).await;
    assert_eq!(r.body, json!({ "matched": 1 }));
    let r = hub.post("sockets/leave", json!({ "rooms": ["src"], "leave": ["src"] })).await;
    assert_eq!(r.body, json!({ "matched": 0 }));
}

#[tokio::test]
async fn disconnect_ends_the_namespace_or_the_whole_connection() {
    let hub = start_hub(|_| {}).await;
    let mut a = hub.client_in(&["kick"]).await;
    let mut b = hub.client().await;

    let r = hub.post("sockets/disconnect", json!({ "rooms": ["kick"], "close": false })).await;
    assert_eq!((r.status, &r.body), (200, &json!({ "matched": 1 })));
    assert_eq!(a.text().await, "41");
    // The connection stays open: it can join another namespace.
    a.send("40/other,").await;
    assert!(a.text().await.starts_with("40/other,{\"sid\":"));
    // b was not selected and is still connected.
    let r = hub.post("emit", json!({ "event": "still-here" })).await;
    assert_eq!(r.body, json!({ "delivered": 1 }));
    assert_eq!(b.text().await, r#"42["still-here"]"#);

    let r = hub.post("sockets/disconnect", json!({ "sockets": [b.sid], "close": true })).await;
    assert_eq!(r.body, json!({ "matched": 1 }));
    let before_close = b.closed().await;
    assert!(before_close.iter().all(|t| t == "41"), "only the DISCONNECT before the close: {before_close:?}");
    let namespaces = hub.get("namespaces").await;
    assert_eq!(
        namespaces.body,
        json!({ "namespaces": [{ "name": "/", "sockets": 0 }, { "name": "/other", "sockets": 1 }] })
    );
}

#[tokio::test]
async fn fetch_returns_ids_rooms_and_handshakes() {
    let hub = start_hub(|_| {}).await;
    let a = Client::connect(hub.addr(), "&who=a", r#"40{"k":"v"}"#).await.unwrap();
    let b = hub.client().await;
    hub.post("sockets/join", json!({ "sockets": [a.sid], "join": ["fetch-me"] })).await;

    let r = hub.post("sockets/fetch", json!({ "namespace": "/", "rooms": ["fetch-me"] })).await;
    assert_eq!(r.status, 200);
    let sockets = r.body["sockets"].as_array().unwrap();
    assert_eq!(sockets.len(), 1);
    let s = &sockets[0];
    assert_eq!(s["id"], a.sid);
    assert_eq!(s["namespace"], "/");
    assert_eq!(s["rooms"], json!([a.sid, "fetch-me"]));
    assert_eq!(s["recovered"], false);
    let hs = &s["handshake"];
    assert_eq!(hs["query"]["who"], "a");
    assert_eq!(hs["query"]["EIO"], "4");
    assert_eq!(hs["auth"], json!({ "k": "v" }));
    assert_eq!(hs["address"], "127.0.0.1");
    assert!(hs["url"].as_str().unwrap().starts_with("/socket.io/?EIO=4"), "{hs}");
    assert!(hs["issued"].as_u64().unwrap() > 0);

    // The whole namespace, minus a room.
    let r = hub.post("sockets/fetch", json!({ "exceptRooms": ["fetch-me"] })).await;
    let ids: Vec<&str> =
        r.body["sockets"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![b.sid.as_str()]);
}

// ---------------------------------------------------------------- rooms and namespaces

#[tokio::test]
async fn rooms_and_namespaces_list_what_exists() {
    let hub = start_hub(|c| c.socketio.namespaces = vec!["/".into(), "/other".into()]).await;
    let _a = hub.client_in(&["counted"]).await;
    let _b = hub.client_in(&["counted", "solo"]).await;
    let _c = Client::connect(hub.addr(), "", "40/other,").await.unwrap();

    let want = json!({ "rooms": [{ "name": "counted", "size": 2 }, { "name": "solo", "size": 1 }] });
    for path in ["rooms", "rooms?namespace=/", "rooms?namespace=%2F"] {
        let r = hub.get(path).await;
        assert_eq!((r.status, &r.body), (200, &want), "{path}");
    }
    assert_eq!(hub.get("rooms?namespace=/other").await.body, json!({ "rooms": [] }));
    let r = hub.get("rooms?namespace=/elsewhere").await;
    assert_eq!(r.status, 404);
    let r = hub.get("namespaces").await;
    assert_eq!(
        (r.status, &r.body),
        (200, &json!({ "namespaces": [{ "name": "/", "sockets": 2 }, { "name": "/other", "sockets": 1 }] }))
    );
}

// ---------------------------------------------------------------- tokens

#[tokio::test]
async fn minted_tokens_admit_clients_and_carry_their_grants() {
    let hub = start_hub(|c| c.auth.client_auth = ClientAuth::Required).await;
    let r = hub
        .post(
            "tokens",
            json!({ "userId": "u-1", "expiresInSeconds": 600, "namespaces": ["/"], "join": ["room-*"], "claims": { "role": "tester" } }),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let token = r.body["token"].as_str().unwrap().to_string();
    let expires_at = r.body["expiresAt"].as_u64().unwrap();
    assert!((now() + 590..=now() + 610).contains(&expires_at), "{expires_at}");

    // The token admits a client, whose join grant works through hub:join.
    let mut c = Client::connect(hub.addr(), "", &format!(r#"40{{"token":"{token}"}}"#)).await.unwrap();
    assert_eq!(c.call(json!(["hub:join", "room-1"])).await, json!([{ "ok": true }]));
    let denied = c.call(json!(["hub:join", "lobby"])).await;
    assert_eq!(denied[0]["ok"], false);
    assert!(denied[0]["error"].as_str().unwrap().contains("not permitted"), "{denied}");
    assert_eq!(hub.get("rooms").await.body, json!({ "rooms": [{ "name": "room-1", "size": 1 }] }));
    let fetched = hub.post("sockets/fetch", json!({ "sockets": [c.sid] })).await;
    let claims = &fetched.body["sockets"][0]["handshake"]["claims"];
    assert_eq!((&claims["sub"], &claims["role"]), (&json!("u-1"), &json!("tester")));

    // As a query parameter too.
    let q = Client::connect(hub.addr(), &format!("&access_token={token}"), "40").await;
    assert!(q.is_ok(), "{:?}", q.err());
    // Only the namespaces it grants.
    let e =
        Client::connect(hub.addr(), "", &format!(r#"40/chat,{{"token":"{token}"}}"#)).await.err().unwrap();
    assert!(e.starts_with("44/chat,{") && e.contains("does not grant namespace /chat"), "{e}");
    // Without a token, or with a tampered one, clients are refused.
    let e = Client::connect(hub.addr(), "", "40").await.err().unwrap();
    assert!(e.starts_with("44{") && e.contains("a token is required"), "{e}");
    let e = Client::connect(hub.addr(), "", &format!(r#"40{{"token":"{token}x"}}"#)).await.err().unwrap();
    assert!(e.starts_with("44{") && e.contains("Unauthorized"), "{e}");
    // A client token cannot call the REST API.
    let a = hub
        .raw("POST", "emit", Some(json!({ "event": "e" }).to_string()), Some(&format!("Bearer {token}")))
        .await;
    assert_eq!(a.status, 401);

    for (body, want) in [
        (json!({ "userId": "u", "expiresInSeconds": 0 }), "expiresInSeconds: must be between 1 and 2592000"),
        (
            json!({ "userId": "u", "expiresInSeconds": 2_592_001 }),
            "expiresInSeconds: must be between 1 and 2592000",
        ),
        (json!({ "expiresInSeconds": 60 }), "userId: is required"),
        (json!({ "userId": "u", "claims": { "exp": 1 } }), "claims.exp: is reserved"),
        (
            json!({ "userId": "u", "namespaces": ["chat"] }),
            "namespaces[0]: \"chat\" is not a namespace pattern",
        ),
    ] {
        let a = hub.post("tokens", body.clone()).await;
        assert_eq!(a.status, 400, "{body}");
        assert!(error_of(&a).starts_with(want), "{body}: {:?}", a.body);
    }
}

// ---------------------------------------------------------------- metrics

#[tokio::test]
async fn every_request_is_counted_by_route_and_status_class() {
    let hub = start_hub(|_| {}).await;
    assert_eq!(hub.post("emit", json!({ "event": "e" })).await.status, 202);
    assert_eq!(hub.post("emit", json!({})).await.status, 400);
    assert_eq!(hub.raw("POST", "emit", None, None).await.status, 401);
    assert_eq!(hub.get("rooms").await.status, 200);
    assert_eq!(hub.get("nowhere").await.status, 404);
    let text = hub.metrics().await;
    for line in [
        r#"socketio_hub_rest_requests_total{route="emit",status="2xx"} 1"#,
        r#"socketio_hub_rest_requests_total{route="emit",status="4xx"} 2"#,
        r#"socketio_hub_rest_requests_total{route="rooms",status="2xx"} 1"#,
        r#"socketio_hub_rest_requests_total{route="unknown",status="4xx"} 1"#,
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
    }
}
