//! The scrape-time gauges of `/metrics` (`sessions`, `rooms`, `heartbeat_deadline_entries`,
//! `tokio_alive_tasks`, `tokio_workers`), which the soak (`bench/soak.sh`) reads to find leaks:
//! a hub started in-process, real WebSocket and polling clients joining rooms, then every way a
//! session ends (closing handshake, dropped TCP, Engine.IO close over polling, an abandoned
//! polling session the heartbeat expires) — after which every table is empty again and the
//! runtime holds no more tasks than before the clients came.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use socketio_hub::Running;
use socketio_hub_config::{EngineConfig, HubConfig, PermissionGrant};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const WAIT: Duration = Duration::from_secs(5);

async fn start_hub() -> Running {
    let mut c = HubConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: "127.0.0.1:0".parse().unwrap(),
        demo_page: false,
        engine: EngineConfig { ping_interval_ms: 2000, ping_timeout_ms: 1000, ..EngineConfig::default() },
        ..HubConfig::default()
    };
    c.auth.access_keys = vec!["scrape-gauges-key-0123456789abcdef".into()];
    c.permissions = vec![PermissionGrant { namespace: "/".into(), join: vec!["*".into()], emit: vec![] }];
    c.validate().expect("valid test configuration");
    socketio_hub::start(c).await.expect("hub starts")
}

/// No pooled connections: a pooled connection is a task of this runtime, which would blur the
/// task count.
fn http() -> reqwest::Client {
    reqwest::Client::builder().timeout(WAIT).pool_max_idle_per_host(0).build().unwrap()
}

/// The scrape-time gauges, by name without the `socketio_hub_` prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Gauges {
    sessions: i64,
    sockets: i64,
    rooms: i64,
    deadlines: i64,
    tasks: i64,
    workers: i64,
}

async fn gauges(hub: &Running) -> Gauges {
    let text =
        http().get(format!("http://{}/metrics", hub.admin_addr)).send().await.unwrap().text().await.unwrap();
    let get = |name: &str| -> i64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("socketio_hub_{name} ")))
            .unwrap_or_else(|| panic!("no socketio_hub_{name} in /metrics:\n{text}"))
            .trim()
            .parse()
            .unwrap()
    };
    Gauges {
        sessions: get("sessions"),
        sockets: get("sockets"),
        rooms: get("rooms"),
        deadlines: get("heartbeat_deadline_entries"),
        tasks: get("tokio_alive_tasks"),
        workers: get("tokio_workers"),
    }
}

/// Scrape until `pred` holds, or fail with the last reading after 10 s.
async fn until(hub: &Running, what: &str, pred: impl Fn(&Gauges) -> bool) -> Gauges {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let g = gauges(hub).await;
        if pred(&g) {
            return g;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}; last {g:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn next_text(ws: &mut Ws) -> String {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.expect("a frame in time") {
            Some(Ok(Message::Text(t))) if t.as_str() == "2" => ws.send(Message::text("3")).await.unwrap(),
            Some(Ok(Message::Text(t))) => return t.as_str().to_string(),
            Some(Ok(_)) => {}
            other => panic!("connection ended: {other:?}"),
        }
    }
}

/// A WebSocket client in `/` that joined `rooms` with `hub:join`.
async fn ws_client(addr: SocketAddr, rooms: &[String]) -> Ws {
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr}/socket.io/?EIO=4&transport=websocket"))
            .await
            .expect("WebSocket handshake");
    assert!(next_text(&mut ws).await.starts_with("0{"));
    ws.send(Message::text("40")).await.unwrap();
    assert!(next_text(&mut ws).await.starts_with("40{"));
    for (i, room) in rooms.iter().enumerate() {
        ws.send(Message::text(format!("42{i}[\"hub:join\",\"{room}\"]"))).await.unwrap();
        let ack = next_text(&mut ws).await;
        assert_eq!(ack, format!("43{i}[{{\"ok\":true}}]"));
    }
    ws
}

/// A polling session in `/`: its sid.
async fn polling_client(addr: SocketAddr) -> String {
    let base = format!("http://{addr}/socket.io/?EIO=4&transport=polling");
    let open = http().get(&base).send().await.unwrap().text().await.unwrap();
    let v: Value = serde_json::from_str(open.strip_prefix('0').expect("OPEN packet")).unwrap();
    let sid = v["sid"].as_str().unwrap().to_string();
    let url = format!("{base}&sid={sid}");
    assert_eq!(http().post(&url).body("40").send().await.unwrap().status(), 200);
    let reply = http().get(&url).send().await.unwrap().text().await.unwrap();
    assert!(reply.contains("40{"), "{reply}");
    sid
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gauges_count_live_tables_and_return_to_baseline_when_clients_leave() {
    let hub = start_hub().await;
    let addr = hub.client_addr;
    // The first scrape's connection task and the hub's own tasks settle into a baseline.
    gauges(&hub).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let base = gauges(&hub).await;
    assert_eq!((base.sessions, base.sockets, base.rooms, base.deadlines), (0, 0, 0, 0), "{base:?}");
    assert!(base.tasks > 0 && base.workers == 2, "{base:?}");

    let mut wss = Vec::new();
    for i in 0..8 {
        wss.push(ws_client(addr, &[format!("shared-{}", i % 3), format!("own-{i}")]).await);
    }
    let mut polled = Vec::new();
    for _ in 0..3 {
        polled.push(polling_client(addr).await);
    }
    let abandoned = polling_client(addr).await;
    let live = gauges(&hub).await;
    assert_eq!((live.sessions, live.sockets, live.rooms), (12, 12, 3 + 8), "{live:?}");
    assert!(live.deadlines >= 12, "{live:?}");
    assert!(live.tasks >= base.tasks + 8, "a task per WebSocket connection: {live:?} vs {base:?}");

    // Half the WebSockets close with the closing handshake, half drop their TCP connection.
    for (i, mut ws) in wss.into_iter().enumerate() {
        if i % 2 == 0 {
            ws.send(Message::text("41")).await.unwrap();
            ws.close(None).await.unwrap();
        } else {
            drop(ws);
        }
    }
    for sid in polled {
        let url = format!("http://{addr}/socket.io/?EIO=4&transport=polling&sid={sid}");
        assert_eq!(http().post(&url).body("1").send().await.unwrap().status(), 200);
    }
    let mostly = until(&hub, "all but the abandoned session to go", |g| g.sessions == 1).await;
    assert_eq!((mostly.sockets, mostly.rooms), (1, 0), "{mostly:?}");
    // The abandoned polling session never answers a ping: the heartbeat closes it.
    let after = until(&hub, "the tables to drain and the tasks to end", |g| {
        g.sessions == 0 && g.sockets == 0 && g.rooms == 0 && g.deadlines == 0 && g.tasks <= base.tasks
    })
    .await;
    assert_eq!(after.workers, 2);
    let gone = format!("http://{addr}/socket.io/?EIO=4&transport=polling&sid={abandoned}");
    assert_eq!(http().get(&gone).send().await.unwrap().status(), 400, "the abandoned session is closed");
}
