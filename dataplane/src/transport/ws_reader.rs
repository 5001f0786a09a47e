//! The server side of RFC 6455 framing as a pure state machine: feed it the bytes a client
//! sent, get back messages and control frames. No I/O, no clock, no tokio; the WebSocket task
//! (`websocket.rs`) only moves bytes between the socket and this reader.
//!
//! What it enforces (each violation is a `ReadError` carrying the close code to answer with):
//! - every client frame is masked, RSV bits are clear (no extension is negotiated), opcodes are
//!   the six of the RFC;
//! - control frames are final and at most 125 bytes, and may arrive between the fragments of a
//!   message; a Close payload is empty or a status code that may be sent, plus UTF-8;
//! - a message's fragments follow each other (no new message inside one, no stray continuation);
//! - text is UTF-8, checked as the bytes arrive, across fragment boundaries (so a bad byte fails
//!   the connection at once, not at the end of a long message);
//! - no frame and no reassembled message exceeds `max_message` bytes, judged from the frame
//!   header before a byte of its payload is buffered.
//!
//! Invariants: a reader that is not in the middle of a frame or a fragmented message holds no
//! heap memory (idle connections pay for a few words); what it buffers is at most twice what
//! arrived, whatever a header announced; a complete, unfragmented frame that
//! arrives in one read is unmasked in place and handed out borrowed, never copied; after a
//! Close frame or an error the reader yields nothing more; the events do not depend on how the
//! input was split into reads.

use std::borrow::Cow;
use std::fmt;

/// The opcodes of RFC 6455 §5.2 (the other ten values are reserved and refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpCode {
    /// A further fragment of the current message.
    Continuation,
    /// A text message (UTF-8).
    Text,
    /// A binary message.
    Binary,
    /// The closing handshake.
    Close,
    /// A ping; the peer expects a pong with the same payload.
    Ping,
    /// A pong.
    Pong,
}

impl OpCode {
    /// The opcode in the low nibble of a frame's first byte, if it is a defined one.
    pub fn from_bits(bits: u8) -> Option<OpCode> {
        Some(match bits {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            _ => return None,
        })
    }

    /// The wire value.
    pub fn bits(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    /// Close, ping and pong.
    pub fn is_control(self) -> bool {
        matches!(self, OpCode::Close | OpCode::Ping | OpCode::Pong)
    }
}

/// A Close frame's status code and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame<'a> {
    /// The status code (one that may be sent, see `is_sendable_close_code`).
    pub code: u16,
    /// The reason (UTF-8, at most 123 bytes).
    pub reason: Cow<'a, str>,
}

