//! The server-link wire format (version 1, `docs/link-protocol.md`): one JSON text message per
//! link message, with a `"t"` type field, followed by `bin` binary WebSocket messages holding
//! its Socket.IO binary attachments, in order.
//!
//! Pure: no I/O. `Reassembly` turns the WebSocket message stream into complete link messages
//! (a binary message nobody announced, or a text message while attachments are still due, is a
//! protocol error), and the `*_json` builders produce what the hub sends.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The link protocol version this hub speaks (`?v=` of the link URL).
pub const VERSION: u32 = 1;

/// A message from an application server (serialized again only to relay a session's message
/// to the node holding the session).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "camelCase")]
pub enum AppMsg {
    /// Write a Socket.IO packet to a client session.
    Packet {
        /// Engine.IO session id.
        sid: String,
        /// The encoded Socket.IO packet (`2/chat,["ev",1]`).
        data: String,
        /// Binary attachments that follow.
        #[serde(default)]
        bin: usize,
        /// Drop it unless the client's transport can take it now.
        #[serde(default)]
        volatile: bool,
    },
    /// Close a client session.
    Close {
        /// Engine.IO session id.
        sid: String,
    },
    /// A socket joins rooms.
    Join {
        /// Namespace.
        nsp: String,
        /// Socket id.
        id: String,
        /// Its Engine.IO session (lets a join made before the CONNECT reply find the socket).
        #[serde(default)]
        sid: Option<String>,
        /// Rooms.
        rooms: Vec<String>,
    },
    /// A socket leaves rooms.
    Leave {
        /// Namespace.
        nsp: String,
        /// Socket id.
        id: String,
        /// Its Engine.IO session.
        #[serde(default)]
        sid: Option<String>,
        /// Rooms.
        rooms: Vec<String>,
    },
    /// Emit an event to the selected sockets (the hub encodes it once for all).
    Broadcast {
        /// Namespace.
        nsp: String,
        /// Target rooms (empty: the whole namespace).
        #[serde(default)]
        rooms: Vec<String>,
        /// Rooms (or socket ids) excluded.
        #[serde(default)]
        except: Vec<String>,
        /// The encoded EVENT packet.
        data: String,
        /// Binary attachments that follow.
        #[serde(default)]
        bin: usize,
        /// Volatile delivery.
        #[serde(default)]
        volatile: bool,
        /// With acks: the request id the hub answers with `reply` and `ack` messages.
        #[serde(default)]
        req: Option<u64>,
        /// How long to collect acks, in ms.
        #[serde(default)]
        timeout: Option<u64>,
    },
    /// The selected sockets join rooms.
    SocketsJoin {
        /// Namespace.
        nsp: String,
        /// Target rooms.
        #[serde(default)]
        rooms: Vec<String>,
        /// Excluded rooms.
        #[serde(default)]
        except: Vec<String>,
        /// Rooms to join.
        targets: Vec<String>,
    },
    /// The selected sockets leave rooms.
    SocketsLeave {
        /// Namespace.
        nsp: String,
        /// Target rooms.
        #[serde(default)]
        rooms: Vec<String>,
        /// Excluded rooms.
        #[serde(default)]
        except: Vec<String>,
        /// Rooms to leave.
        targets: Vec<String>,
    },
    /// Disconnect the selected sockets.
    DisconnectSockets {
        /// Namespace.
        nsp: String,
        /// Target rooms.
        #[serde(default)]
        rooms: Vec<String>,
        /// Excluded rooms.
        #[serde(default)]
        except: Vec<String>,
        /// Close the whole client session too.
        #[serde(default)]
        close: bool,
    },
    /// Describe the selected sockets.
    FetchSockets {
        /// Request id.
        req: u64,
        /// Namespace.
        nsp: String,
        /// Target rooms.
        #[serde(default)]
        rooms: Vec<String>,
        /// Excluded rooms.
        #[serde(default)]
        except: Vec<String>,
    },
    /// Emit to every other application server.
    ServerSideEmit {
        /// Namespace.
        nsp: String,
        /// The encoded EVENT packet.
        data: String,
        /// Binary attachments that follow.
        #[serde(default)]
        bin: usize,
        /// With acks: the request id.
        #[serde(default)]
        req: Option<u64>,
        /// How long the hub relays answers, in ms.
        #[serde(default)]
        timeout: Option<u64>,
    },
    /// Answer to a `serverSideEmit` the hub delivered with a `req`.
    SsAck {
        /// The hub's request id.
        req: u64,
        /// The encoded ACK packet.
        data: String,
        /// Binary attachments that follow.
        #[serde(default)]
        bin: usize,
    },
    /// Answer to a hub request (`fetchData`).
    Reply {
        /// The hub's request id.
        req: u64,
        /// The answer.
        #[serde(default)]
        data: Value,
    },
    /// Answer to `ping`.
    Pong {
        /// The ping's timestamp, echoed.
        ts: u64,
    },
}

