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

/// A recipient that was asked for an ack and can stop expecting it.
pub trait Forget: Send + Sync {
    /// Stop expecting ack `id`.
    fn forget(&self, id: u64);
}

impl Forget for Arc<Socket> {
    fn forget(&self, id: u64) {
        self.forget_ack(id);
    }
}

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

struct Local<T: Forget> {
    ack_id: Option<u64>,
    pending: HashMap<SocketId, T>,
    rx: UnboundedReceiver<(SocketId, Args)>,
}

/// The recipients of one emit-with-acks that have not answered yet.
pub struct Collector<T: Forget = Arc<Socket>> {
    local: Option<Local<T>>,
    remote: Option<RemoteAcks>,
    asked: Vec<String>,
}

/// Local recipients of an emit-with-acks: the ack id they were asked under, who (in selection
/// order), and where their answers arrive.
pub type LocalRecipients<T> = (Option<u64>, Vec<(SocketId, T)>, UnboundedReceiver<(SocketId, Args)>);

impl Collector<Arc<Socket>> {
    /// Collect for a local broadcast (its result and the receiving end of the sink it was
    /// given) and/or a remote one.
    pub fn new(
        local: Option<(Broadcast, UnboundedReceiver<(SocketId, Args)>)>,
        remote: Option<RemoteAcks>,
    ) -> Self {
        let local = local.map(|(b, rx)| {
            let recipients = b.awaiting_ack.into_iter().map(|s| (s.id.clone(), s)).collect();
            (b.ack_id, recipients, rx)
        });
        Collector::with_recipients(local, remote)
    }
}

impl<T: Forget> Collector<T> {
    /// Collect for local recipients and/or a remote broadcast.
    pub fn with_recipients(local: Option<LocalRecipients<T>>, remote: Option<RemoteAcks>) -> Self {
        let mut asked = Vec::new();
        let local = local.map(|(ack_id, recipients, rx)| {
            let mut pending = HashMap::with_capacity(recipients.len());
            for (id, who) in recipients {
                asked.push(id.to_string());
                pending.insert(id, who);
            }
            Local { ack_id, pending, rx }
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
                    || local_pending.is_some_and(|p: &HashMap<SocketId, T>| {
                        SocketId::parse(s).is_some_and(|id| p.contains_key(&id))
                    })
            })
            .cloned()
            .collect();
        Summary { asked: std::mem::take(asked), timed_out, missing }
    }
}

