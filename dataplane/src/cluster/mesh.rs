//! The mesh: one persistent TCP link per ordered pair of nodes. A node *dials* each live peer
//! and only sends on that link; it only receives on the links peers dialed to it. So every
//! message from A to B travels one ordered stream: per-sender ordering holds across nodes.
//!
//! Invariants: nothing waits on a peer — a send is a `try_send` into a bounded per-peer queue
//! (full → dropped and counted); connects, handshakes and writes have deadlines; a broken link
//! reconnects with exponential backoff (100 ms → 2 s) until membership says the peer is gone,
//! which aborts its task. Frames arrive already encoded (`codec::encode`), once per message.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::codec::{self, DecodeError, HANDSHAKE_HEAD};
use super::membership::NodeId;
use super::metrics::ClusterMetrics;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Frames written per vectored flush.
const BATCH: usize = 64;

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
        peer: NodeId,
        addr: std::net::SocketAddr,
        queue: usize,
        metrics: Arc<ClusterMetrics>,
    ) -> Link {
        let (tx, rx) = mpsc::channel(queue);
        let task = tokio::spawn(run_outbound(me, peer, addr, rx, metrics));
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
    peer: NodeId,
    addr: std::net::SocketAddr,
    mut rx: mpsc::Receiver<Bytes>,
    metrics: Arc<ClusterMetrics>,
) {
    let mut backoff = BACKOFF_MIN;
    loop {
        match dial(&me, &peer, addr).await {
            Ok(stream) => {
                tracing::info!(peer = %peer, %addr, "mesh link up");
                backoff = BACKOFF_MIN;
                match pump(stream, &mut rx, &metrics).await {
                    Ok(()) => return, // queue closed: the link was dropped
                    Err(e) => {
                        tracing::warn!(peer = %peer, error = %e, "mesh link down");
                    }
                }
            }
            Err(e) => tracing::debug!(peer = %peer, %addr, error = %e, "mesh dial failed"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

async fn dial(me: &NodeId, peer: &NodeId, addr: std::net::SocketAddr) -> Result<TcpStream, LinkError> {
    let mut stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| LinkError::Timeout)??;
    stream.set_nodelay(true)?;
    let found = tokio::time::timeout(CONNECT_TIMEOUT, async {
        stream.write_all(&codec::handshake(me)).await?;
        read_handshake(&mut stream).await
    })
    .await
    .map_err(|_| LinkError::Timeout)??;
    if &found != peer {
        return Err(LinkError::WrongPeer { expected: peer.clone(), found });
    }
    Ok(stream)
}

/// Read a peer's handshake.
pub async fn read_handshake<S: AsyncRead + Unpin>(s: &mut S) -> Result<NodeId, LinkError> {
    let mut head = [0u8; HANDSHAKE_HEAD];
    s.read_exact(&mut head).await?;
    let (version, len) = codec::handshake_head(&head)?;
    if version != codec::VERSION {
        return Err(LinkError::Version(version));
    }
    let mut tail = vec![0u8; len + 8];
    s.read_exact(&mut tail).await?;
    Ok(codec::handshake_tail(&tail)?)
}

/// Write queued frames until the queue closes (`Ok`) or the socket fails (`Err`); the frames
/// of a failed write are counted as dropped (part of them may have reached the peer, so
/// resending could duplicate).
async fn pump(
    stream: TcpStream,
    rx: &mut mpsc::Receiver<Bytes>,
    metrics: &ClusterMetrics,
) -> Result<(), LinkError> {
    let (mut read, write) = stream.into_split();
    let mut w = BufWriter::with_capacity(64 << 10, write);
    let mut batch: Vec<Bytes> = Vec::with_capacity(BATCH);
    // The peer never writes on this link; a read returning means it closed or reset.
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
            for f in &batch {
                w.write_all(f).await?;
            }
            w.flush().await
        })
        .await;
        match written {
            Ok(Ok(())) => {
                metrics.mesh_messages.with_label_values(&["out"]).inc_by(n as u64);
                metrics.mesh_bytes.with_label_values(&["out"]).inc_by(bytes as u64);
                batch.clear();
            }
            Ok(Err(e)) => {
                metrics.mesh_dropped.with_label_values(&["write_failed"]).inc_by(n as u64);
                batch.clear();
                return Err(e.into());
            }
            Err(_) => {
                metrics.mesh_dropped.with_label_values(&["write_failed"]).inc_by(n as u64);
                batch.clear();
                return Err(LinkError::Timeout);
            }
        }
    }
}