/// What a client sent. Borrowed variants point into the bytes given to `Reader::feed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<'a> {
    /// A complete text message.
    Text(Cow<'a, str>),
    /// A complete binary message.
    Binary(Cow<'a, [u8]>),
    /// A ping (answer with a pong carrying the same payload).
    Ping(Cow<'a, [u8]>),
    /// A pong.
    Pong(Cow<'a, [u8]>),
    /// The client started the closing handshake; `None` when its frame carried no status code.
    Close(Option<CloseFrame<'a>>),
}

/// Whether `code` may appear in a Close frame (RFC 6455 §7.4: 1000–1003, 1007–1014 of the IANA
/// registry, and 3000–4999 for libraries and applications; 1004–1006 and 1015 are never sent).
pub fn is_sendable_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// Why the client's byte stream is not acceptable; the connection must be failed.
///
/// Opaque on purpose: callers need the close code to answer with and, for metrics, whether
/// it was a size or an encoding problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadError {
    kind: ErrorKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
enum ErrorKind {
    #[error("reserved bits set without a negotiated extension")]
    Reserved,
    #[error("reserved opcode {0:#x}")]
    UnknownOpcode(u8),
    #[error("unmasked client frame")]
    Unmasked,
    #[error("fragmented control frame")]
    FragmentedControl,
    #[error("control frame longer than 125 bytes")]
    ControlTooLong,
    #[error("64-bit payload length with the most significant bit set")]
    BadLength,
    #[error("continuation frame without a message to continue")]
    StrayContinuation,
    #[error("new message before the fragmented one ended")]
    Interleaved,
    #[error("close frame with a 1-byte payload")]
    CloseTooShort,
    #[error("close code {0} may not be sent")]
    BadCloseCode(u16),
    #[error("invalid UTF-8 in a text message or close reason")]
    InvalidUtf8,
    #[error("message of at least {size} bytes is over the {limit}-byte limit")]
    TooLarge { size: u64, limit: usize },
}

impl ReadError {
    fn new(kind: ErrorKind) -> Self {
        ReadError { kind }
    }

    /// The close code to fail the connection with: 1009 for size, 1007 for encoding, 1002
    /// for every other protocol violation.
    pub fn close_code(&self) -> u16 {
        match self.kind {
            ErrorKind::TooLarge { .. } => 1009,
            ErrorKind::InvalidUtf8 => 1007,
            _ => 1002,
        }
    }

    /// A frame or message over the size limit.
    pub fn is_too_large(&self) -> bool {
        matches!(self.kind, ErrorKind::TooLarge { .. })
    }

    /// Text that is not UTF-8.
    pub fn is_invalid_utf8(&self) -> bool {
        self.kind == ErrorKind::InvalidUtf8
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.kind.fmt(f)
    }
}

impl std::error::Error for ReadError {}

/// Longest frame header: 2 bytes, 8 of extended length, 4 of mask.
const MAX_HEAD: usize = 14;

/// A parsed frame header.
#[derive(Debug, Clone, Copy)]
struct Head {
    fin: bool,
    opcode: OpCode,
    mask: [u8; 4],
    len: usize,
}

/// A data message being assembled.
struct Message {
    /// `Text` or `Binary`.
    kind: OpCode,
    data: Vec<u8>,
    /// For text: `data[..checked]` is known to be valid UTF-8.
    checked: usize,
}

/// Everything kept between reads. Boxed and present only while needed.
#[derive(Default)]
struct Partial {
    /// The start of a header that has not fully arrived.
    head: [u8; MAX_HEAD],
    head_len: usize,
    /// The frame whose payload is arriving, and how much of it has.
    frame: Option<(Head, usize)>,
    /// A fragmented message, or an unfragmented one whose frame spans reads.
    message: Option<Message>,
    /// The payload of a control frame that spans reads.
    control: Vec<u8>,
}

impl Partial {
    fn is_empty(&self) -> bool {
        self.head_len == 0 && self.frame.is_none() && self.message.is_none()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    /// A Close frame was read.
    Closed,
    /// An error was returned.
    Failed,
}

/// The incremental reader of one client connection.
pub struct Reader {
    max_message: usize,
    state: State,
    partial: Option<Box<Partial>>,
}

impl Reader {
    /// A reader refusing frames and messages over `max_message` bytes.
    pub fn new(max_message: usize) -> Self {
        Reader { max_message, state: State::Open, partial: None }
    }

    /// Read the events in `input` (which is unmasked in place). Drain the iterator: bytes of a
    /// frame that is not complete yet are kept for the next call; the iterator ends when the
    /// input is used up, after a Close event, or after an error.
    pub fn feed<'r, 'a>(&'r mut self, input: &'a mut [u8]) -> Feed<'r, 'a> {
        Feed { reader: self, input }
    }

    /// Whether the reader holds buffered state (a partial frame or a fragmented message).
    pub fn holds_buffers(&self) -> bool {
        self.partial.is_some()
    }

    /// Whether a Close frame was read or an error returned: nothing more will be read.
    pub fn is_done(&self) -> bool {
        self.state != State::Open
    }

    fn partial(&mut self) -> &mut Partial {
        self.partial.get_or_insert_with(Box::default)
    }

    fn in_message(&self) -> bool {
        self.partial.as_ref().is_some_and(|p| p.message.is_some())
    }

    /// Drop the box once nothing is pending (idle connections hold no heap memory).
    fn tidy(&mut self) {
        if self.partial.as_ref().is_some_and(|p| p.is_empty()) {
            self.partial = None;
        }
    }

    /// Validate the first two header bytes, as soon as they are known.
    fn check_start(&self, b0: u8, b1: u8) -> Result<(), ReadError> {
        if b0 & 0x70 != 0 {
            return Err(ReadError::new(ErrorKind::Reserved));
        }
        let Some(opcode) = OpCode::from_bits(b0 & 0x0f) else {
            return Err(ReadError::new(ErrorKind::UnknownOpcode(b0 & 0x0f)));
        };
        if b1 & 0x80 == 0 {
            return Err(ReadError::new(ErrorKind::Unmasked));
        }
        if opcode.is_control() {
            if b0 & 0x80 == 0 {
                return Err(ReadError::new(ErrorKind::FragmentedControl));
            }
            if b1 & 0x7f > 125 {
                return Err(ReadError::new(ErrorKind::ControlTooLong));
            }
        }
        match (opcode, self.in_message()) {
            (OpCode::Continuation, false) => Err(ReadError::new(ErrorKind::StrayContinuation)),
            (OpCode::Text | OpCode::Binary, true) => Err(ReadError::new(ErrorKind::Interleaved)),
            _ => Ok(()),
        }
    }

    /// Check the announced payload length (known once `2 + ext` header bytes are in) against
    /// the limit and what the message already holds.
    fn check_len(&self, h: &[u8]) -> Result<(), ReadError> {
        let len = announced_len(h);
        if len >> 63 != 0 {
            return Err(ReadError::new(ErrorKind::BadLength));
        }
        let opcode = OpCode::from_bits(h[0] & 0x0f);
        if opcode.is_some_and(OpCode::is_control) {
            return Ok(()); // at most 125, checked by `check_start`
        }
        let so_far = match opcode {
            Some(OpCode::Continuation) => {
                self.partial.as_ref().and_then(|p| p.message.as_ref()).map_or(0, |m| m.data.len())
            }
            _ => 0,
        };
        let size = so_far as u64 + len;
        if size > self.max_message as u64 {
            return Err(ReadError::new(ErrorKind::TooLarge { size, limit: self.max_message }));
        }
        Ok(())
    }

    /// Parse a complete header that passed `check_start` and `check_len`.
    fn parse_head(&self, h: &[u8]) -> Head {
        let m = len_end(h[1]);
        Head {
            fin: h[0] & 0x80 != 0,
            // `check_start` accepted the opcode.
            opcode: OpCode::from_bits(h[0] & 0x0f).unwrap_or(OpCode::Close),
            mask: [h[m], h[m + 1], h[m + 2], h[m + 3]],
            // `check_len` bounded it by `max_message` (data) or 125 (control): fits.
            len: announced_len(h) as usize,
        }
    }

    /// Take the next frame header from the held bytes and `input`; `None` until it is complete.
    /// Each check runs as soon as the bytes it needs are in: a frame over the limit is refused
    /// from its length field, before its mask arrives.
    fn take_head(&mut self, input: &mut &mut [u8]) -> Result<Option<Head>, ReadError> {
        let held = self.partial.as_ref().map_or(0, |p| p.head_len);
        if held == 0 {
            if input.is_empty() {
                return Ok(None);
            }
            if input.len() >= 2 {
                self.check_start(input[0], input[1])?;
                if input.len() >= len_end(input[1]) {
                    self.check_len(input)?;
                }
                if input.len() >= head_len(input[1]) {
                    let head = self.parse_head(input);
                    advance(input, head_len(input[1]));
                    return Ok(Some(head));
                }
            }
            // Less than a header (at most 13 bytes): keep it.
            let p = self.partial();
            p.head[..input.len()].copy_from_slice(input);
            p.head_len = input.len();
            advance(input, input.len());
            return Ok(None);
        }
        let mut head = [0u8; MAX_HEAD];
        loop {
            let p = self.partial();
            let have = p.head_len;
            let want = if have < 2 { 2 } else { head_len(p.head[1]) };
            if have == want {
                break;
            }
            if input.is_empty() {
                return Ok(None);
            }
            let n = (want - have).min(input.len());
            p.head[have..have + n].copy_from_slice(&input[..n]);
            p.head_len += n;
            advance(input, n);
            let now = p.head_len;
            head[..now].copy_from_slice(&p.head[..now]);
            if have < 2 && now >= 2 {
                self.check_start(head[0], head[1])?;
            }
            if now >= 2 && have < len_end(head[1]) && now >= len_end(head[1]) {
                self.check_len(&head[..now])?;
            }
        }
        let p = self.partial();
        let len = std::mem::replace(&mut p.head_len, 0);
        head[..len].copy_from_slice(&p.head[..len]);
        Ok(Some(self.parse_head(&head[..len])))
    }

    /// One step: the next event, `Ok(None)` when the input is used up.
    fn step<'a>(&mut self, input: &mut &'a mut [u8]) -> Result<Option<Event<'a>>, ReadError> {
        loop {
            let pending = self.partial.as_mut().and_then(|p| p.frame.take());
            let (head, got) = match pending {
                Some(f) => f,
                None => match self.take_head(input)? {
                    Some(h) => (h, 0),
                    None => return Ok(None),
                },
            };
            // Fast path: the whole payload is here and nothing of it is held.
            if got == 0 && input.len() >= head.len {
                let payload = split_front(input, head.len);
                unmask(payload, head.mask, 0);
                if let Some(event) = self.complete(head, Cow::Borrowed(payload))? {
                    return Ok(Some(event));
                }
                continue;
            }
            // Slow path: take what is here into the right buffer.
            let n = (head.len - got).min(input.len());
            if n == 0 {
                self.partial().frame = Some((head, got));
                return Ok(None);
            }
            let chunk = split_front(input, n);
            unmask(chunk, head.mask, got);
            if head.opcode.is_control() {
                let p = self.partial();
                if got == 0 {
                    p.control = Vec::with_capacity(head.len);
                }
                p.control.extend_from_slice(chunk);
            } else {
                self.append(head, got == 0, chunk)?;
            }
            let got = got + n;
            if got < head.len {
                self.partial().frame = Some((head, got));
                return Ok(None);
            }
            let event = if head.opcode.is_control() {
                let payload = std::mem::take(&mut self.partial().control);
                self.control(head.opcode, Cow::Owned(payload))?
            } else if head.fin {
                Some(self.finish_message()?)
            } else {
                None
            };
            if let Some(event) = event {
                return Ok(Some(event));
            }
        }
    }

    /// A frame's payload is complete (`payload` is all of it, unmasked).
    fn complete<'a>(&mut self, head: Head, payload: Cow<'a, [u8]>) -> Result<Option<Event<'a>>, ReadError> {
        if head.opcode.is_control() {
            return self.control(head.opcode, payload);
        }
        if head.fin && head.opcode != OpCode::Continuation {
            // A whole message in one frame.
            return match head.opcode {
                OpCode::Text => match payload {
                    Cow::Borrowed(b) => std::str::from_utf8(b)
                        .map(|s| Some(Event::Text(Cow::Borrowed(s))))
                        .map_err(|_| ReadError::new(ErrorKind::InvalidUtf8)),
                    Cow::Owned(v) => String::from_utf8(v)
                        .map(|s| Some(Event::Text(Cow::Owned(s))))
                        .map_err(|_| ReadError::new(ErrorKind::InvalidUtf8)),
                },
                _ => Ok(Some(Event::Binary(payload))),
            };
        }
        self.append(head, true, &payload)?;
        if head.fin {
            return self.finish_message().map(Some);
        }
        Ok(None)
    }

    /// Add fragment bytes to the message (`first`: the frame's first bytes).
    fn append(&mut self, head: Head, first: bool, bytes: &[u8]) -> Result<(), ReadError> {
        let p = self.partial();
        let starts = first && head.opcode != OpCode::Continuation;
        let m = match &mut p.message {
            Some(m) if !starts => m,
            slot => slot.insert(Message { kind: head.opcode, data: Vec::new(), checked: 0 }),
        };
        // Memory follows the bytes that arrived, never the length a header announced: a
        // client announcing `max_message` and sending one byte must not cost `max_message`.
        // `extend_from_slice` grows amortized, so many small reads stay linear.
        m.data.extend_from_slice(bytes);
        if m.kind == OpCode::Text {
            match std::str::from_utf8(&m.data[m.checked..]) {
                Ok(_) => m.checked = m.data.len(),
                // An incomplete sequence at the end may be completed by the next bytes.
                Err(e) if e.error_len().is_none() => m.checked += e.valid_up_to(),
                Err(_) => return Err(ReadError::new(ErrorKind::InvalidUtf8)),
            }
        }
        Ok(())
    }

    fn finish_message<'a>(&mut self) -> Result<Event<'a>, ReadError> {
        let Some(m) = self.partial.as_mut().and_then(|p| p.message.take()) else {
            // `append` always leaves a message; treat a missing one as an empty binary.
            return Ok(Event::Binary(Cow::Owned(Vec::new())));
        };
        match m.kind {
            OpCode::Text => String::from_utf8(m.data)
                .map(|s| Event::Text(Cow::Owned(s)))
                .map_err(|_| ReadError::new(ErrorKind::InvalidUtf8)),
            _ => Ok(Event::Binary(Cow::Owned(m.data))),
        }
    }

    fn control<'a>(
        &mut self,
        opcode: OpCode,
        payload: Cow<'a, [u8]>,
    ) -> Result<Option<Event<'a>>, ReadError> {
        Ok(Some(match opcode {
            OpCode::Ping => Event::Ping(payload),
            OpCode::Pong => Event::Pong(payload),
            _ => {
                let close = parse_close(payload)?;
                self.state = State::Closed;
                Event::Close(close)
            }
        }))
    }
}