impl AppMsg {
    /// How many binary messages follow this one.
    pub fn attachments(&self) -> usize {
        match self {
            AppMsg::Packet { bin, .. }
            | AppMsg::Broadcast { bin, .. }
            | AppMsg::ServerSideEmit { bin, .. }
            | AppMsg::SsAck { bin, .. } => *bin,
            _ => 0,
        }
    }

    /// Low-cardinality name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            AppMsg::Packet { .. } => "packet",
            AppMsg::Close { .. } => "close",
            AppMsg::Join { .. } => "join",
            AppMsg::Leave { .. } => "leave",
            AppMsg::Broadcast { .. } => "broadcast",
            AppMsg::SocketsJoin { .. } => "socketsJoin",
            AppMsg::SocketsLeave { .. } => "socketsLeave",
            AppMsg::DisconnectSockets { .. } => "disconnectSockets",
            AppMsg::FetchSockets { .. } => "fetchSockets",
            AppMsg::ServerSideEmit { .. } => "serverSideEmit",
            AppMsg::SsAck { .. } => "ssAck",
            AppMsg::Reply { .. } => "reply",
            AppMsg::Pong { .. } => "pong",
        }
    }
}

/// Why the application server's stream is not a valid link stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// A text message that is not a known link message.
    #[error("invalid link message: {0}")]
    Json(String),
    /// A binary message with no message announcing it.
    #[error("binary message with no message announcing attachments")]
    UnexpectedBinary,
    /// A text message while attachments were still due.
    #[error("text message while {0} binary attachments were still due")]
    MissingAttachments(usize),
    /// More attachments than the hub accepts.
    #[error("{0} attachments announced; the limit is {1}")]
    TooManyAttachments(usize, usize),
}

/// Turns WebSocket messages into complete link messages.
pub struct Reassembly {
    max_attachments: usize,
    partial: Option<(AppMsg, usize, Vec<Bytes>)>,
}

impl Reassembly {
    /// A reassembler accepting at most `max_attachments` per message.
    pub fn new(max_attachments: usize) -> Self {
        Reassembly { max_attachments, partial: None }
    }

    /// A text message arrived; returns the message when it needs no attachments.
    pub fn text(&mut self, text: &str) -> Result<Option<(AppMsg, Vec<Bytes>)>, WireError> {
        if let Some((_, want, got)) = &self.partial {
            return Err(WireError::MissingAttachments(want - got.len()));
        }
        let msg: AppMsg = serde_json::from_str(text).map_err(|e| WireError::Json(e.to_string()))?;
        match msg.attachments() {
            0 => Ok(Some((msg, Vec::new()))),
            n if n > self.max_attachments => Err(WireError::TooManyAttachments(n, self.max_attachments)),
            n => {
                self.partial = Some((msg, n, Vec::with_capacity(n)));
                Ok(None)
            }
        }
    }

    /// A binary message arrived; returns the message it completes, if any.
    pub fn binary(&mut self, data: Bytes) -> Result<Option<(AppMsg, Vec<Bytes>)>, WireError> {
        let Some((_, want, got)) = self.partial.as_mut() else {
            return Err(WireError::UnexpectedBinary);
        };
        got.push(data);
        if got.len() < *want {
            return Ok(None);
        }
        Ok(self.partial.take().map(|(msg, _, bins)| (msg, bins)))
    }
}

/// `packet`: a client's Socket.IO packet for the application (the hot path: no `Value`).
#[derive(Serialize)]
struct PacketOut<'a> {
    t: &'static str,
    sid: &'a str,
    data: &'a str,
    #[serde(skip_serializing_if = "is_zero")]
    bin: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The `packet` message carrying a client packet `data` with `bin` attachments.
pub fn packet_json(sid: &str, data: &str, bin: usize) -> String {
    // Serializing plain strings and numbers cannot fail.
    serde_json::to_string(&PacketOut { t: "packet", sid, data, bin }).expect("serializes")
}

/// The `connect` message: a socket asks to join a namespace (or, with `rebind`, an already
/// connected socket moves to this application server).
pub struct ConnectOut<'a> {
    /// Engine.IO session id.
    pub sid: &'a str,
    /// Namespace.
    pub nsp: &'a str,
    /// The socket id the application should use.
    pub id: &'a str,
    /// The CONNECT auth payload.
    pub auth: &'a Map<String, Value>,
    /// Verified client token claims.
    pub claims: Option<&'a Map<String, Value>>,
    /// Rooms the socket is already in (rebind, recovery).
    pub rooms: Vec<&'a str>,
    /// The client is already connected; the application sees a new `connection` only.
    pub rebind: bool,
    /// Connection state recovery restored this socket (possibly from a session another node
    /// held): a socket with the same id of another session is gone.
    pub recovered: bool,
}

