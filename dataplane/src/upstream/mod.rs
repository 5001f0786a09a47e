//! How the application's logic is reached: one interface, several implementations.
//!
//! - `NoUpstream`: no application; clients use only what permissions grant (the emulator).
//! - `Webhook`: serverless mode, signed HTTP calls to the application.
//! - `Link`: default mode, application servers dial in over a server link and run their own
//!   Socket.IO server; the hub routes raw packets to them (`PacketRouter`).
//!
//! The interfaces they implement are `state::app`'s (the Socket.IO layer owns them, so it
//! depends on none of these implementations).

pub mod link;
mod none;
pub(crate) mod webhook;

pub use link::Link;
pub use none::NoUpstream;
pub use webhook::Webhook;

pub use crate::state::app::{BoxFut, ConnectDecision, ConnectRequest, EventCall, PacketRouter, Upstream};