fn parse_close(payload: Cow<'_, [u8]>) -> Result<Option<CloseFrame<'_>>, ReadError> {
    match payload.len() {
        0 => return Ok(None),
        1 => return Err(ReadError::new(ErrorKind::CloseTooShort)),
        _ => {}
    }
    let code = u16::from_be_bytes([payload[0], payload[1]]);
    if !is_sendable_close_code(code) {
        return Err(ReadError::new(ErrorKind::BadCloseCode(code)));
    }
    let bad = |_| ReadError::new(ErrorKind::InvalidUtf8);
    let reason = match payload {
        Cow::Borrowed(b) => Cow::Borrowed(std::str::from_utf8(&b[2..]).map_err(bad)?),
        Cow::Owned(mut v) => {
            v.drain(..2);
            Cow::Owned(String::from_utf8(v).map_err(|_| ReadError::new(ErrorKind::InvalidUtf8))?)
        }
    };
    Ok(Some(CloseFrame { code, reason }))
}

/// Where the length field ends (and the mask starts), from the second header byte.
fn len_end(b1: u8) -> usize {
    2 + match b1 & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    }
}

/// The header length of a masked frame, from its second byte.
fn head_len(b1: u8) -> usize {
    len_end(b1) + 4
}

/// The payload length in a header holding at least `len_end(h[1])` bytes.
fn announced_len(h: &[u8]) -> u64 {
    match h[1] & 0x7f {
        126 => u64::from(u16::from_be_bytes([h[2], h[3]])),
        127 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&h[2..10]);
            u64::from_be_bytes(b)
        }
        n => u64::from(n),
    }
}

