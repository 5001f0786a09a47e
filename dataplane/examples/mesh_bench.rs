//! Mesh link throughput and latency on loopback: one `Link` dialing one `serve`, the real code
//! path of a forwarded broadcast (encoded once, queued, sealed per link, opened, handed to
//! `on_frame`) without any hub around it. Prints one JSON object per measurement.
//!
//! usage: cargo run --release -p socketio-hub --example mesh_bench -- [--seconds 3]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use socketio_hub::cluster::codec::{self, Msg};
use socketio_hub::cluster::mesh::{self, Link, Queued};
use socketio_hub::cluster::secret::ClusterKeys;
use socketio_hub::cluster::{ClusterMetrics, NodeId};
use socketio_hub::ids::Room;
use socketio_hub::state::{Args, Selector};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

fn broadcast(size: usize, seq: u64) -> Bytes {
    codec::encode(&Msg::Broadcast {
        ns: "/".into(),
        sel: Selector::rooms(vec![Room::from("bench")]),
        event: "b".into(),
        args: Args { json: format!("[{seq},\"{}\"]", "x".repeat(size)), attachments: vec![] },
        volatile: false,
        ack: None,
    })
}

#[tokio::main]
async fn main() {
    let seconds: u64 =
        std::env::args().skip_while(|a| a != "--seconds").nth(1).and_then(|s| s.parse().ok()).unwrap_or(3);
    let keys = Arc::new(ClusterKeys::derive(Some(b"mesh-bench-secret-of-thirty-two-bytes"), "bench"));
    let metrics = Arc::new(ClusterMetrics::register(&prometheus::Registry::new()));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let addr = listener.local_addr().expect("bound");
    let received = Arc::new(AtomicU64::new(0));
    let (tx, mut rx) = mpsc::unbounded_channel::<Instant>();
    let counter = received.clone();
    let (a, b) = (NodeId { name: "a".into(), generation: 1 }, NodeId { name: "b".into(), generation: 1 });
    tokio::spawn(mesh::serve(
        listener,
        b.clone(),
        keys.clone(),
        metrics.clone(),
        move |_: &NodeId, body: Bytes| {
            counter.fetch_add(body.len() as u64 + 4, Ordering::Relaxed);
            let _ = tx.send(Instant::now());
        },
    ));
    let link = Link::open(a, keys, b, addr, 8192, metrics);

    // Latency: one frame at a time, send → on_frame.
    for size in [100usize, 16 << 10] {
        let mut lat = Vec::new();
        for i in 0..2000u64 {
            let start = Instant::now();
            while link.send(broadcast(size, i)) == Queued::Full {
                tokio::task::yield_now().await;
            }
            rx.recv().await.expect("receiver alive");
            lat.push(start.elapsed());
        }
        lat.drain(..100); // the link's first frames wait for the dial
        lat.sort();
        let p = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)].as_secs_f64() * 1e6;
        println!(r#"{{"bench":"latency","payload":{size},"p50_us":{:.1},"p99_us":{:.1}}}"#, p(0.5), p(0.99));
    }

    // Throughput: keep a window of frames in flight for `seconds` per payload size.
    for size in [100usize, 1 << 10, 16 << 10, 256 << 10, 1 << 20] {
        let frame = broadcast(size, 0);
        let window = ((32usize << 20) / frame.len()).clamp(4, 4096) as u64;
        let (bytes0, start) = (received.load(Ordering::Relaxed), Instant::now());
        let (mut sent, mut frames_received) = (0u64, 0u64);
        while start.elapsed() < Duration::from_secs(seconds) {
            while sent - frames_received < window && link.send(frame.clone()) == Queued::Yes {
                sent += 1;
            }
            // Wait for at least one delivery, then take every other one that is ready.
            rx.recv().await.expect("receiver alive");
            frames_received += 1;
            while rx.try_recv().is_ok() {
                frames_received += 1;
            }
        }
        let secs = start.elapsed().as_secs_f64();
        let bytes = received.load(Ordering::Relaxed) - bytes0;
        println!(
            r#"{{"bench":"throughput","payload":{size},"frames_per_s":{:.0},"mib_per_s":{:.1}}}"#,
            frames_received as f64 / secs,
            bytes as f64 / secs / (1 << 20) as f64
        );
        // Drain what is still in flight before the next size.
        while frames_received < sent {
            rx.recv().await.expect("receiver alive");
            frames_received += 1;
        }
    }
}
