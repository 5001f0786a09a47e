//! A socketioxide 0.18 server that does the bench's job, so the load generator can measure it
//! side by side with the hub and the Node peer.
//!
//! It offers the same conventions the hub grants clients natively ("client permissions"):
//! `hub:join` / `hub:leave` (room, optional ack → `{"ok":true}`), `hub:to` (room or rooms,
//! event, ...args, optional ack: broadcast `event(...args)` to the rooms excluding the sender,
//! then ack `{"ok":true}`), and `echo` (...args, ack → ack(...args)). It listens on the address
//! given as the first argument (default `127.0.0.1:0`) and prints
//! `socketioxide ready clients=<ip:port>` once it accepts connections.

use std::fmt;

use axum::serve::ListenerExt;
use axum::Router;
use serde::de::{Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeTuple, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use socketioxide::extract::{AckSender, Data, SocketRef};
use socketioxide::handler::ConnectHandler;
use socketioxide::SocketIo;

/// All the arguments of an event, however many there are.
///
/// socketioxide hands a handler every argument only when the extracted type (de)serializes as a
/// tuple; this type does, with any length, so `hub:to` and `echo` stay variadic.
struct Args(Vec<Value>);

impl<'de> Deserialize<'de> for Args {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Args;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("event arguments")
            }
            fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Args, S::Error> {
                let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(4));
                while let Some(x) = seq.next_element()? {
                    v.push(x);
                }
                Ok(Args(v))
            }
        }
        d.deserialize_tuple(usize::MAX, V)
    }
}

impl Serialize for Args {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(self.0.len())?;
        for x in &self.0 {
            t.serialize_element(x)?;
        }
        t.end()
    }
}

/// The room argument of `hub:join`, `hub:leave` and `hub:to`: one name or several.
fn rooms(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect(),
        _ => Vec::new(),
    }
}

fn on_connect(s: SocketRef) {
    s.on("hub:join", async |s: SocketRef, Data(room): Data<Value>, ack: AckSender| {
        s.join(rooms(&room));
        let _ = ack.send(&json!({"ok": true}));
    });
    s.on("hub:leave", async |s: SocketRef, Data(room): Data<Value>, ack: AckSender| {
        s.leave(rooms(&room));
        let _ = ack.send(&json!({"ok": true}));
    });
    s.on("hub:to", async |s: SocketRef, Data(Args(mut args)): Data<Args>, ack: AckSender| {
        if args.len() < 2 {
            let _ = ack.send(&json!({"ok": false, "error": "hub:to needs a room and an event"}));
            return;
        }
        let rest = Args(args.split_off(2));
        let event = match args.pop() {
            Some(Value::String(e)) => e,
            _ => {
                let _ = ack.send(&json!({"ok": false, "error": "event must be a string"}));
                return;
            }
        };
        let targets = rooms(&args[0]);
        let _ = s.to(targets).emit(event, &rest).await;
        let _ = ack.send(&json!({"ok": true}));
    });
    s.on("echo", async |Data(args): Data<Args>, ack: AckSender| {
        let _ = ack.send(&args);
    });
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:0".into());
    let (layer, io) = SocketIo::new_layer();
    // Handlers are registered in a connect middleware, which socketioxide awaits before it sends
    // the CONNECT reply; in the connect handler itself (spawned after the reply) an event sent
    // right after the reply can arrive before its handler exists and be dropped.
    let register = async |s: SocketRef| {
        on_connect(s);
        Ok::<(), std::convert::Infallible>(())
    };
    io.ns("/", (async || ()).with(register));
    let app = Router::new().layer(layer);
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("socketioxide ready clients={}", listener.local_addr()?);
    // Small frames must leave at once, as on the hub and the Node peer.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await?;
    Ok(())
}
