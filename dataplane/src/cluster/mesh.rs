//! The mesh: one persistent TCP link per ordered pair of nodes. A node *dials* each live peer
//! and only sends on that link; it only receives on the links peers dialed to it. So every
//! message from A to B travels one ordered stream: per-sender ordering holds across nodes.
//! Every link is a Noise channel keyed by the cluster secret (`noise.rs`): a peer without the
//! secret is refused at the handshake, logged and counted (`mesh_handshakes_refused_total`), and
//! never reaches `on_frame` or a send queue.
//!
//! Invariants: nothing waits on a peer — a send is a `try_send` into a bounded per-peer queue
//! (full → dropped and counted); connects, handshakes and writes have deadlines, and at most
//! `MAX_HANDSHAKES` inbound handshakes run at once (more are closed at once); a broken link
//! reconnects with exponential backoff (100 ms → 2 s) until membership says the peer is gone,
//! which aborts its task. Frames arrive already encoded (`codec::encode`), once per message;
//! encryption happens per link, on the batch, so many small frames share one record.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::codec::{self, DecodeError, PREAMBLE_LEN};
use super::membership::NodeId;
use super::metrics::ClusterMetrics;
use super::noise::{self, NoiseError, Opener, Sealer};
use super::secret::ClusterKeys;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Frames written per vectored flush.
const BATCH: usize = 64;
/// Sealed bytes buffered before they are written (bounds a link's buffer with large frames).
const WRITE_CHUNK: usize = 256 << 10;
/// Largest Noise handshake message accepted: an ephemeral key, a tag and a handshake payload
/// (node names are at most 1024 bytes).
const MAX_HANDSHAKE: usize = 2048;
/// Inbound handshakes in progress at once; a connection beyond it is closed unread.
pub const MAX_HANDSHAKES: usize = 64;

/// Why a mesh link failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// Socket error.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// Bad bytes from the peer.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// Another protocol version.
    #[error("peer speaks mesh protocol {0}, this node {v}", v = codec::VERSION)]
    Version(u16),
    /// The secure channel failed: the peer holds another cluster secret, or a record was altered.
    #[error(transparent)]
    Noise(#[from] NoiseError),
    /// The node answering is not the one expected (restarted with a new generation).
    #[error("expected {expected}, {found} answered")]
    WrongPeer {
        /// Expected.
        expected: NodeId,
        /// Found.
        found: NodeId,
    },
    /// A deadline passed.
    #[error("timed out")]
    Timeout,
}

impl LinkError {
    /// The `reason` label of a refused handshake (fixed set).
    fn refusal(&self) -> &'static str {
        match self {
            LinkError::Decode(DecodeError::Magic) => "not_mesh",
            LinkError::Decode(_) => "malformed",
            LinkError::Version(_) => "version",
            LinkError::Noise(_) => "auth",
            LinkError::WrongPeer { .. } => "identity",
            LinkError::Timeout => "timeout",
            LinkError::Io(_) => "closed",
        }
    }

    /// Whether this failure says the peer is not one of ours (as opposed to a network event).
    fn is_foreign(&self) -> bool {
        matches!(self, LinkError::Decode(_) | LinkError::Version(_) | LinkError::Noise(_))
    }
}

/// The sending side of one link.
pub struct Link {
    tx: mpsc::Sender<Bytes>,
    task: JoinHandle<()>,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What `Link::send` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queued {
    /// Queued for the peer.
    Yes,
    /// The queue was full: dropped.
    Full,
}

impl Link {
    /// Start dialing `peer` at `addr`; frames queued meanwhile are sent once connected.
    pub fn open(
        me: NodeId,
        keys: Arc<ClusterKeys>,
        peer: NodeId,
        addr: std::net::SocketAddr,
        queue: usize,
        metrics: Arc<ClusterMetrics>,
    ) -> Link {
        let (tx, rx) = mpsc::channel(queue);
        let task = tokio::spawn(run_outbound(me, keys, peer, addr, rx, metrics));
        Link { tx, task }
    }

