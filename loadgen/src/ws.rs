//! A minimal WebSocket client connection carrying Engine.IO v4 / Socket.IO v5 text packets.
//!
//! It does only what the load generator needs, as cheaply as possible: dial from a chosen
//! loopback source address, upgrade `GET <path>?EIO=4&transport=websocket`, then read whole
//! frames out of one reusable per-connection buffer (many frames per `read` syscall when the
//! server is ahead) and write masked text frames. An idle connection costs its socket, its task
//! and a small read buffer, so one process holds 19,000 of them.
//!
//! Invariants: frames are parsed in place, never copied; a server frame that is fragmented,
//! masked or larger than [`MAX_FRAME`] is an error (the servers measured never send one); the
//! Engine.IO ping (`2`) and the WebSocket ping are answered inside [`Conn::next`], so every
//! caller keeps its session alive by reading.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Largest server frame accepted, in bytes.
pub const MAX_FRAME: usize = 1 << 20;
/// Initial read buffer per connection.
const READ_BUF: usize = 4096;
/// The RFC 6455 sample key and the accept value a correct server derives from it.
const WS_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const WS_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// Where connections go and which source addresses they come from.
#[derive(Debug)]
pub struct Target {
    /// The server's client address.
    pub addr: SocketAddr,
    /// The Socket.IO path, like `/socket.io/`.
    pub path: String,
    /// Number of loopback source addresses to rotate through (127.0.0.1 ..= 127.0.0.N).
    pub sources: u8,
    next_source: AtomicUsize,
}

impl Target {
    /// A target dialled from `sources` rotating loopback addresses.
    pub fn new(addr: SocketAddr, path: String, sources: u8) -> Self {
        Target { addr, path, sources: sources.max(1), next_source: AtomicUsize::new(0) }
    }

    fn source(&self) -> IpAddr {
        let n = self.next_source.fetch_add(1, Ordering::Relaxed) % self.sources as usize;
        IpAddr::from([127, 0, 0, 1 + n as u8])
    }
}

/// One data frame taken out of the read buffer: where its payload lies.
#[derive(Debug, Clone)]
pub struct Frame {
    range: Range<usize>,
}

/// An open WebSocket connection.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    wbuf: Vec<u8>,
    mask_seed: u32,
}

static MASK_SEED: AtomicU32 = AtomicU32::new(0x9e37_79b9);

impl Conn {
    /// Dial the target from the next source address and complete the WebSocket upgrade.
    pub async fn open(target: &Target) -> io::Result<Conn> {
        let socket = TcpSocket::new_v4()?;
        // TIME_WAIT entries from earlier runs must not block the bind.
        socket.set_reuseaddr(true)?;
        socket.bind(SocketAddr::new(target.source(), 0))?;
        let stream = socket.connect(target.addr).await?;
        stream.set_nodelay(true)?;
        let mut conn = Conn {
            stream,
            buf: vec![0; READ_BUF],
            start: 0,
            end: 0,
            wbuf: Vec::new(),
            mask_seed: MASK_SEED.fetch_add(0x6d2b_79f5, Ordering::Relaxed),
        };
        let request = format!(
            "GET {}?EIO=4&transport=websocket HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n",
            target.path, target.addr
        );
        conn.stream.write_all(request.as_bytes()).await?;
        let head_end = loop {
            if let Some(i) = find(&conn.buf[..conn.end], b"\r\n\r\n") {
                break i + 4;
            }
            if conn.end == conn.buf.len() {
                return Err(bad("upgrade response head too large"));
            }
            conn.fill().await?;
        };
        let head = String::from_utf8_lossy(&conn.buf[..head_end]);
        if !head.starts_with("HTTP/1.1 101") {
            let line = head.lines().next().unwrap_or("").to_string();
            return Err(bad(&format!("upgrade refused: {line}")));
        }
        if !head.lines().any(|l| {
            l.split_once(':')
                .is_some_and(|(k, v)| k.eq_ignore_ascii_case("sec-websocket-accept") && v.trim() == WS_ACCEPT)
        }) {
            return Err(bad("upgrade response without the right Sec-WebSocket-Accept"));
        }
        conn.start = head_end;
        Ok(conn)
    }

    /// Open a connection and join the namespace `/`: wait for the Engine.IO open packet, send
    /// `40`, and wait for the CONNECT reply `40{"sid":…}`. Returns the connection and the
    /// Socket.IO sid.
    pub async fn socketio(target: &Target) -> io::Result<(Conn, String)> {
        let mut conn = Conn::open(target).await?;
        loop {
            let f = conn.next().await?;
            if conn.text(&f).starts_with(b"0{") {
                break;
            }
        }
        conn.send_text(b"40").await?;
        loop {
            let f = conn.next().await?;
            let t = conn.text(&f);
            if t.starts_with(b"40{") {
                let sid = json_str_field(t, b"\"sid\":\"").unwrap_or_default();
                return Ok((conn, sid));
            }
            if t.starts_with(b"44") {
                return Err(bad(&format!("CONNECT_ERROR {}", String::from_utf8_lossy(t))));
            }
        }
    }

