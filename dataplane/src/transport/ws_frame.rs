//! Parsing client WebSocket frame headers (RFC 6455 §5.2): pure, bounded, fuzzable.

/// A parsed client frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// FIN bit.
    pub fin: bool,
    /// Opcode (0 continuation, 1 text, 2 binary, 8 close, 9 ping, 10 pong).
    pub opcode: u8,
    /// The masking key.
    pub mask: [u8; 4],
    /// Header length in bytes (payload starts here).
    pub header_len: usize,
    /// Payload length in bytes.
    pub payload_len: usize,
}

/// Why a frame is refused (the connection must close).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// RSV bits set (no extension was negotiated).
    #[error("reserved bits set")]
    Reserved,
    /// Clients must mask every frame.
    #[error("unmasked client frame")]
    Unmasked,
    /// A control frame longer than 125 bytes or fragmented.
    #[error("bad control frame")]
    BadControl,
    /// Opcode 3-7 or 11-15.
    #[error("unknown opcode")]
    UnknownOpcode,
    /// The payload is larger than allowed.
    #[error("frame larger than maxPayload")]
    TooLarge,
}

/// Parse the header at the start of `buf`. `Ok(None)` means more bytes are needed; the
/// payload length is checked against `max_payload` before anything is buffered.
pub fn parse(buf: &[u8], max_payload: u64) -> Result<Option<Head>, FrameError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let (b0, b1) = (buf[0], buf[1]);
    let (fin, opcode) = (b0 & 0x80 != 0, b0 & 0x0f);
    if b0 & 0x70 != 0 {
        return Err(FrameError::Reserved);
    }
    if !matches!(opcode, 0x0..=0x2 | 0x8..=0xA) {
        return Err(FrameError::UnknownOpcode);
    }
    if b1 & 0x80 == 0 {
        return Err(FrameError::Unmasked);
    }
    let (len, ext) = match b1 & 0x7f {
        126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as u64, 2),
        127 if buf.len() >= 10 => {
            (u64::from_be_bytes([buf[2], buf[3], buf[4], buf[5], buf[6], buf[7], buf[8], buf[9]]), 8)
        }
        126 | 127 => return Ok(None),
        n => (n as u64, 0),
    };
    if opcode >= 0x8 && (len > 125 || !fin) {
        return Err(FrameError::BadControl);
    }
    if len > max_payload {
        return Err(FrameError::TooLarge);
    }
    let header_len = 2 + ext + 4;
    if buf.len() < header_len {
        return Ok(None);
    }
    let mask = [buf[header_len - 4], buf[header_len - 3], buf[header_len - 2], buf[header_len - 1]];
    Ok(Some(Head { fin, opcode, mask, header_len, payload_len: len as usize }))
}

/// Unmask a payload in place.
pub fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    for (i, b) in payload.iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_rfc6455_examples() {
        // RFC 6455 §5.7: a masked "Hello".
        let mut frame = vec![0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
        let h = parse(&frame, 100).unwrap().unwrap();
        assert_eq!((h.fin, h.opcode, h.header_len, h.payload_len), (true, 1, 6, 5));
        unmask(&mut frame[6..], h.mask);
        assert_eq!(&frame[6..], b"Hello");
        assert_eq!(parse(&frame[..1], 100), Ok(None));
        assert_eq!(parse(&frame[..5], 100), Ok(None));
    }

    #[test]
    fn refuses_bad_frames_before_buffering() {
        assert_eq!(parse(&[0x81, 0x05], 100), Err(FrameError::Unmasked));
        assert_eq!(parse(&[0xC1, 0x80], 100), Err(FrameError::Reserved));
        assert_eq!(parse(&[0x83, 0x80], 100), Err(FrameError::UnknownOpcode));
        assert_eq!(parse(&[0x09, 0x80], 100), Err(FrameError::BadControl));
        assert_eq!(parse(&[0x89, 0xFE, 0, 200], 1000), Err(FrameError::BadControl));
        // A 2^63-byte frame is refused from its first 10 bytes.
        assert_eq!(
            parse(&[0x82, 0xFF, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 1 << 20),
            Err(FrameError::TooLarge)
        );
        let h = parse(&[0x82, 0xFE, 0x01, 0x00, 1, 2, 3, 4], 1000).unwrap().unwrap();
        assert_eq!((h.header_len, h.payload_len), (8, 256));
    }

    proptest! {
        #[test]
        fn never_panics_and_respects_the_limit(bytes in proptest::collection::vec(any::<u8>(), 0..32), max in 0u64..70000) {
            if let Ok(Some(h)) = parse(&bytes, max) {
                prop_assert!(h.payload_len as u64 <= max);
                prop_assert!(h.header_len <= bytes.len());
            }
        }
    }
}