    /// Queue a frame without waiting.
    pub fn send(&self, frame: Bytes) -> Queued {
        match self.tx.try_send(frame) {
            Ok(()) => Queued::Yes,
            Err(_) => Queued::Full,
        }
    }
}

async fn run_outbound(
    me: NodeId,
    keys: Arc<ClusterKeys>,
    peer: NodeId,
    addr: std::net::SocketAddr,
    mut rx: mpsc::Receiver<Bytes>,
    metrics: Arc<ClusterMetrics>,
) {
    let mut backoff = BACKOFF_MIN;
    loop {
        match dial(&me, &keys, &peer, addr).await {
            Ok((stream, sealer)) => {
                tracing::info!(peer = %peer, %addr, "mesh link up");
                backoff = BACKOFF_MIN;
                match pump(stream, sealer, &mut rx, &metrics).await {
                    Ok(()) => return, // queue closed: the link was dropped
                    Err(e) => {
                        tracing::warn!(peer = %peer, error = %e, "mesh link down");
                    }
                }
            }
            Err(e) if e.is_foreign() => {
                metrics.mesh_refused.with_label_values(&[e.refusal()]).inc();
                tracing::warn!(peer = %peer, %addr, error = %e, "mesh peer refused");
            }
            Err(e) => tracing::debug!(peer = %peer, %addr, error = %e, "mesh dial failed"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

async fn dial(
    me: &NodeId,
    keys: &ClusterKeys,
    peer: &NodeId,
    addr: std::net::SocketAddr,
) -> Result<(TcpStream, Sealer), LinkError> {
    let mut stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| LinkError::Timeout)??;
    stream.set_nodelay(true)?;
    let (found, sealer) = tokio::time::timeout(CONNECT_TIMEOUT, async {
        let (initiator, m1) = noise::Initiator::start(keys, &codec::handshake(me))?;
        let mut hello = codec::preamble().to_vec();
        put_message(&mut hello, &m1);
        stream.write_all(&hello).await?;
        read_preamble(&mut stream).await?;
        let m2 = read_message(&mut stream).await?;
        let (payload, sealer) = initiator.finish(&m2)?;
        Ok::<_, LinkError>((peer_id(&payload)?, sealer))
    })
    .await
    .map_err(|_| LinkError::Timeout)??;
    if &found != peer {
        return Err(LinkError::WrongPeer { expected: peer.clone(), found });
    }
    Ok((stream, sealer))
}

fn put_message(out: &mut Vec<u8>, m: &[u8]) {
    // Handshake messages are far below 64 KiB (`MAX_HANDSHAKE`).
    out.extend_from_slice(&(m.len() as u16).to_be_bytes());
    out.extend_from_slice(m);
}

/// Read and check a peer's preamble.
async fn read_preamble<S: AsyncRead + Unpin>(s: &mut S) -> Result<(), LinkError> {
    let mut p = [0u8; PREAMBLE_LEN];
    s.read_exact(&mut p).await?;
    match codec::preamble_version(&p)? {
        codec::VERSION => Ok(()),
        v => Err(LinkError::Version(v)),
    }
}

/// Read one length-prefixed handshake message.
async fn read_message<S: AsyncRead + Unpin>(s: &mut S) -> Result<Vec<u8>, LinkError> {
    let n = s.read_u16().await? as usize;
    if n > MAX_HANDSHAKE {
        return Err(DecodeError::TooLarge(n).into());
    }
    let mut m = vec![0u8; n];
    s.read_exact(&mut m).await?;
    Ok(m)
}

/// The node id in a handshake payload.
fn peer_id(payload: &[u8]) -> Result<NodeId, LinkError> {
    match codec::parse_handshake(payload)? {
        (codec::VERSION, id) => Ok(id),
        (v, _) => Err(LinkError::Version(v)),
    }
}

/// Seal and write queued frames until the queue closes (`Ok`) or the socket fails (`Err`); the
/// frames of a failed write are counted as dropped (part of them may have reached the peer, so
/// resending could duplicate).
async fn pump(
    stream: TcpStream,
    mut sealer: Sealer,
    rx: &mut mpsc::Receiver<Bytes>,
    metrics: &ClusterMetrics,
) -> Result<(), LinkError> {
    let (mut read, mut w) = stream.into_split();
    let mut batch: Vec<Bytes> = Vec::with_capacity(BATCH);
    let mut out: Vec<u8> = Vec::with_capacity(WRITE_CHUNK + noise::MAX_MESSAGE + 2);
    // The peer never writes on this link after the handshake; a read returning means it closed.
    let mut closed = Box::pin(async move {
        let mut b = [0u8; 1];
        let _ = read.read(&mut b).await;
    });
    loop {
        if batch.is_empty() {
            tokio::select! {
                f = rx.recv() => match f {
                    Some(f) => batch.push(f),
                    None => return Ok(()),
                },
                _ = &mut closed => return Err(LinkError::Io(std::io::ErrorKind::ConnectionReset.into())),
            }
        }
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(f) => batch.push(f),
                Err(_) => break,
            }
        }
        let bytes: usize = batch.iter().map(Bytes::len).sum();
        let n = batch.len();
        let written = tokio::time::timeout(WRITE_TIMEOUT, async {
            out.clear();
            for f in &batch {
                for piece in f.chunks(WRITE_CHUNK) {
                    sealer.push(piece, &mut out)?;
                    if out.len() >= WRITE_CHUNK {
                        w.write_all(&out).await?;
                        out.clear();
                    }
                }
            }
            sealer.flush(&mut out)?;
            w.write_all(&out).await?;
            Ok::<_, LinkError>(())
        })
        .await;
        batch.clear();
        match written {
            Ok(Ok(())) => {
                metrics.mesh_messages.with_label_values(&["out"]).inc_by(n as u64);
                metrics.mesh_bytes.with_label_values(&["out"]).inc_by(bytes as u64);
            }
            Ok(Err(e)) => {
                metrics.mesh_dropped.with_label_values(&["write_failed"]).inc_by(n as u64);
                return Err(e);
            }
            Err(_) => {
                metrics.mesh_dropped.with_label_values(&["write_failed"]).inc_by(n as u64);
                return Err(LinkError::Timeout);
            }
        }
    }
}

/// Accept links dialed by peers; each frame received is handed to `on_frame` with the
/// sender's id, in order. A peer that fails the handshake is refused, logged and counted.
/// Dropping (aborting) this future closes every inbound link.
pub async fn serve<F>(
    listener: TcpListener,
    me: NodeId,
    keys: Arc<ClusterKeys>,
    metrics: Arc<ClusterMetrics>,
    on_frame: F,
) where
    F: Fn(&NodeId, Bytes) + Send + Sync + Clone + 'static,
{
    serve_epoch(listener, me, keys, metrics, Arc::new(AtomicU64::new(0)), on_frame).await
}

/// `serve`, where a link accepted while `epoch` had another value than it has now is closed
/// at its next frame, and that frame dropped (the node was fenced since: what the link still
/// carries was sent before the partition).
pub async fn serve_epoch<F>(
    listener: TcpListener,
    me: NodeId,
    keys: Arc<ClusterKeys>,
    metrics: Arc<ClusterMetrics>,
    epoch: Arc<AtomicU64>,
    on_frame: F,
) where
    F: Fn(&NodeId, Bytes) + Send + Sync + Clone + 'static,
{
    let mut links = tokio::task::JoinSet::new();
    let handshakes = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
    loop {
        while links.try_join_next().is_some() {}
        let (stream, remote) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "mesh accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = handshakes.clone().try_acquire_owned() else {
            metrics.mesh_refused.with_label_values(&["busy"]).inc();
            tracing::debug!(%remote, "mesh handshake refused: too many in progress");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (me, keys, metrics, on_frame) = (me.clone(), keys.clone(), metrics.clone(), on_frame.clone());
        let epoch = epoch.clone();
        let accepted_in = epoch.load(Ordering::SeqCst);
        links.spawn(async move {
            let accepted = tokio::time::timeout(CONNECT_TIMEOUT, accept(stream, &me, &keys))
                .await
                .unwrap_or(Err(LinkError::Timeout));
            drop(permit);
            let (stream, from, opener) = match accepted {
                Ok(x) => x,
                Err(e) => {
                    metrics.mesh_refused.with_label_values(&[e.refusal()]).inc();
                    if e.is_foreign() {
                        tracing::warn!(%remote, error = %e, "mesh peer refused");
                    } else {
                        tracing::debug!(%remote, error = %e, "mesh handshake failed");
                    }
                    return;
                }
            };
            if let Err(e) = receive(stream, &from, opener, &metrics, (&epoch, accepted_in), on_frame).await {
                if matches!(e, LinkError::Noise(_)) {
                    metrics.mesh_dropped.with_label_values(&["bad_record"]).inc();
                    tracing::warn!(%remote, peer = %from, error = %e, "mesh link closed: bad record");
                } else {
                    tracing::debug!(%remote, error = %e, "inbound mesh link closed");
                }
            }
        });
    }
}

/// The acceptor's side of the handshake.
async fn accept(
    mut stream: TcpStream,
    me: &NodeId,
    keys: &ClusterKeys,
) -> Result<(TcpStream, NodeId, Opener), LinkError> {
    stream.write_all(&codec::preamble()).await?;
    read_preamble(&mut stream).await?;
    let m1 = read_message(&mut stream).await?;
    let r = noise::respond(keys, &m1, &codec::handshake(me))?;
    let from = peer_id(&r.peer)?;
    let mut reply = Vec::with_capacity(2 + r.reply.len());
    put_message(&mut reply, &r.reply);
    stream.write_all(&reply).await?;
    Ok((stream, from, r.opener))
}

async fn receive<F>(
    stream: TcpStream,
    from: &NodeId,
    mut opener: Opener,
    metrics: &ClusterMetrics,
    (epoch, accepted_in): (&AtomicU64, u64),
    on_frame: F,
) -> Result<(), LinkError>
where
    F: Fn(&NodeId, Bytes),
{
    let mut r = tokio::io::BufReader::with_capacity(64 << 10, stream);
    let mut record = vec![0u8; noise::MAX_MESSAGE];
    loop {
        let n = r.read_u16().await? as usize;
        r.read_exact(&mut record[..n]).await?;
        opener.open(&record[..n])?;
        while let Some(body) = opener.next_frame()? {
            if epoch.load(Ordering::SeqCst) != accepted_in {
                metrics.mesh_dropped.with_label_values(&["stale_link"]).inc();
                tracing::info!(peer = %from, "inbound mesh link from before the fence closed");
                return Ok(());
            }
            metrics.mesh_messages.with_label_values(&["in"]).inc();
            metrics.mesh_bytes.with_label_values(&["in"]).inc_by(body.len() as u64 + 4);
            on_frame(from, body);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::codec::Msg;

    fn id(name: &str) -> NodeId {
        NodeId { name: name.into(), generation: 1 }
    }

    fn keys() -> Arc<ClusterKeys> {
        Arc::new(ClusterKeys::derive(Some(b"mesh-test-secret-of-thirty-two-bytes"), "test"))
    }

    fn rogue_keys() -> Arc<ClusterKeys> {
        Arc::new(ClusterKeys::derive(Some(b"rogue-secret-also-thirty-two-bytes!!"), "test"))
    }

    fn metrics() -> Arc<ClusterMetrics> {
        Arc::new(ClusterMetrics::register(&prometheus::Registry::new()))
    }

    fn refused(m: &ClusterMetrics, reason: &str) -> u64 {
        m.mesh_refused.with_label_values(&[reason]).get()
    }

    /// Poll a condition (real sockets: the other side runs on its own task).
    async fn eventually(what: &str, f: impl Fn() -> bool) {
        tokio::time::timeout(Duration::from_secs(5), async {
            while !f() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
    }

    #[tokio::test]
    async fn a_link_delivers_in_order_and_reconnects_after_the_peer_restarts() {
        let metrics = Arc::new(ClusterMetrics::register(&prometheus::Registry::new()));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let server = tokio::spawn(serve(
            listener,
            id("b"),
            keys(),
            metrics.clone(),
            move |from: &NodeId, body: Bytes| {
                let _ = tx.send((from.clone(), codec::decode(&body).unwrap()));
            },
        ));
        let link = Link::open(id("a"), keys(), id("b"), addr, 16, metrics.clone());
        for i in 0..10 {
            assert_eq!(link.send(codec::encode(&Msg::AckCount { id: i, sockets: vec![] })), Queued::Yes);
        }
        for i in 0..10 {
            let (from, msg) = rx.recv().await.unwrap();
            assert_eq!(from, id("a"));
            assert_eq!(msg, Msg::AckCount { id: i, sockets: vec![] });
        }
        // The peer goes away and comes back on the same port: the link redials by itself.
        server.abort();
        let _ = server.await;
        let listener = loop {
            match TcpListener::bind(addr).await {
                Ok(l) => break l,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        let (tx2, mut rx2) = mpsc::unbounded_channel();
        tokio::spawn(serve(listener, id("b"), keys(), metrics.clone(), move |_: &NodeId, body: Bytes| {
            let _ = tx2.send(codec::decode(&body).unwrap());
        }));
        // Keep sending until one arrives (frames written into the dead socket may be lost).
        let got = tokio::time::timeout(Duration::from_secs(10), async {
            let mut i = 100;
            loop {
                link.send(codec::encode(&Msg::AckCount { id: i, sockets: vec![] }));
                i += 1;
                tokio::select! {
                    m = rx2.recv() => break m.unwrap(),
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
            }
        })
        .await
        .unwrap();
        assert!(matches!(got, Msg::AckCount { id, .. } if id >= 100));
    }

    #[tokio::test]
    async fn a_full_queue_drops_instead_of_waiting() {
        let metrics = Arc::new(ClusterMetrics::register(&prometheus::Registry::new()));
        // Nobody listens here: the link keeps redialing and its queue fills up.
        let probe = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        let link = Link::open(id("a"), keys(), id("b"), addr, 4, metrics);
        let frame = codec::encode(&Msg::AckCount { id: 1, sockets: vec![] });
        let results: Vec<Queued> = (0..8).map(|_| link.send(frame.clone())).collect();
        assert_eq!(results.iter().filter(|q| **q == Queued::Full).count(), 4);
    }

    #[tokio::test]
    async fn the_wrong_generation_is_refused() {
        let metrics = Arc::new(ClusterMetrics::register(&prometheus::Registry::new()));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(
            listener,
            NodeId { name: "b".into(), generation: 2 },
            keys(),
            metrics,
            |_: &NodeId, _| {},
        ));
        match dial(&id("a"), &keys(), &id("b"), addr).await {
            Err(LinkError::WrongPeer { found, .. }) => assert_eq!(found.generation, 2),
            other => panic!("expected WrongPeer, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_node_with_another_secret_is_refused_both_ways_and_delivers_nothing() {
        let (good, rogue) = (metrics(), metrics());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel::<Bytes>();
        tokio::spawn(serve(listener, id("b"), keys(), good.clone(), move |_: &NodeId, body: Bytes| {
            let _ = tx.send(body);
        }));
        // The rogue dials the good node: its first handshake message does not decrypt.
        match dial(&id("rogue"), &rogue_keys(), &id("b"), addr).await {
            Err(e @ LinkError::Noise(NoiseError::Auth)) => assert_eq!(e.refusal(), "auth"),
            Err(LinkError::Io(_)) => {} // the acceptor closed before the rogue read message 2
            other => panic!("expected the rogue to be refused, got {other:?}"),
        }
        eventually("the refusal to be counted", || refused(&good, "auth") == 1).await;
        // A rogue link keeps redialing and queueing; nothing it sends is ever delivered.
        let link = Link::open(id("rogue"), rogue_keys(), id("b"), addr, 16, rogue.clone());
        for i in 0..4 {
            link.send(codec::encode(&Msg::AckCount { id: i, sockets: vec![] }));
        }
        eventually("the rogue link to be refused too", || refused(&good, "auth") >= 2).await;
        assert!(rx.try_recv().is_err(), "no frame from the rogue reached on_frame");

        // The other way: a good node dialing a rogue acceptor refuses the rogue's answer.
        let rogue_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let rogue_addr = rogue_listener.local_addr().unwrap();
        tokio::spawn(serve(rogue_listener, id("r"), rogue_keys(), rogue.clone(), |_: &NodeId, _| {
            panic!("the rogue must never receive a frame");
        }));
        match dial(&id("a"), &keys(), &id("r"), rogue_addr).await {
            Err(LinkError::Noise(NoiseError::Auth)) | Err(LinkError::Io(_)) => {}
            other => panic!("expected the rogue acceptor to be refused, got {other:?}"),
        }
        eventually("the rogue acceptor to count the good dialer", || refused(&rogue, "auth") >= 1).await;
    }

    #[tokio::test]
    async fn foreign_and_old_peers_are_refused_by_reason() {
        let m = metrics();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, id("b"), keys(), m.clone(), |_: &NodeId, _| {
            panic!("no frame may arrive");
        }));
        // A plaintext (version 2) node: its handshake and a plaintext frame right after it.
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut old = codec::handshake(&id("old"));
        old[8..10].copy_from_slice(&2u16.to_be_bytes());
        old.extend_from_slice(&codec::encode(&Msg::AckCount { id: 1, sockets: vec![] }));
        s.write_all(&old).await.unwrap();
        eventually("the old version to be refused", || refused(&m, "version") == 1).await;
        // Not a mesh peer at all.
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        eventually("a stranger to be refused", || refused(&m, "not_mesh") == 1).await;
        // The right preamble, then garbage where the Noise message goes.
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut junk = codec::preamble().to_vec();
        junk.extend_from_slice(&48u16.to_be_bytes());
        junk.extend_from_slice(&[7u8; 48]);
        s.write_all(&junk).await.unwrap();
        eventually("a forged handshake to be refused", || refused(&m, "auth") == 1).await;
        // An oversized handshake message.
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut big = codec::preamble().to_vec();
        big.extend_from_slice(&60000u16.to_be_bytes());
        s.write_all(&big).await.unwrap();
        eventually("an oversized handshake to be refused", || refused(&m, "malformed") == 1).await;
    }

    #[tokio::test]
    async fn a_tampered_record_closes_the_link_and_is_counted() {
        let m = metrics();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
        tokio::spawn(serve(listener, id("b"), keys(), m.clone(), move |_: &NodeId, body: Bytes| {
            let _ = tx.send(codec::decode(&body).unwrap());
        }));
        // A man in the middle flips one bit of the second record.
        let (mut stream, mut sealer) = dial(&id("a"), &keys(), &id("b"), addr).await.unwrap();
        let mut out = Vec::new();
        for i in 0..2 {
            sealer.push(&codec::encode(&Msg::AckCount { id: i, sockets: vec![] }), &mut out).unwrap();
            sealer.flush(&mut out).unwrap();
        }
        let last = out.len() - 1;
        out[last] ^= 0x80;
        stream.write_all(&out).await.unwrap();
        assert_eq!(rx.recv().await.unwrap(), Msg::AckCount { id: 0, sockets: vec![] });
        eventually("the bad record to be counted", || {
            m.mesh_dropped.with_label_values(&["bad_record"]).get() == 1
        })
        .await;
        // The acceptor closed the link: reading from it ends.
        let mut b = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut b)).await.unwrap();
        assert!(matches!(n, Ok(0) | Err(_)));
        assert!(rx.try_recv().is_err(), "the tampered frame never reached on_frame");
    }
}
