//! Socket.IO v5 packets: `<type>[<attachments>-][<namespace>,][<ack id>][<JSON data>]`.
//!
//! Decoding borrows the namespace and the JSON text from the input; the JSON of an event is
//! only split into borrowed `RawValue`s, never rebuilt, so forwarding a packet costs no
//! re-serialisation of its arguments.

use std::borrow::Cow;
use std::io::Write as _;

use serde_json::value::RawValue;

/// Socket.IO packet types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketType {
    /// `0`: join a namespace (client) / joined (server).
    Connect,
    /// `1`: leave a namespace.
    Disconnect,
    /// `2`: an event.
    Event,
    /// `3`: an acknowledgement.
    Ack,
    /// `4`: the namespace refused the connection (server only).
    ConnectError,
    /// `5`: an event with binary attachments.
    BinaryEvent,
    /// `6`: an acknowledgement with binary attachments.
    BinaryAck,
}

impl PacketType {
    fn from_digit(c: u8) -> Option<Self> {
        Some(match c {
            b'0' => PacketType::Connect,
            b'1' => PacketType::Disconnect,
            b'2' => PacketType::Event,
            b'3' => PacketType::Ack,
            b'4' => PacketType::ConnectError,
            b'5' => PacketType::BinaryEvent,
            b'6' => PacketType::BinaryAck,
            _ => return None,
        })
    }

    /// The wire digit.
    pub fn digit(self) -> u8 {
        b'0' + self as u8
    }

    /// Whether packets of this type carry binary attachments.
    pub fn is_binary(self) -> bool {
        matches!(self, PacketType::BinaryEvent | PacketType::BinaryAck)
    }
}

/// A decoded Socket.IO packet header with its JSON data still as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<'a> {
    /// The type.
    pub kind: PacketType,
    /// Namespace, `/` when absent on the wire.
    pub nsp: &'a str,
    /// Ack id, when the sender wants an acknowledgement (or this is one).
    pub id: Option<u64>,
    /// Number of binary attachments that follow (binary types only).
    pub attachments: usize,
    /// The JSON data, unparsed.
    pub data: Option<&'a str>,
}

/// Why a Socket.IO packet was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SocketError {
    /// Empty input.
    #[error("empty packet")]
    Empty,
    /// A type digit outside `0..=6`.
    #[error("unknown packet type {0:?}")]
    UnknownType(char),
    /// The attachment count is missing, malformed or above the limit.
    #[error("bad attachment count")]
    Attachments,
    /// The namespace does not end with `,` before data, or is not valid.
    #[error("malformed namespace")]
    Namespace,
    /// The ack id does not fit in 64 bits.
    #[error("ack id out of range")]
    AckId,
    /// The data is not the JSON this packet type requires.
    #[error("invalid data for {0:?}: {1}")]
    Data(PacketType, &'static str),
    /// A binary placeholder refers to an attachment that does not exist.
    #[error("binary placeholder out of range")]
    Placeholder,
}

/// Decode a packet. `max_attachments` is checked while parsing, before anything is allocated.
pub fn decode(text: &str, max_attachments: usize) -> Result<Packet<'_>, SocketError> {
    let bytes = text.as_bytes();
    let first = *bytes.first().ok_or(SocketError::Empty)?;
    let kind = PacketType::from_digit(first).ok_or(SocketError::UnknownType(first as char))?;
    let mut i = 1;

    let mut attachments = 0usize;
    if kind.is_binary() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
            if i - start > 6 {
                return Err(SocketError::Attachments);
            }
        }
        if i == start || bytes.get(i) != Some(&b'-') {
            return Err(SocketError::Attachments);
        }
        attachments = text[start..i].parse().map_err(|_| SocketError::Attachments)?;
        if attachments > max_attachments {
            return Err(SocketError::Attachments);
        }
        i += 1;
    }

    let mut nsp = "/";
    if bytes.get(i) == Some(&b'/') {
        let start = i;
        while i < bytes.len() && bytes[i] != b',' {
            i += 1;
        }
        nsp = &text[start..i];
        if i < bytes.len() {
            i += 1; // the comma
        }
    }

    let mut id = None;
    let start = i;
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        i += 1;
    }
    if i > start {
        id = Some(text[start..i].parse::<u64>().map_err(|_| SocketError::AckId)?);
    }

    let data = if i < bytes.len() { Some(&text[i..]) } else { None };
    check_data(kind, data)?;
    Ok(Packet { kind, nsp, id, attachments, data })
}

/// Cheap structural check of the data; full parsing happens in [`Packet::event`] and friends.
fn check_data(kind: PacketType, data: Option<&str>) -> Result<(), SocketError> {
    let first = data.and_then(|d| d.trim_start().as_bytes().first().copied());
    match kind {
        PacketType::Connect if matches!(first, None | Some(b'{')) => Ok(()),
        PacketType::Connect => Err(SocketError::Data(kind, "expected an object")),
        PacketType::Disconnect if first.is_none() => Ok(()),
        PacketType::Disconnect => Err(SocketError::Data(kind, "expected no data")),
        PacketType::Event | PacketType::BinaryEvent | PacketType::Ack | PacketType::BinaryAck
            if first == Some(b'[') =>
        {
            Ok(())
        }
        PacketType::Event | PacketType::BinaryEvent | PacketType::Ack | PacketType::BinaryAck => {
            Err(SocketError::Data(kind, "expected an array"))
        }
        PacketType::ConnectError if matches!(first, Some(b'{') | Some(b'"')) => Ok(()),
        PacketType::ConnectError => Err(SocketError::Data(kind, "expected an object")),
    }
}

