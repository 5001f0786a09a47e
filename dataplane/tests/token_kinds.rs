//! Client, REST and server-link tokens are told apart (issue 9, gap 1): a hub in link mode
//! started in-process on port 0, the link endpoint dialled over real TCP/WebSocket, the REST
//! API over real HTTP and clients over a raw Engine.IO/Socket.IO WebSocket.
//!
//! What must hold: minting refuses every reserved claim with 400; a minted client token (even
//! one naming the link audience and claim, signed by an application) cannot open a server link
//! (401) nor call the REST API (401); a link token cannot call the REST API nor identify a
//! client; the SDK's link token (aud + claim) is accepted.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use socketio_hub::auth::AccessKeys;
use socketio_hub::Running;
use socketio_hub_config::{ClientAuth, HubConfig, UpstreamMode};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const KEY: &str = "token-kinds-test-key-0123456789";
const WAIT: Duration = Duration::from_secs(5);

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

fn sign(claims: Value) -> String {
    let mut c = claims.as_object().unwrap().clone();
    c.entry("exp").or_insert(json!(now() + 300));
    AccessKeys::from_keys(vec![KEY.into()]).mint(&c)
}

/// What `sdk/node` presents (`linkToken`).
fn link_token() -> String {
    sign(json!({ "aud": "socketio-hub:link", "sio.link": true, "iat": now() }))
}

async fn start_hub(mode: UpstreamMode) -> Running {
    let mut c = HubConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: "127.0.0.1:0".parse().unwrap(),
        demo_page: false,
        ..HubConfig::default()
    };
    c.auth.access_keys = vec![KEY.into()];
    c.auth.client_auth = ClientAuth::Required;
    c.upstream.mode = mode;
    c.validate().expect("valid test configuration");
    socketio_hub::start(c).await.expect("hub starts")
}

/// Open `/api/v1/link?v=1` with `token`: `Ok(())` on 101, else the status and `error` text.
async fn open_link(addr: SocketAddr, token: &str) -> Result<(), (u16, String)> {
    let mut req = format!("ws://{addr}/api/v1/link?v=1&name=test").into_client_request().unwrap();
    req.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    match tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
        .await
        .expect("link answer in time")
    {
        Ok((mut ws, _)) => {
            // The hub greets a link with `hello`: the link really is open.
            let msg = tokio::time::timeout(WAIT, ws.next()).await.expect("hello in time").unwrap().unwrap();
            let hello: Value = serde_json::from_str(msg.to_text().unwrap()).unwrap();
            assert_eq!(hello["t"], "hello", "{hello}");
            let _ = ws.close(None).await;
            Ok(())
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let body: Value = serde_json::from_slice(resp.body().as_deref().unwrap_or_default()).unwrap();
            Err((resp.status().as_u16(), body["error"].as_str().unwrap_or_default().to_string()))
        }
        Err(e) => panic!("link dial failed: {e}"),
    }
}

async fn rest(addr: SocketAddr, path: &str, token: &str, body: Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("http://{addr}/api/v1/{path}"))
        .bearer_auth(token)
        .json(&body)
        .timeout(WAIT)
        .send()
        .await
        .expect("REST request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Connect a raw client to `/` with `token`; the CONNECT reply (`40{…}` or `44{…}`).
async fn client_connect(addr: SocketAddr, token: &str) -> String {
    let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("WebSocket handshake");
    let open = ws.next().await.unwrap().unwrap();
    assert!(open.to_text().unwrap().starts_with("0{"), "{open:?}");
    ws.send(Message::text(format!(r#"40{{"token":"{token}"}}"#))).await.unwrap();
    let reply = tokio::time::timeout(WAIT, ws.next()).await.expect("CONNECT answer").unwrap().unwrap();
    reply.to_text().unwrap().to_string()
}

#[tokio::test]
async fn minting_refuses_reserved_claims_with_400() {
    let hub = start_hub(UpstreamMode::None).await;
    let app = sign(json!({ "sub": "app" }));
    for claim in ["sio.link", "aud", "sio.ns", "sio.join", "sio.emit", "sio.future", "iss", "jti", "nbf"] {
        let (status, body) =
            rest(hub.client_addr, "tokens", &app, json!({ "userId": "u", "claims": { claim: true } })).await;
        assert_eq!(status, 400, "{claim}: {body}");
        let error = body["error"].as_str().unwrap();
        assert!(error.starts_with(&format!("claims.{claim}: is reserved")), "{claim}: {error}");
    }
    // Ordinary extra claims still work.
    let (status, body) = rest(
        hub.client_addr,
        "tokens",
        &app,
        json!({ "userId": "u", "claims": { "role": "x", "link": true } }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_client_token_never_opens_a_server_link() {
    let hub = start_hub(UpstreamMode::Link).await;
    let addr = hub.client_addr;
    let app = sign(json!({ "sub": "app" }));
    let (status, minted) = rest(addr, "tokens", &app, json!({ "userId": "mallory" })).await;
    assert_eq!(status, 200);
    let minted = minted["token"].as_str().unwrap().to_string();

    // The minted client token: 401, saying it is a client token.
    let (status, error) = open_link(addr, &minted).await.unwrap_err();
    assert_eq!(status, 401);
    assert!(error.contains("client token"), "{error}");
    // A client-audience token carrying the link audience and claim as well (an application
    // minting its own client tokens carelessly): still 401.
    let mixed = sign(json!({ "aud": ["socketio-hub:client", "socketio-hub:link"], "sio.link": true }));
    assert_eq!(open_link(addr, &mixed).await.unwrap_err().0, 401);
    // The old SDK token (claim without audience), the audience without the claim, a REST token.
    for token in [
        sign(json!({ "sio.link": true })),
        sign(json!({ "aud": "socketio-hub:link" })),
        sign(json!({ "aud": "socketio-hub:api", "sio.link": true })),
        app.clone(),
    ] {
        let (status, error) = open_link(addr, &token).await.unwrap_err();
        assert_eq!(status, 401);
        assert!(error.contains("\"aud\": \"socketio-hub:link\""), "{error}");
    }
    // The SDK's link token opens the link.
    open_link(addr, &link_token()).await.expect("a link token opens the link");
}

#[tokio::test]
async fn server_tokens_are_refused_as_client_and_rest_tokens() {
    // No upstream: an accepted client is connected at once (link mode would wait for an app).
    let hub = start_hub(UpstreamMode::None).await;
    let addr = hub.client_addr;
    // A link token is not a REST token...
    let (status, body) = rest(addr, "emit", &link_token(), json!({ "event": "e" })).await;
    assert_eq!(status, 401, "{body}");
    assert!(body["error"].as_str().unwrap().contains("server-link token"), "{body}");
    // ...nor a client's identity; neither is a REST token with the api audience.
    for token in [link_token(), sign(json!({ "aud": "socketio-hub:api", "sub": "app" }))] {
        let reply = client_connect(addr, &token).await;
        assert!(reply.starts_with("44{") && reply.contains("server token"), "{reply}");
    }
    // A minted client token is a client's identity, and no REST token.
    let (status, minted) =
        rest(addr, "tokens", &sign(json!({ "aud": "socketio-hub:api" })), json!({ "userId": "u" })).await;
    assert_eq!(status, 200, "{minted}");
    let minted = minted["token"].as_str().unwrap();
    let (status, _) = rest(addr, "emit", minted, json!({ "event": "e" })).await;
    assert_eq!(status, 401);
    let reply = client_connect(addr, minted).await;
    assert!(reply.starts_with("40{"), "{reply}");
}
