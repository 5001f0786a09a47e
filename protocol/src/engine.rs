//! Engine.IO v4 packets and HTTP long-polling payloads.
//!
//! A packet is one type digit followed by its data; on polling, packets are joined with the
//! record separator `\x1e` and binary packets travel as `b<base64>`. On WebSocket a text frame
//! holds one packet and a binary frame is a binary message with no type digit.

use std::borrow::Cow;

use base64::Engine as _;

/// The record separator between packets of a polling payload.
pub const SEPARATOR: u8 = 0x1e;

/// Engine.IO packet types (the leading digit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketType {
    /// `0`: handshake, server to client.
    Open,
    /// `1`: the session is closing.
    Close,
    /// `2`: heartbeat request (also `2probe` during upgrade).
    Ping,
    /// `3`: heartbeat answer (also `3probe`).
    Pong,
    /// `4`: a message for the layer above.
    Message,
    /// `5`: the client switches to the probed transport.
    Upgrade,
    /// `6`: nothing; used to end a pending poll during upgrade.
    Noop,
}

impl PacketType {
    /// The wire digit.
    pub fn digit(self) -> u8 {
        b'0' + self as u8
    }

    fn from_digit(c: u8) -> Option<Self> {
        Some(match c {
            b'0' => PacketType::Open,
            b'1' => PacketType::Close,
            b'2' => PacketType::Ping,
            b'3' => PacketType::Pong,
            b'4' => PacketType::Message,
            b'5' => PacketType::Upgrade,
            b'6' => PacketType::Noop,
            _ => return None,
        })
    }
}

/// A decoded Engine.IO packet. Text data borrows from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    /// Handshake data (JSON).
    Open(&'a str),
    /// Close.
    Close,
    /// Ping with optional data (`probe`).
    Ping(&'a str),
    /// Pong with optional data (`probe`).
    Pong(&'a str),
    /// A text message.
    Message(&'a str),
    /// Upgrade.
    Upgrade,
    /// Noop.
    Noop,
    /// A binary message (borrowed from a WebSocket frame, owned when decoded from base64).
    Binary(Cow<'a, [u8]>),
}

/// Why a packet could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// An empty packet (no type digit).
    #[error("empty packet")]
    Empty,
    /// A type digit outside `0..=6`.
    #[error("unknown packet type {0:?}")]
    UnknownType(char),
    /// A `b…` packet whose data is not valid base64.
    #[error("invalid base64 in binary packet")]
    Base64,
    /// The payload is larger than the configured maximum.
    #[error("payload of {size} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// The size seen.
        size: usize,
        /// The maximum allowed.
        max: usize,
    },
}

/// Decode one text packet (a WebSocket text frame, or one item of a polling payload that is
/// not a `b…` binary item).
pub fn decode_text(text: &str) -> Result<Packet<'_>, EngineError> {
    let first = *text.as_bytes().first().ok_or(EngineError::Empty)?;
    let ty = PacketType::from_digit(first).ok_or(EngineError::UnknownType(first as char))?;
    // The first byte is ASCII, so slicing after it stays on a char boundary.
    let data = &text[1..];
    Ok(match ty {
        PacketType::Open => Packet::Open(data),
        PacketType::Close => Packet::Close,
        PacketType::Ping => Packet::Ping(data),
        PacketType::Pong => Packet::Pong(data),
        PacketType::Message => Packet::Message(data),
        PacketType::Upgrade => Packet::Upgrade,
        PacketType::Noop => Packet::Noop,
    })
}

/// Iterate over the packets of a polling payload (POST body).
///
/// `max_payload` bounds the decoded size of one binary item exactly (an item of `max_payload`
/// bytes passes, one byte more is refused); it is checked before the base64 is decoded, so an
/// oversized item never allocates. The whole body's size is the caller's to bound.
pub fn decode_payload(
    body: &str,
    max_payload: usize,
) -> impl Iterator<Item = Result<Packet<'_>, EngineError>> {
    body.split('\x1e').map(move |item| decode_payload_item(item, max_payload))
}

fn decode_payload_item(item: &str, max_payload: usize) -> Result<Packet<'_>, EngineError> {
    match item.strip_prefix('b') {
        Some(b64) => {
            let size = decoded_len(b64);
            if size > max_payload {
                return Err(EngineError::TooLarge { size, max: max_payload });
            }
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map(|v| Packet::Binary(Cow::Owned(v)))
                .map_err(|_| EngineError::Base64)
        }
        None => decode_text(item),
    }
}

/// The number of bytes `b64` decodes to when it is valid base64 (an upper bound otherwise),
/// computed without decoding and without overflow: every 4 characters are 3 bytes, a trailing
/// group of 2 or 3 characters is 1 or 2 bytes, and `=` padding carries none.
fn decoded_len(b64: &str) -> usize {
    let chars = b64.trim_end_matches('=').len();
    chars / 4 * 3 + (chars % 4 * 3) / 4
}

/// Append one packet to a polling payload being built in `out`, adding the separator first
/// when `out` already holds a packet. `text` is the full text packet (type digit included).
pub fn append_text_to_payload(out: &mut Vec<u8>, text: &[u8]) {
    if !out.is_empty() {
        out.push(SEPARATOR);
    }
    out.extend_from_slice(text);
}

/// Append a binary message to a polling payload as `b<base64>`.
pub fn append_binary_to_payload(out: &mut Vec<u8>, data: &[u8]) {
    if !out.is_empty() {
        out.push(SEPARATOR);
    }
    out.push(b'b');
    let start = out.len();
    out.resize(start + base64::encoded_len(data.len(), true).unwrap_or(0), 0);
    // The slice was sized by `encoded_len`, so encoding into it cannot run short.
    let written = base64::engine::general_purpose::STANDARD
        .encode_slice(data, &mut out[start..])
        .expect("buffer sized by encoded_len");
    out.truncate(start + written);
}

/// The handshake settings announced in the OPEN packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenInfo<'a> {
    /// Session id.
    pub sid: &'a str,
    /// Transports the client may upgrade to (`["websocket"]` or empty).
    pub upgrades: &'a [&'a str],
    /// Ping interval in ms.
    pub ping_interval: u64,
    /// Ping timeout in ms.
    pub ping_timeout: u64,
    /// Largest payload the server accepts, in bytes.
    pub max_payload: usize,
}

/// Encode the OPEN packet (`0{"sid":…}`).
pub fn encode_open(info: &OpenInfo<'_>) -> String {
    let upgrades: Vec<_> = info.upgrades.iter().map(|u| serde_json::Value::from(*u)).collect();
    let json = serde_json::json!({
        "sid": info.sid,
        "upgrades": upgrades,
        "pingInterval": info.ping_interval,
        "pingTimeout": info.ping_timeout,
        "maxPayload": info.max_payload,
    });
    format!("0{json}")
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