fn advance(input: &mut &mut [u8], n: usize) {
    let rest = std::mem::take(input);
    *input = &mut rest[n..];
}

fn split_front<'a>(input: &mut &'a mut [u8], n: usize) -> &'a mut [u8] {
    let (front, rest) = std::mem::take(input).split_at_mut(n);
    *input = rest;
    front
}

/// Unmask `data`, the bytes of a payload starting at payload offset `offset`.
pub fn unmask(data: &mut [u8], mask: [u8; 4], offset: usize) {
    let m = [mask[offset & 3], mask[(offset + 1) & 3], mask[(offset + 2) & 3], mask[(offset + 3) & 3]];
    let wide = u64::from_ne_bytes([m[0], m[1], m[2], m[3], m[0], m[1], m[2], m[3]]);
    let mut chunks = data.chunks_exact_mut(8);
    for c in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(c);
        c.copy_from_slice(&(u64::from_ne_bytes(word) ^ wide).to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= m[i & 3];
    }
}

/// The events of one `Reader::feed` call.
pub struct Feed<'r, 'a> {
    reader: &'r mut Reader,
    input: &'a mut [u8],
}

impl<'a> Iterator for Feed<'_, 'a> {
    type Item = Result<Event<'a>, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.reader.state != State::Open {
            return None;
        }
        let result = self.reader.step(&mut self.input);
        match result {
            Ok(Some(event)) => {
                if self.reader.state != State::Open {
                    self.reader.partial = None;
                }
                Some(Ok(event))
            }
            Ok(None) => {
                self.reader.tidy();
                None
            }
            Err(e) => {
                self.reader.state = State::Failed;
                self.reader.partial = None;
                Some(Err(e))
            }
        }
    }
}

impl Drop for Feed<'_, '_> {
    fn drop(&mut self) {
        self.reader.tidy();
    }
}

#[cfg(test)]
#[path = "ws_reader_tests.rs"]
mod tests;
