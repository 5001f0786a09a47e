//! Outbound messages, encoded once as complete WebSocket frames.
//!
//! A server→client WebSocket frame is unmasked, so its bytes are the same for every
//! recipient: a broadcast builds one `Frame` and every recipient's queue holds a reference
//! to the same buffer. HTTP long-polling reads the payload out of the same bytes.
//!
//! Invariant: a `Frame` always holds a well-formed, final, unmasked text or binary frame.

use bytes::Bytes;

/// Room reserved in front of the payload for the largest header (2 + 8 bytes).
const HEADER_ROOM: usize = 10;

/// One Engine.IO message ready for the wire.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame(Bytes);

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = self.payload();
        match self.is_binary() {
            true => write!(f, "Frame::Binary({} bytes)", p.len()),
            false => write!(f, "Frame::Text({:?})", String::from_utf8_lossy(p)),
        }
    }
}

/// Builds a frame in place: write the payload into `buf`, then finish.
pub struct FrameBuilder {
    buf: Vec<u8>,
}

impl Default for FrameBuilder {
    fn default() -> Self {
        Self::with_capacity(64)
    }
}

impl FrameBuilder {
    /// A builder with room for `capacity` payload bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        let mut buf = Vec::with_capacity(HEADER_ROOM + capacity);
        buf.resize(HEADER_ROOM, 0);
        FrameBuilder { buf }
    }

    /// The payload buffer to append to (it starts empty).
    pub fn payload(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Finish as a text frame. The caller guarantees the payload is UTF-8.
    pub fn text(self) -> Frame {
        self.finish(0x1)
    }

    /// Finish as a binary frame.
    pub fn binary(self) -> Frame {
        self.finish(0x2)
    }

    fn finish(mut self, opcode: u8) -> Frame {
        let len = self.buf.len() - HEADER_ROOM;
        let mut header = [0u8; HEADER_ROOM];
        header[0] = 0x80 | opcode;
        let header_len = if len < 126 {
            header[1] = len as u8;
            2
        } else if len <= u16::MAX as usize {
            header[1] = 126;
            header[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            4
        } else {
            header[1] = 127;
            header[2..10].copy_from_slice(&(len as u64).to_be_bytes());
            10
        };
        let start = HEADER_ROOM - header_len;
        self.buf[start..HEADER_ROOM].copy_from_slice(&header[..header_len]);
        Frame(Bytes::from(self.buf).slice(start..))
    }
}

impl Frame {
    /// A text frame holding `payload`.
    pub fn text(payload: &[u8]) -> Frame {
        let mut b = FrameBuilder::with_capacity(payload.len());
        b.payload().extend_from_slice(payload);
        b.text()
    }

    /// A binary frame holding `payload`.
    pub fn binary(payload: &[u8]) -> Frame {
        let mut b = FrameBuilder::with_capacity(payload.len());
        b.payload().extend_from_slice(payload);
        b.binary()
    }

    /// Whether this is a binary message (else text).
    pub fn is_binary(&self) -> bool {
        self.0[0] & 0x0f == 0x2
    }

    fn header_len(&self) -> usize {
        match self.0[1] & 0x7f {
            126 => 4,
            127 => 10,
            _ => 2,
        }
    }

    /// The message itself (what long-polling sends).
    pub fn payload(&self) -> &[u8] {
        &self.0[self.header_len()..]
    }

    /// The whole frame as written to a WebSocket.
    pub fn wire(&self) -> &Bytes {
        &self.0
    }

    /// Bytes this frame costs in a queue.
    pub fn cost(&self) -> usize {
        self.0.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_match_rfc6455_encoding() {
        let f = Frame::text(b"4hello");
        assert_eq!(&f.wire()[..], b"\x81\x064hello");
        assert_eq!(f.payload(), b"4hello");
        assert!(!f.is_binary());
        let big = vec![7u8; 300];
        let f = Frame::binary(&big);
        assert_eq!(&f.wire()[..4], &[0x82, 126, 1, 44]);
        assert_eq!(f.payload(), &big[..]);
        let huge = vec![1u8; 70_000];
        let f = Frame::binary(&huge);
        assert_eq!(f.wire()[1], 127);
        assert_eq!(f.payload().len(), 70_000);
    }
}
