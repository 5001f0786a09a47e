//! Building outgoing Socket.IO packets as ready-to-queue frames.
//!
//! Each function encodes once; the result is shared by every recipient of a broadcast.

use base64::Engine as _;
use bytes::Bytes;
use serde_json::value::RawValue;
use serde_json::Value;
use smallvec::SmallVec;
use socketio_hub_protocol::binary;
use socketio_hub_protocol::socket::PacketType;

use crate::frame::{Frame, FrameBuilder};

/// An encoded packet: the text frame, then one binary frame per attachment.
pub type Outgoing = SmallVec<[Frame; 1]>;

/// Arguments of an event or ack: a JSON array (with binary placeholders) and attachments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// The JSON array text, `[...]`.
    pub json: String,
    /// Binary attachments referenced by placeholders in `json`.
    pub attachments: Vec<Bytes>,
}

impl Default for Args {
    fn default() -> Self {
        Args { json: "[]".into(), attachments: Vec::new() }
    }
}

/// Why arguments given as JSON could not be turned into a packet.
#[derive(Debug, thiserror::Error)]
pub enum ArgsError {
    /// A `{"_binary": …}` value is not valid base64.
    #[error("invalid base64 in a _binary value")]
    Base64,
    /// A placeholder points past the attachments.
    #[error("binary placeholder out of range")]
    Placeholder,
    /// Too many binary values.
    #[error("too many binary values ({0}; the limit is {1})")]
    TooMany(usize, usize),
}

impl Args {
    /// Arguments from raw JSON items (as split from a received packet).
    pub fn from_raw(items: &[&RawValue], attachments: Vec<Bytes>) -> Args {
        let mut json = Vec::with_capacity(2 + items.iter().map(|i| i.get().len() + 1).sum::<usize>());
        socketio_hub_protocol::socket::write_array(&mut json, items.iter().map(|i| i.get()));
        // Raw JSON items are UTF-8 and the separators are ASCII.
        Args { json: String::from_utf8(json).expect("utf-8"), attachments }
    }

    /// The array's elements without the brackets (empty when there are none).
    pub fn inner(&self) -> &str {
        let t = self.json.trim();
        t.strip_prefix('[').and_then(|t| t.strip_suffix(']')).unwrap_or("").trim()
    }

    /// Arguments from JSON values where binary travels as `{"_binary":"<base64>"}`
    /// (the webhook and REST representation).
    pub fn from_json_values(mut values: Vec<Value>, max_attachments: usize) -> Result<Args, ArgsError> {
        let mut attachments = Vec::new();
        let mut bad = false;
        let mut as_binary = |v: &Value| -> Option<Vec<u8>> {
            let obj = v.as_object()?;
            if obj.len() != 1 {
                return None;
            }
            let b64 = obj.get("_binary")?.as_str()?;
            match base64::engine::general_purpose::STANDARD.decode(b64) {
                Ok(bytes) => Some(bytes),
                Err(_) => {
                    bad = true;
                    None
                }
            }
        };
        for v in values.iter_mut() {
            binary::extract_binary(v, &mut as_binary, &mut attachments);
        }
        if bad {
            return Err(ArgsError::Base64);
        }
        if attachments.len() > max_attachments {
            return Err(ArgsError::TooMany(attachments.len(), max_attachments));
        }
        // Serializing a Vec<Value> cannot fail.
        let json = serde_json::to_string(&values).expect("values serialize");
        Ok(Args { json, attachments: attachments.into_iter().map(Bytes::from).collect() })
    }

    /// The arguments as JSON values with binary as `{"_binary":"<base64>"}`.
    pub fn to_json_values(&self) -> Result<Vec<Value>, ArgsError> {
        let mut values: Vec<Value> = serde_json::from_str(&self.json).unwrap_or_default();
        for v in values.iter_mut() {
            binary::fill_placeholders(v, self.attachments.len(), &mut |n| {
                serde_json::json!({ "_binary": base64::engine::general_purpose::STANDARD.encode(&self.attachments[n]) })
            })
            .map_err(|_| ArgsError::Placeholder)?;
        }
        Ok(values)
    }
}

fn header(b: &mut FrameBuilder, kind: PacketType, nsp: &str, id: Option<u64>, attachments: usize) {
    let out = b.payload();
    out.push(b'4');
    socketio_hub_protocol::socket::encode_into(out, kind, nsp, id, attachments, None);
}

fn finish(b: FrameBuilder, attachments: &[Bytes]) -> Outgoing {
    let mut frames = Outgoing::new();
    frames.push(b.text());
    frames.extend(attachments.iter().map(|a| Frame::binary(a)));
    frames
}

