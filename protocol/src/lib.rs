//! Engine.IO v4 and Socket.IO v5 codecs.
//!
//! The wire formats only: decoding borrows from the input (`&str` slices, no copies of
//! payloads), encoding appends to caller-owned buffers so a broadcast is encoded once.
//!
//! Architecture invariant: this crate does no I/O and knows nothing of tokio, HTTP or
//! WebSocket framing; every decoder returns an error instead of panicking on any input,
//! and checks sizes before it allocates.

pub mod binary;
pub mod engine;
pub mod socket;

pub use engine::EngineError;
pub use socket::SocketError;
