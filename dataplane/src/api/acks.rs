//! Collecting the clients' acknowledgements of one emit-with-ack.
//!
//! Every recipient was asked for an ack with the same id; answers arrive on the `AckSink`
//! channel. `AckWait` waits until each recipient answered, every sink was dropped (all of them
//! disconnected) or the deadline passed. Invariant: a recipient that did not answer has its ack
//! id forgotten — on timeout, and also when the wait itself is dropped (the HTTP client went
//! away) — so no socket keeps a dead waiter.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

use crate::ids::SocketId;
use crate::state::{Args, Socket};

/// Something that was asked for an ack and can stop expecting it.
pub trait Forget {
    /// Stop expecting ack `id`.
    fn forget(&self, id: u64);
}

impl Forget for Arc<Socket> {
    fn forget(&self, id: u64) {
        self.forget_ack(id);
    }
}

/// The result of a wait: answers in arrival order, silent recipients in selection order.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct AckOutcome {
    /// Who answered, with what.
    pub responses: Vec<(SocketId, Args)>,
    /// Who did not answer in time (or disconnected first).
    pub timed_out: Vec<SocketId>,
}

/// The recipients of one emit-with-ack that have not answered yet.
pub struct AckWait<T: Forget> {
    ack_id: u64,
    order: Vec<SocketId>,
    pending: HashMap<SocketId, T>,
    responses: Vec<(SocketId, Args)>,
}

impl<T: Forget> AckWait<T> {
    /// Wait for `awaiting` (in selection order) to answer ack `ack_id`.
    pub fn new(ack_id: u64, awaiting: impl IntoIterator<Item = (SocketId, T)>) -> Self {
        let mut order = Vec::new();
        let mut pending = HashMap::new();
        for (id, who) in awaiting {
            order.push(id.clone());
            pending.insert(id, who);
        }
        AckWait { ack_id, order, pending, responses: Vec::new() }
    }

    /// An answer arrived. Answers from sockets not waited for (or answering twice) are ignored.
    pub fn on_ack(&mut self, from: SocketId, args: Args) {
        if self.pending.remove(&from).is_some() {
            self.responses.push((from, args));
        }
    }

    /// Whether everyone answered.
    pub fn is_done(&self) -> bool {
        self.pending.is_empty()
    }

    /// Take answers from `rx` until everyone answered, the channel closed, or `deadline`.
    pub async fn collect(
        mut self,
        rx: &mut UnboundedReceiver<(SocketId, Args)>,
        deadline: Instant,
    ) -> AckOutcome {
        while !self.is_done() {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some((from, args))) => self.on_ack(from, args),
                Ok(None) | Err(_) => break,
            }
        }
        self.finish()
    }

    /// Stop waiting: forget the ack id on every silent recipient.
    pub fn finish(mut self) -> AckOutcome {
        let pending = std::mem::take(&mut self.pending);
        let timed_out = self
            .order
            .iter()
            .filter_map(|id| {
                pending.get(id).map(|who| {
                    who.forget(self.ack_id);
                    id.clone()
                })
            })
            .collect();
        AckOutcome { responses: std::mem::take(&mut self.responses), timed_out }
    }
}

impl<T: Forget> Drop for AckWait<T> {
    fn drop(&mut self) {
        for who in self.pending.values() {
            who.forget(self.ack_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use tokio::sync::mpsc;

    use super::*;

    #[derive(Clone, Default)]
    struct Log(Arc<Mutex<Vec<(String, u64)>>>);

    struct Who(&'static str, Log);

    impl Forget for Who {
        fn forget(&self, id: u64) {
            self.1 .0.lock().unwrap().push((self.0.to_string(), id));
        }
    }

    fn sid(s: &str) -> SocketId {
        SocketId::parse(&format!("{s:A<20}")).unwrap()
    }

    fn args(json: &str) -> Args {
        Args { json: json.into(), attachments: vec![] }
    }

    fn wait(log: &Log) -> AckWait<Who> {
        AckWait::new(
            7,
            [
                (sid("a"), Who("a", log.clone())),
                (sid("b"), Who("b", log.clone())),
                (sid("c"), Who("c", log.clone())),
            ],
        )
    }

    #[tokio::test(start_paused = true)]
    async fn silent_recipients_time_out_and_are_forgotten() {
        let log = Log::default();
        let (tx, mut rx) = mpsc::unbounded_channel();
        tx.send((sid("c"), args("[1]"))).unwrap();
        tx.send((sid("x"), args("[9]"))).unwrap(); // not waited for
        tx.send((sid("c"), args("[2]"))).unwrap(); // a second answer
        let started = Instant::now();
        let out = wait(&log).collect(&mut rx, started + Duration::from_millis(1000)).await;
        assert_eq!(started.elapsed(), Duration::from_millis(1000));
        assert_eq!(out.responses, vec![(sid("c"), args("[1]"))]);
        assert_eq!(out.timed_out, vec![sid("a"), sid("b")]);
        assert_eq!(*log.0.lock().unwrap(), vec![("a".into(), 7), ("b".into(), 7)]);
        drop(tx);
    }

    #[tokio::test(start_paused = true)]
    async fn returns_as_soon_as_everyone_answered() {
        let log = Log::default();
        let (tx, mut rx) = mpsc::unbounded_channel();
        for s in ["b", "a", "c"] {
            tx.send((sid(s), args("[]"))).unwrap();
        }
        let started = Instant::now();
        let out = wait(&log).collect(&mut rx, started + Duration::from_secs(60)).await;
        assert_eq!(started.elapsed(), Duration::ZERO);
        assert_eq!(
            out.responses.iter().map(|r| r.0.clone()).collect::<Vec<_>>(),
            vec![sid("b"), sid("a"), sid("c")]
        );
        assert!(out.timed_out.is_empty());
        assert!(log.0.lock().unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_closed_channel_ends_the_wait() {
        let log = Log::default();
        let (tx, mut rx) = mpsc::unbounded_channel();
        tx.send((sid("a"), args("[]"))).unwrap();
        drop(tx); // every recipient disconnected
        let started = Instant::now();
        let out = wait(&log).collect(&mut rx, started + Duration::from_secs(60)).await;
        assert_eq!(started.elapsed(), Duration::ZERO);
        assert_eq!(out.timed_out, vec![sid("b"), sid("c")]);
    }

    #[test]
    fn dropping_the_wait_forgets_everyone_left() {
        let log = Log::default();
        let mut w = wait(&log);
        w.on_ack(sid("b"), args("[]"));
        assert!(!w.is_done());
        drop(w);
        let mut forgotten = log.0.lock().unwrap().clone();
        forgotten.sort();
        assert_eq!(forgotten, vec![("a".into(), 7), ("c".into(), 7)]);
    }
}