/// An EVENT (or BINARY_EVENT) packet. With `offset`, the offset string is appended as the last
/// argument (connection state recovery).
pub fn event(nsp: &str, id: Option<u64>, name: &str, args: &Args, offset: Option<&str>) -> Outgoing {
    let inner = args.inner();
    let n = args.attachments.len();
    let kind = if n > 0 { PacketType::BinaryEvent } else { PacketType::Event };
    let mut b = FrameBuilder::with_capacity(16 + nsp.len() + name.len() + inner.len());
    header(&mut b, kind, nsp, id, n);
    let out = b.payload();
    out.push(b'[');
    // Serializing a &str cannot fail.
    serde_json::to_writer(&mut *out, name).expect("string serializes");
    if !inner.is_empty() {
        out.push(b',');
        out.extend_from_slice(inner.as_bytes());
    }
    if let Some(offset) = offset {
        out.push(b',');
        serde_json::to_writer(&mut *out, offset).expect("string serializes");
    }
    out.push(b']');
    finish(b, &args.attachments)
}

/// An ACK (or BINARY_ACK) packet.
pub fn ack(nsp: &str, id: u64, args: &Args) -> Outgoing {
    let n = args.attachments.len();
    let kind = if n > 0 { PacketType::BinaryAck } else { PacketType::Ack };
    let mut b = FrameBuilder::with_capacity(16 + nsp.len() + args.json.len());
    header(&mut b, kind, nsp, Some(id), n);
    b.payload().extend_from_slice(args.json.as_bytes());
    finish(b, &args.attachments)
}

/// The CONNECT reply `0/nsp,{"sid":…}` (with `pid` when recovery is on).
pub fn connect_ok(nsp: &str, sid: &str, pid: Option<&str>) -> Outgoing {
    let data = match pid {
        Some(pid) => serde_json::json!({ "sid": sid, "pid": pid }),
        None => serde_json::json!({ "sid": sid }),
    };
    control(PacketType::Connect, nsp, Some(&data))
}

/// A CONNECT_ERROR `4/nsp,{"message":…,"data":…}`.
pub fn connect_error(nsp: &str, message: &str, data: Option<&Value>) -> Outgoing {
    let body = match data {
        Some(d) => serde_json::json!({ "message": message, "data": d }),
        None => serde_json::json!({ "message": message }),
    };
    control(PacketType::ConnectError, nsp, Some(&body))
}

/// A DISCONNECT `1/nsp,` (the server ends the namespace connection).
pub fn disconnect(nsp: &str) -> Outgoing {
    control(PacketType::Disconnect, nsp, None)
}

fn control(kind: PacketType, nsp: &str, data: Option<&Value>) -> Outgoing {
    let mut b = FrameBuilder::with_capacity(64);
    header(&mut b, kind, nsp, None, 0);
    if let Some(d) = data {
        serde_json::to_writer(&mut *b.payload(), d).expect("value serializes");
    }
    finish(b, &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(o: &Outgoing) -> String {
        String::from_utf8(o[0].payload().to_vec()).unwrap()
    }

    #[test]
    fn encodes_events_acks_and_connects() {
        let args = Args { json: "[1,{\"a\":2}]".into(), attachments: vec![] };
        assert_eq!(text(&event("/", None, "hi", &args, None)), "42[\"hi\",1,{\"a\":2}]");
        assert_eq!(
            text(&event("/chat", Some(7), "hi", &Args::default(), Some("12"))),
            "42/chat,7[\"hi\",\"12\"]"
        );
        let bin = Args {
            json: "[{\"_placeholder\":true,\"num\":0}]".into(),
            attachments: vec![Bytes::from_static(b"\x01")],
        };
        let o = event("/", None, "b", &bin, None);
        assert_eq!(text(&o), "451-[\"b\",{\"_placeholder\":true,\"num\":0}]");
        assert_eq!(o.len(), 2);
        assert!(o[1].is_binary());
        assert_eq!(text(&ack("/", 3, &args)), "433[1,{\"a\":2}]");
        assert_eq!(text(&connect_ok("/", "abc", None)), "40{\"sid\":\"abc\"}");
        assert_eq!(text(&connect_error("/x", "nope", None)), "44/x,{\"message\":\"nope\"}");
        assert_eq!(text(&disconnect("/x")), "41/x,");
    }

    #[test]
    fn binary_json_representation_round_trips() {
        let values = vec![
            serde_json::json!({"file": {"_binary": "AQID"}, "n": 1}),
            serde_json::json!({"_binary": ""}),
        ];
        let args = Args::from_json_values(values.clone(), 4).unwrap();
        assert_eq!(args.attachments, vec![Bytes::from_static(&[1, 2, 3]), Bytes::new()]);
        assert!(args.json.contains("_placeholder"));
        assert_eq!(args.to_json_values().unwrap(), values);
        assert!(Args::from_json_values(vec![serde_json::json!({"_binary": "!!"})], 4).is_err());
        assert!(Args::from_json_values(values, 1).is_err());
    }
}
