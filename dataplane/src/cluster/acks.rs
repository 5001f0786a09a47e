//! The one collector of client acknowledgements for an emit-with-acks, wherever the clients
//! are: this node's recipients (answers on an `AckSink` channel) and the peers' (each says
//! whom it asked, then relays their acks). REST collects everything; the server link streams
//! the count and each ack to the application server; a peer relays its clients' acks to the
//! emitting node — all through `Collector::run`.
//!
//! Invariants: the run ends at its deadline at the latest, or earlier once every node said
//! whom it asked and every client asked answered (or every local recipient went away);
//! `Counted` is reported exactly once (with the nodes that never said, when the deadline
//! came first); a local recipient that did not answer has its ack id forgotten — also when the
//! collector is dropped unfinished (an HTTP client went away) — so no socket keeps a dead
//! waiter; an ack from a socket not asked, or a second one, is ignored.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

use super::{NodeId, RemoteAck, RemoteAcks};
use crate::ids::SocketId;
use crate::state::{Args, Broadcast, Socket};

/// What the collector reports while it runs.
#[derive(Debug)]
pub enum AckEvent {
    /// Every node said how many clients it asked (or the deadline came first: `missing` are
    /// the nodes that never said). Reported once.
    Counted {
        /// Clients asked, on every node that said.
        total: usize,
        /// Nodes that did not say in time.
        missing: Vec<NodeId>,
    },
    /// One client's answer.
    Ack {
        /// Its socket id.
        socket: String,
        /// Its arguments.
        args: Args,
    },
}

/// How a collection ended.
#[derive(Debug, Default)]
pub struct Summary {
    /// Clients asked, in the order the nodes reported them (this node's first).
    pub asked: Vec<String>,
    /// Clients asked that did not answer in time (or went away first).
    pub timed_out: Vec<String>,
    /// Nodes that never said whom they asked.
    pub missing: Vec<NodeId>,
}

struct Local {
    ack_id: Option<u64>,
    pending: HashMap<SocketId, Arc<Socket>>,
    rx: UnboundedReceiver<(SocketId, Args)>,
}

/// The recipients of one emit-with-acks that have not answered yet.
pub struct Collector {
    local: Option<Local>,
    remote: Option<RemoteAcks>,
    asked: Vec<String>,
}

impl Collector {
    /// Collect for a local broadcast (its result and the receiving end of the sink it was
    /// given) and/or a remote one.
    pub fn new(
        local: Option<(Broadcast, UnboundedReceiver<(SocketId, Args)>)>,
        remote: Option<RemoteAcks>,
    ) -> Self {
        let mut asked = Vec::new();
        let local = local.map(|(b, rx)| {
            let mut pending = HashMap::with_capacity(b.awaiting_ack.len());
            for s in b.awaiting_ack {
                asked.push(s.id.to_string());
                pending.insert(s.id.clone(), s);
            }
            Local { ack_id: b.ack_id, pending, rx }
        });
        Collector { local, remote, asked }
    }

    /// Run until done or `deadline`, reporting to `on` as answers come.
    pub async fn run(mut self, deadline: Instant, mut on: impl FnMut(AckEvent)) -> Summary {
        let mut peers_left: HashSet<NodeId> =
            self.remote.as_ref().map(|r| r.peers.iter().cloned().collect()).unwrap_or_default();
        let mut remote_pending: HashSet<String> = HashSet::new();
        let mut counted = false;
        let mut local_open = self.local.as_ref().is_some_and(|l| !l.pending.is_empty());
        let mut remote_open = !peers_left.is_empty();
        let Collector { local, remote, asked } = &mut self;
        loop {
            if !counted && peers_left.is_empty() {
                counted = true;
                on(AckEvent::Counted { total: asked.len(), missing: Vec::new() });
            }
            let local_done = local.as_ref().is_none_or(|l| l.pending.is_empty()) || !local_open;
            let remote_done = peers_left.is_empty() && remote_pending.is_empty();
            if local_done && (remote_done || !remote_open) {
                break;
            }
            tokio::select! {
                a = async { local.as_mut().expect("guarded by local_open").rx.recv().await }, if !local_done => match a {
                    Some((id, args)) => {
                        if local.as_mut().is_some_and(|l| l.pending.remove(&id).is_some()) {
                            on(AckEvent::Ack { socket: id.to_string(), args });
                        }
                    }
                    // Every recipient went away (their ack tables, holding the sink, with them).
                    None => local_open = false,
                },
                e = async { remote.as_mut().expect("guarded by remote_open").rx.recv().await }, if remote_open && !remote_done => match e {
                    Some((node, RemoteAck::Asked(sockets))) => {
                        if peers_left.remove(&node) {
                            asked.extend(sockets.iter().cloned());
                            remote_pending.extend(sockets);
                        }
                    }
                    Some((_, RemoteAck::Ack(socket, args))) => {
                        if remote_pending.remove(&socket) {
                            on(AckEvent::Ack { socket, args });
                        }
                    }
                    None => remote_open = false,
                },
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        let missing: Vec<NodeId> = peers_left.into_iter().collect();
        if !counted {
            on(AckEvent::Counted { total: asked.len(), missing: missing.clone() });
        }
        let local_pending = local.as_ref().map(|l| &l.pending);
        let timed_out = asked
            .iter()
            .filter(|s| {
                remote_pending.contains(*s)
                    || local_pending.is_some_and(|p| SocketId::parse(s).is_some_and(|id| p.contains_key(&id)))
            })
            .cloned()
            .collect();
        Summary { asked: std::mem::take(asked), timed_out, missing }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        if let Some(Local { ack_id: Some(id), pending, .. }) = &self.local {
            for s in pending.values() {
                s.forget_ack(*id);
            }
        }
    }
}