    /// The payload of a frame returned by [`Conn::next`] or [`Conn::try_next`]; valid until the
    /// next read.
    pub fn text(&self, f: &Frame) -> &[u8] {
        &self.buf[f.range.clone()]
    }

    /// Read more bytes from the socket into the buffer. Cancel-safe.
    pub async fn fill(&mut self) -> io::Result<()> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                let len = self.buf.len() * 2;
                self.buf.resize(len, 0);
            }
        }
        let n = self.stream.read(&mut self.buf[self.end..]).await?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "server closed the connection"));
        }
        self.end += n;
        Ok(())
    }

    /// Take the next complete data frame already in the buffer, answering pings on the way.
    /// `Ok(None)` means more bytes are needed ([`Conn::fill`]).
    pub async fn try_next(&mut self) -> io::Result<Option<Frame>> {
        loop {
            let avail = &self.buf[self.start..self.end];
            if avail.len() < 2 {
                return Ok(None);
            }
            let fin = avail[0] & 0x80 != 0;
            let opcode = avail[0] & 0x0f;
            if avail[1] & 0x80 != 0 {
                return Err(bad("masked server frame"));
            }
            let (len, hdr) = match avail[1] & 0x7f {
                126 if avail.len() >= 4 => (u16::from_be_bytes([avail[2], avail[3]]) as usize, 4),
                127 if avail.len() >= 10 => {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&avail[2..10]);
                    (u64::from_be_bytes(b) as usize, 10)
                }
                126 | 127 => return Ok(None),
                n => (n as usize, 2),
            };
            if len > MAX_FRAME {
                return Err(bad("server frame larger than MAX_FRAME"));
            }
            if avail.len() < hdr + len {
                if self.start + hdr + len > self.buf.len() {
                    // Make room for the whole frame before the next fill.
                    self.buf.copy_within(self.start..self.end, 0);
                    self.end -= self.start;
                    self.start = 0;
                    if hdr + len > self.buf.len() {
                        self.buf.resize((hdr + len).next_power_of_two(), 0);
                    }
                }
                return Ok(None);
            }
            if !fin || opcode == 0 {
                return Err(bad("fragmented server frame"));
            }
            let range = self.start + hdr..self.start + hdr + len;
            self.start += hdr + len;
            match opcode {
                1 | 2 => {
                    if self.buf[range.clone()] == *b"2" {
                        self.send_text(b"3").await?;
                        continue;
                    }
                    return Ok(Some(Frame { range }));
                }
                8 => return Err(io::Error::new(io::ErrorKind::ConnectionAborted, "server sent close")),
                9 => {
                    let payload = self.buf[range].to_vec();
                    self.send_frame(0x8a, &payload).await?;
                }
                _ => {}
            }
        }
    }

    /// Wait for the next data frame.
    pub async fn next(&mut self) -> io::Result<Frame> {
        loop {
            if let Some(f) = self.try_next().await? {
                return Ok(f);
            }
            self.fill().await?;
        }
    }

    /// Send one text frame.
    pub async fn send_text(&mut self, payload: &[u8]) -> io::Result<()> {
        self.send_frame(0x81, payload).await
    }

    async fn flush(&mut self) -> io::Result<()> {
        let r = self.stream.write_all(&self.wbuf).await;
        self.wbuf.clear();
        r
    }

    /// Send a close frame (status 1000) and shut the socket down.
    pub async fn close(mut self) -> io::Result<()> {
        self.send_frame(0x88, &1000u16.to_be_bytes()).await?;
        self.stream.shutdown().await
    }

    async fn send_frame(&mut self, first: u8, payload: &[u8]) -> io::Result<()> {
        self.encode(first, payload);
        self.flush().await
    }

    fn encode(&mut self, first: u8, payload: &[u8]) {
        // xorshift: masks need not be secret here, only present (RFC 6455 5.3).
        let mut x = self.mask_seed;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.mask_seed = x;
        let mask = x.to_be_bytes();
        let w = &mut self.wbuf;
        w.push(first);
        match payload.len() {
            n if n < 126 => w.push(0x80 | n as u8),
            n if n < 65536 => {
                w.push(0x80 | 126);
                w.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                w.push(0x80 | 127);
                w.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        w.extend_from_slice(&mask);
        w.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The string value following `key` (which includes the opening quote) in a JSON text.
fn json_str_field(text: &[u8], key: &[u8]) -> Option<String> {
    let at = find(text, key)? + key.len();
    let len = text[at..].iter().position(|&b| b == b'"')?;
    Some(String::from_utf8_lossy(&text[at..at + len]).into_owned())
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

/// Parse the decimal number at the start of `s`, returning it and the bytes after it.
pub fn parse_u64(s: &[u8]) -> Option<(u64, &[u8])> {
    let digits = s.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 19 {
        return None;
    }
    let n = s[..digits].iter().fold(0u64, |n, &b| n * 10 + (b - b'0') as u64);
    Some((n, &s[digits..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_leading_numbers() {
        assert_eq!(parse_u64(b"123,4]"), Some((123, &b",4]"[..])));
        assert_eq!(parse_u64(b"x"), None);
    }

    #[test]
    fn finds_the_sid() {
        assert_eq!(json_str_field(br#"40{"sid":"abc"}"#, b"\"sid\":\""), Some("abc".into()));
    }
}