/// Accept links dialed by peers; each frame received is handed to `on_frame` with the
/// sender's id, in order. Dropping (aborting) this future closes every inbound link.
pub async fn serve<F>(listener: TcpListener, me: NodeId, metrics: Arc<ClusterMetrics>, on_frame: F)
where
    F: Fn(&NodeId, Bytes) + Send + Sync + Clone + 'static,
{
    let mut links = tokio::task::JoinSet::new();
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
        let _ = stream.set_nodelay(true);
        let (me, metrics, on_frame) = (me.clone(), metrics.clone(), on_frame.clone());
        links.spawn(async move {
            if let Err(e) = receive(stream, &me, &metrics, on_frame).await {
                tracing::debug!(%remote, error = %e, "inbound mesh link closed");
            }
        });
    }
}

async fn receive<F>(
    mut stream: TcpStream,
    me: &NodeId,
    metrics: &ClusterMetrics,
    on_frame: F,
) -> Result<(), LinkError>
where
    F: Fn(&NodeId, Bytes),
{
    let from = tokio::time::timeout(CONNECT_TIMEOUT, read_handshake(&mut stream))
        .await
        .map_err(|_| LinkError::Timeout)??;
    stream.write_all(&codec::handshake(me)).await?;
    let mut r = tokio::io::BufReader::with_capacity(64 << 10, stream);
    loop {
        let body = read_frame(&mut r).await?;
        metrics.mesh_messages.with_label_values(&["in"]).inc();
        metrics.mesh_bytes.with_label_values(&["in"]).inc_by(body.len() as u64 + 4);
        on_frame(&from, body);
    }
}

/// Read one frame body (after its length prefix).
pub async fn read_frame<S: AsyncRead + Unpin>(s: &mut S) -> Result<Bytes, LinkError> {
    let mut head = [0u8; 4];
    s.read_exact(&mut head).await?;
    let n = codec::frame_len(head)?;
    let mut body = vec![0u8; n];
    s.read_exact(&mut body).await?;
    Ok(Bytes::from(body))
}

/// Write one encoded frame (tests and tools).
pub async fn write_frame<S: AsyncWrite + Unpin>(s: &mut S, frame: &Bytes) -> std::io::Result<()> {
    s.write_all(frame).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::codec::Msg;

    fn id(name: &str) -> NodeId {
        NodeId { name: name.into(), generation: 1 }
    }

    #[tokio::test]
    async fn a_link_delivers_in_order_and_reconnects_after_the_peer_restarts() {
        let metrics = Arc::new(ClusterMetrics::register(&prometheus::Registry::new()));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let server =
            tokio::spawn(serve(listener, id("b"), metrics.clone(), move |from: &NodeId, body: Bytes| {
                let _ = tx.send((from.clone(), codec::decode(&body).unwrap()));
            }));
        let link = Link::open(id("a"), id("b"), addr, 16, metrics.clone());
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
        tokio::spawn(serve(listener, id("b"), metrics.clone(), move |_: &NodeId, body: Bytes| {
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
        let link = Link::open(id("a"), id("b"), addr, 4, metrics);
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
            metrics,
            |_: &NodeId, _| {},
        ));
        match dial(&id("a"), &id("b"), addr).await {
            Err(LinkError::WrongPeer { found, .. }) => assert_eq!(found.generation, 2),
            other => panic!("expected WrongPeer, got {other:?}"),
        }
    }
}