impl ConnectOut<'_> {
    /// The JSON text.
    pub fn json(&self) -> String {
        serde_json::json!({
            "t": "connect",
            "sid": self.sid,
            "nsp": self.nsp,
            "id": self.id,
            "auth": self.auth,
            "claims": self.claims,
            "rooms": self.rooms,
            "rebind": self.rebind,
            "recovered": self.recovered,
        })
        .to_string()
    }
}

/// The Socket.IO packet text (without the Engine.IO `4`) of an ACK with `args` (a JSON array)
/// and `attachments` binary attachments.
pub fn ack_packet(nsp: &str, id: u64, args_json: &str, attachments: usize) -> String {
    use socketio_hub_protocol::socket::{encode, PacketType};
    let kind = if attachments > 0 { PacketType::BinaryAck } else { PacketType::Ack };
    encode(kind, nsp, Some(id), attachments, Some(args_json))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reassembles_attachments_in_order() {
        let mut r = Reassembly::new(2);
        let (msg, bins) = r.text(r#"{"t":"close","sid":"s"}"#).unwrap().unwrap();
        assert_eq!(msg, AppMsg::Close { sid: "s".into() });
        assert!(bins.is_empty());
        assert!(r
            .text(r#"{"t":"packet","sid":"s","data":"51-[\"b\",{\"_placeholder\":true,\"num\":0}]","bin":1}"#)
            .unwrap()
            .is_none());
        let (msg, bins) = r.binary(Bytes::from_static(b"\x01")).unwrap().unwrap();
        assert_eq!(msg.attachments(), 1);
        assert_eq!(bins, vec![Bytes::from_static(b"\x01")]);
        assert_eq!(r.binary(Bytes::new()).unwrap_err(), WireError::UnexpectedBinary);
    }

    #[test]
    fn refuses_bad_streams() {
        let mut r = Reassembly::new(1);
        assert!(matches!(r.text("{\"t\":\"nope\"}"), Err(WireError::Json(_))));
        assert!(matches!(r.text("not json"), Err(WireError::Json(_))));
        assert_eq!(
            r.text(r#"{"t":"packet","sid":"s","data":"x","bin":3}"#).unwrap_err(),
            WireError::TooManyAttachments(3, 1)
        );
        r.text(r#"{"t":"ssAck","req":1,"data":"3[]","bin":1}"#).unwrap();
        assert_eq!(r.text(r#"{"t":"pong","ts":1}"#).unwrap_err(), WireError::MissingAttachments(1));
    }

    #[test]
    fn parses_every_operation() {
        let cases = [
            (r#"{"t":"join","nsp":"/","id":"a","rooms":["r"]}"#, "join"),
            (r#"{"t":"leave","nsp":"/","id":"a","sid":"s","rooms":["r"]}"#, "leave"),
            (
                r#"{"t":"broadcast","nsp":"/","rooms":["r"],"except":["x"],"data":"2[\"e\"]","req":4,"timeout":100}"#,
                "broadcast",
            ),
            (r#"{"t":"socketsJoin","nsp":"/","targets":["r"]}"#, "socketsJoin"),
            (r#"{"t":"socketsLeave","nsp":"/","rooms":["a"],"targets":["r"]}"#, "socketsLeave"),
            (r#"{"t":"disconnectSockets","nsp":"/","close":true}"#, "disconnectSockets"),
            (r#"{"t":"fetchSockets","req":1,"nsp":"/"}"#, "fetchSockets"),
            (r#"{"t":"serverSideEmit","nsp":"/","data":"2[\"e\"]"}"#, "serverSideEmit"),
            (r#"{"t":"reply","req":1,"data":{"a":1}}"#, "reply"),
            (r#"{"t":"pong","ts":5}"#, "pong"),
        ];
        for (text, kind) in cases {
            let mut r = Reassembly::new(4);
            let (msg, _) = r.text(text).unwrap().unwrap();
            assert_eq!(msg.kind(), kind, "{text}");
        }
    }

    #[test]
    fn builds_hub_messages() {
        assert_eq!(packet_json("s1", "2[\"a\"]", 0), r#"{"t":"packet","sid":"s1","data":"2[\"a\"]"}"#);
        assert_eq!(packet_json("s1", "x", 2), r#"{"t":"packet","sid":"s1","data":"x","bin":2}"#);
        assert_eq!(ack_packet("/", 7, "[1]", 0), "37[1]");
        assert_eq!(
            ack_packet("/chat", 7, "[{\"_placeholder\":true,\"num\":0}]", 1),
            "61-/chat,7[{\"_placeholder\":true,\"num\":0}]"
        );
        let auth = Map::new();
        let c = ConnectOut {
            sid: "s",
            nsp: "/",
            id: "i",
            auth: &auth,
            claims: None,
            rooms: vec!["r"],
            rebind: true,
            recovered: false,
        };
        let v: Value = serde_json::from_str(&c.json()).unwrap();
        assert_eq!(v["t"], "connect");
        assert_eq!(v["rooms"][0], "r");
        assert_eq!(v["rebind"], true);
    }
}