impl<T: Forget> Drop for Collector<T> {
    fn drop(&mut self) {
        if let Some(Local { ack_id: Some(id), pending, .. }) = &self.local {
            for s in pending.values() {
                s.forget(*id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use tokio::sync::mpsc;

    use super::*;
    use crate::ids::NodeTag;

    #[derive(Clone, Default)]
    struct Log(Arc<Mutex<Vec<(String, u64)>>>);

    struct Who(&'static str, Log);

    impl Forget for Who {
        fn forget(&self, id: u64) {
            self.1 .0.lock().unwrap().push((self.0.to_string(), id));
        }
    }

    /// A fresh socket id (random) minted by node tag `n`.
    fn sid(n: u32) -> SocketId {
        SocketId::new(NodeTag(n))
    }

    fn node(name: &str) -> NodeId {
        NodeId { name: Arc::from(name), generation: 1 }
    }

    fn args(json: &str) -> Args {
        Args { json: json.into(), attachments: vec![] }
    }

    /// Drive a collector and record what it reports.
    async fn run<T: Forget>(c: Collector<T>, deadline: Instant) -> (Vec<String>, Summary) {
        let mut events = Vec::new();
        let summary = c
            .run(deadline, |e| {
                events.push(match e {
                    AckEvent::Counted { total, missing } => {
                        format!("counted {total} missing {}", missing.len())
                    }
                    AckEvent::Ack { socket, args } => format!("ack {socket} {}", args.json),
                })
            })
            .await;
        (events, summary)
    }

    #[tokio::test(start_paused = true)]
    async fn local_recipients_answer_or_time_out_and_are_forgotten() {
        let log = Log::default();
        let (a, b, c) = (sid(1), sid(2), sid(3));
        let (tx, rx) = mpsc::unbounded_channel();
        tx.send((c.clone(), args("[1]"))).unwrap();
        tx.send((sid(9), args("[9]"))).unwrap(); // not asked
        tx.send((c.clone(), args("[2]"))).unwrap(); // a second answer
        let recipients = vec![
            (a.clone(), Who("a", log.clone())),
            (b.clone(), Who("b", log.clone())),
            (c.clone(), Who("c", log.clone())),
        ];
        let started = Instant::now();
        let collector = Collector::with_recipients(Some((Some(7), recipients, rx)), None);
        let (events, summary) = run(collector, started + Duration::from_millis(1000)).await;
        assert_eq!(started.elapsed(), Duration::from_millis(1000), "waited for a and b until the deadline");
        assert_eq!(events, vec!["counted 3 missing 0".to_string(), format!("ack {c} [1]")]);
        assert_eq!(summary.timed_out, vec![a.to_string(), b.to_string()]);
        assert!(summary.missing.is_empty());
        let mut forgotten = log.0.lock().unwrap().clone();
        forgotten.sort();
        assert_eq!(forgotten, vec![("a".into(), 7), ("b".into(), 7)]);
        drop(tx);
    }

    #[tokio::test(start_paused = true)]
    async fn ends_as_soon_as_every_node_counted_and_every_client_answered() {
        let log = Log::default();
        let (a, r1, r2) = (sid(1), sid(2), sid(3));
        let (tx, rx) = mpsc::unbounded_channel();
        tx.send((a.clone(), args("[\"local\"]"))).unwrap();
        let (rtx, rrx) = mpsc::unbounded_channel();
        rtx.send((node("n2"), RemoteAck::Asked(vec![r1.to_string()]))).unwrap();
        rtx.send((node("n3"), RemoteAck::Asked(vec![r2.to_string()]))).unwrap();
        rtx.send((node("n3"), RemoteAck::Ack(r2.to_string(), args("[3]")))).unwrap();
        rtx.send((node("n2"), RemoteAck::Ack(r1.to_string(), args("[2]")))).unwrap();
        let remote = RemoteAcks::detached(vec![node("n2"), node("n3")], rrx);
        let started = Instant::now();
        let collector = Collector::with_recipients(
            Some((Some(1), vec![(a.clone(), Who("a", log.clone()))], rx)),
            Some(remote),
        );
        let (events, summary) = run(collector, started + Duration::from_secs(60)).await;
        assert_eq!(started.elapsed(), Duration::ZERO);
        assert_eq!(events.len(), 4);
        assert_eq!(events.iter().filter(|e| e.starts_with("counted 3 missing 0")).count(), 1);
        assert_eq!(summary.asked, vec![a.to_string(), r1.to_string(), r2.to_string()]);
        assert!(summary.timed_out.is_empty() && summary.missing.is_empty());
        assert!(log.0.lock().unwrap().is_empty(), "nobody forgotten: everyone answered");
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_node_is_named_missing_at_the_deadline() {
        let r1 = sid(2);
        let (rtx, rrx) = mpsc::unbounded_channel();
        rtx.send((node("n2"), RemoteAck::Asked(vec![r1.to_string()]))).unwrap();
        rtx.send((node("n2"), RemoteAck::Ack(r1.to_string(), args("[]")))).unwrap();
        // An ack from a node for a client it never said it asked is ignored.
        rtx.send((node("n3"), RemoteAck::Ack(sid(5).to_string(), args("[]")))).unwrap();
        let remote = RemoteAcks::detached(vec![node("n2"), node("n3")], rrx);
        let started = Instant::now();
        let collector: Collector<Who> = Collector::with_recipients(None, Some(remote));
        let (events, summary) = run(collector, started + Duration::from_millis(500)).await;
        assert_eq!(started.elapsed(), Duration::from_millis(500));
        assert_eq!(events, vec![format!("ack {r1} []"), "counted 1 missing 1".to_string()]);
        assert_eq!(summary.missing, vec![node("n3")]);
        assert!(summary.timed_out.is_empty());
        drop(rtx);
    }

    #[tokio::test(start_paused = true)]
    async fn every_local_recipient_gone_ends_the_wait() {
        let log = Log::default();
        let (tx, rx) = mpsc::unbounded_channel::<(SocketId, Args)>();
        drop(tx); // the recipients disconnected, dropping their sinks
        let started = Instant::now();
        let a = sid(1);
        let collector =
            Collector::with_recipients(Some((Some(4), vec![(a.clone(), Who("a", log.clone()))], rx)), None);
        let (_, summary) = run(collector, started + Duration::from_secs(60)).await;
        assert_eq!(started.elapsed(), Duration::ZERO);
        assert_eq!(summary.timed_out, vec![a.to_string()]);
        assert_eq!(*log.0.lock().unwrap(), vec![("a".to_string(), 4)]);
    }

    #[test]
    fn dropping_an_unfinished_collector_forgets_everyone_left() {
        let log = Log::default();
        let (_tx, rx) = mpsc::unbounded_channel();
        let recipients = vec![(sid(1), Who("a", log.clone())), (sid(2), Who("b", log.clone()))];
        drop(Collector::with_recipients(Some((Some(9), recipients, rx)), None));
        let mut forgotten = log.0.lock().unwrap().clone();
        forgotten.sort();
        assert_eq!(forgotten, vec![("a".into(), 9), ("b".into(), 9)]);
    }
}
