//! Socket.IO v5 packets the scenarios send and recognise, and the shared setup helpers.
//!
//! Packets are written as literal text (`42<id>["event",…]`) and recognised by prefix, so the
//! hot paths neither allocate a JSON tree nor parse one. Setup opens many sessions with bounded
//! concurrency, each optionally joining a room through the `hub:join` convention.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use tokio::sync::{mpsc, Semaphore};

use crate::ws::{parse_u64, Conn, Target};

/// The ack id of an ACK packet (`43<id>[…]` in namespace `/`) and the rest of the packet.
pub fn ack_id(text: &[u8]) -> Option<(u64, &[u8])> {
    parse_u64(text.strip_prefix(b"43")?)
}

/// Emit `event` with JSON `args` (already encoded, comma-separated) and ack id `id`, then wait
/// for the ACK; returns its text. Frames read meanwhile are dropped.
pub async fn request(conn: &mut Conn, id: u64, event: &str, args: &str) -> io::Result<Vec<u8>> {
    let packet = format!("42{id}[\"{event}\",{args}]");
    conn.send_text(packet.as_bytes()).await?;
    loop {
        let f = conn.next().await?;
        let t = conn.text(&f);
        if ack_id(t).is_some_and(|(got, _)| got == id) {
            return Ok(t.to_vec());
        }
    }
}

/// Join `room` with `hub:join` and check the `{"ok":true}` ack.
pub async fn join(conn: &mut Conn, room: &str) -> io::Result<()> {
    let reply = request(conn, 0, "hub:join", &format!("\"{room}\"")).await?;
    if reply.windows(9).any(|w| w == b"\"ok\":true") {
        Ok(())
    } else {
        let msg = format!("hub:join refused: {}", String::from_utf8_lossy(&reply));
        Err(io::Error::new(io::ErrorKind::PermissionDenied, msg))
    }
}

/// What [`open_many`] ended with.
pub struct Opened {
    /// The sessions opened, each with its index.
    pub conns: Vec<(usize, Conn)>,
    /// How many failed.
    pub failed: usize,
    /// The first failure, for the report.
    pub first_error: Option<String>,
}

/// Open `n` Socket.IO sessions, at most `concurrency` handshakes at a time; session `i` joins
/// the room `room(i)` when one is given. Must run inside a `LocalSet`.
pub async fn open_many(
    target: Rc<Target>,
    n: usize,
    concurrency: usize,
    room: Option<Rc<dyn Fn(usize) -> String>>,
    timeout: Duration,
) -> Opened {
    let sem = Rc::new(Semaphore::new(concurrency.max(1)));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let first_error = Rc::new(RefCell::new(None));
    for i in 0..n {
        let (sem, tx, target, room) = (sem.clone(), tx.clone(), target.clone(), room.clone());
        tokio::task::spawn_local(async move {
            let Ok(_permit) = sem.acquire().await else { return };
            let opened = async {
                let (mut conn, _sid) = Conn::socketio(&target).await?;
                if let Some(room) = room {
                    join(&mut conn, &room(i)).await?;
                }
                Ok::<_, io::Error>(conn)
            };
            let r = tokio::time::timeout(timeout, opened)
                .await
                .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "setup timed out")));
            let _ = tx.send((i, r));
        });
    }
    drop(tx);
    let mut out = Opened { conns: Vec::with_capacity(n), failed: 0, first_error: None };
    while let Some((i, r)) = rx.recv().await {
        match r {
            Ok(c) => out.conns.push((i, c)),
            Err(e) => {
                out.failed += 1;
                first_error.borrow_mut().get_or_insert(e.to_string());
            }
        }
    }
    out.first_error = first_error.borrow_mut().take();
    out
}

/// Keep a session alive (answering pings) until the server closes it or the task is dropped.
pub async fn hold(mut conn: Conn) {
    while conn.next().await.is_ok() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ack_ids() {
        assert_eq!(ack_id(b"4312[{\"ok\":true}]"), Some((12, &b"[{\"ok\":true}]"[..])));
        assert_eq!(ack_id(b"42[\"x\"]"), None);
    }
}