/// An event's name and arguments, borrowed from the packet's JSON.
#[derive(Debug)]
pub struct Event<'a> {
    /// The event name (the first array element).
    pub name: Cow<'a, str>,
    /// The remaining elements, as raw JSON.
    pub args: Vec<&'a RawValue>,
}

impl<'a> Packet<'a> {
    /// Split an EVENT/BINARY_EVENT's data into name and arguments.
    pub fn event(&self) -> Result<Event<'a>, SocketError> {
        let kind = self.kind;
        let data = self.data.ok_or(SocketError::Data(kind, "missing"))?;
        let mut items: Vec<&'a RawValue> =
            serde_json::from_str(data).map_err(|_| SocketError::Data(kind, "invalid JSON array"))?;
        if items.is_empty() {
            return Err(SocketError::Data(kind, "missing event name"));
        }
        let name: Cow<'a, str> = serde_json::from_str(items[0].get())
            .map_err(|_| SocketError::Data(kind, "event name is not a string"))?;
        items.remove(0);
        Ok(Event { name, args: items })
    }

    /// An ACK/BINARY_ACK's arguments.
    pub fn ack_args(&self) -> Result<Vec<&'a RawValue>, SocketError> {
        let data = self.data.ok_or(SocketError::Data(self.kind, "missing"))?;
        serde_json::from_str(data).map_err(|_| SocketError::Data(self.kind, "invalid JSON array"))
    }

    /// A CONNECT's auth payload (`None` when absent).
    pub fn connect_auth(&self) -> Result<Option<serde_json::Map<String, serde_json::Value>>, SocketError> {
        match self.data {
            None => Ok(None),
            Some(d) => serde_json::from_str(d)
                .map(Some)
                .map_err(|_| SocketError::Data(self.kind, "invalid JSON object")),
        }
    }
}

/// Whether `nsp` can be written in a packet: it starts with `/` and holds no `,` (the comma ends
/// a namespace on the wire). Every namespace [`decode`] returns is valid; the encoders trust
/// their caller, so an edge that takes namespaces from outside checks them with this first.
pub fn is_valid_namespace(nsp: &str) -> bool {
    nsp.starts_with('/') && !nsp.contains(',')
}

/// Append an encoded packet to `out` (callers that build Engine.IO messages write the `4`
/// first, so the result is the frame body without another copy).
///
/// `nsp` must be valid ([`is_valid_namespace`]) and `data`, when present, the JSON the type
/// requires; then [`decode`] gives back exactly these fields.
pub fn encode_into(
    out: &mut Vec<u8>,
    kind: PacketType,
    nsp: &str,
    id: Option<u64>,
    attachments: usize,
    data: Option<&str>,
) {
    out.reserve(8 + nsp.len() + data.map_or(0, str::len));
    out.push(kind.digit());
    if kind.is_binary() {
        let _ = write!(out, "{attachments}-");
    }
    if nsp != "/" {
        out.extend_from_slice(nsp.as_bytes());
        out.push(b',');
    }
    if let Some(id) = id {
        out.extend_from_slice(itoa::Buffer::new().format(id).as_bytes());
    }
    if let Some(data) = data {
        out.extend_from_slice(data.as_bytes());
    }
}

/// Encode a packet as a `String`.
pub fn encode(
    kind: PacketType,
    nsp: &str,
    id: Option<u64>,
    attachments: usize,
    data: Option<&str>,
) -> String {
    let mut out = Vec::new();
    encode_into(&mut out, kind, nsp, id, attachments, data);
    // Every piece appended is UTF-8 (`&str` inputs and ASCII digits).
    String::from_utf8(out).expect("encoded packet is UTF-8")
}

/// Write an event's JSON data, `["name",arg1,arg2]`, from raw argument texts.
pub fn write_event_data<'b>(out: &mut Vec<u8>, name: &str, args: impl IntoIterator<Item = &'b str>) {
    out.push(b'[');
    // Serializing a &str into a Vec cannot fail.
    serde_json::to_writer(&mut *out, name).expect("string serializes");
    for arg in args {
        out.push(b',');
        out.extend_from_slice(arg.as_bytes());
    }
    out.push(b']');
}

/// Write an array of raw JSON values, `[a,b]`.
pub fn write_array<'b>(out: &mut Vec<u8>, items: impl IntoIterator<Item = &'b str>) {
    out.push(b'[');
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(item.as_bytes());
    }
    out.push(b']');
}

#[cfg(test)]
#[path = "socket_tests.rs"]
mod tests;
