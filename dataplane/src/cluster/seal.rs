//! Sealed gossip datagrams: every chitchat datagram travels encrypted and authenticated with
//! XChaCha20-Poly1305 under the cluster's gossip key, with a random nonce per datagram and the
//! cluster id as associated data. Pure: bytes and a clock reading in, bytes or a drop reason out.
//!
//! ```text
//! datagram  "SG" u8:version | nonce[24] | seal(inner) | tag[16]      (associated data:
//!                                                                     header + cluster id)
//! inner     u64:sender u64:seq u64:unix-ms u8:part | chitchat bytes…
//! ```
//!
//! `sender` is random per process, `seq` counts its datagrams, `part` is 0 for a whole message
//! or 1/2 for the halves of one too large for a single sealed datagram (chitchat fills a
//! datagram up to the UDP limit, so the seal's 68 bytes can push it over).
//!
//! Invariants: nothing is handed to chitchat unless it opened under the key, so a node with
//! another secret or cluster id cannot add, change or read gossip; a datagram is accepted once
//! — a replay of a recent one is refused by the sender's sliding window (64 sequence numbers),
//! an old one by its timestamp (`MAX_SKEW`, which also bounds the clock difference between
//! nodes); state is bounded: at most `MAX_SENDERS` senders, one pending half each.

use std::collections::HashMap;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;

use super::secret::ClusterKeys;

/// Datagram magic and format version.
const HEADER: [u8; 3] = *b"SG\x01";
const NONCE: usize = 24;
const TAG: usize = 16;
const INNER: usize = 8 + 8 + 8 + 1;
/// Largest UDP payload over IPv4 (what chitchat fills at most).
pub const MAX_DATAGRAM: usize = 65_507;
/// Bytes a sealed datagram adds to what it carries.
pub const OVERHEAD: usize = HEADER.len() + NONCE + TAG + INNER;
/// Most chitchat bytes one sealed datagram carries.
pub const MAX_PART: usize = MAX_DATAGRAM - OVERHEAD;
/// How far a datagram's timestamp may be from this node's clock.
pub const MAX_SKEW_MS: u64 = 60_000;
/// Senders whose replay windows are kept (a cluster's nodes and their recent restarts).
pub const MAX_SENDERS: usize = 1024;
const WINDOW: u64 = 64;

/// Why a datagram was dropped: the `reason` label of `gossip_datagrams_dropped_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Dropped {
    /// Too short, or not a sealed gossip datagram.
    #[error("not a sealed gossip datagram")]
    Malformed,
    /// Did not open: another cluster secret or cluster id, or forged or altered.
    #[error("gossip datagram failed to authenticate")]
    Auth,
    /// Opened, but was already accepted (or is older than the sender's window).
    #[error("replayed gossip datagram")]
    Replay,
    /// Opened, but its timestamp is further than `MAX_SKEW_MS` from this node's clock.
    #[error("gossip datagram outside the clock window")]
    Stale,
    /// The second half of a message whose first half never arrived.
    #[error("half of a gossip message without its other half")]
    Incomplete,
    /// A message too large even for two datagrams (never produced by chitchat).
    #[error("gossip message too large to seal")]
    Oversize,
}

impl Dropped {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Dropped::Malformed => "malformed",
            Dropped::Auth => "auth",
            Dropped::Replay => "replay",
            Dropped::Stale => "stale",
            Dropped::Incomplete => "incomplete",
            Dropped::Oversize => "oversize",
        }
    }
}

fn aad(cluster_id: &str) -> Vec<u8> {
    let mut a = HEADER.to_vec();
    a.extend_from_slice(cluster_id.as_bytes());
    a
}

/// Seals this node's outgoing datagrams.
pub struct Sealer {
    cipher: XChaCha20Poly1305,
    aad: Vec<u8>,
    sender: u64,
    seq: u64,
}

impl Sealer {
    /// A sealer with a fresh random sender id.
    pub fn new(keys: &ClusterKeys) -> Sealer {
        Sealer {
            cipher: XChaCha20Poly1305::new(&keys.gossip.into()),
            aad: aad(&keys.cluster_id),
            sender: rand::rng().next_u64(),
            seq: 0,
        }
    }

    /// Seal one chitchat datagram into one sealed datagram, or two when it is too large.
    pub fn seal(&mut self, plain: &[u8], now_ms: u64) -> Result<Vec<Vec<u8>>, Dropped> {
        if plain.len() <= MAX_PART {
            return Ok(vec![self.seal_part(plain, 0, now_ms)]);
        }
        if plain.len() > 2 * MAX_PART {
            return Err(Dropped::Oversize);
        }
        let (a, b) = plain.split_at(plain.len() / 2);
        Ok(vec![self.seal_part(a, 1, now_ms), self.seal_part(b, 2, now_ms)])
    }

    fn seal_part(&mut self, plain: &[u8], part: u8, now_ms: u64) -> Vec<u8> {
        let mut inner = Vec::with_capacity(INNER + plain.len());
        inner.extend_from_slice(&self.sender.to_be_bytes());
        inner.extend_from_slice(&self.seq.to_be_bytes());
        inner.extend_from_slice(&now_ms.to_be_bytes());
        inner.push(part);
        inner.extend_from_slice(plain);
        self.seq += 1;
        let mut nonce = [0u8; NONCE];
        rand::rng().fill_bytes(&mut nonce);
        // Encryption fails only for inputs above ~256 GiB.
        let sealed = self
            .cipher
            .encrypt(&XNonce::from(nonce), Payload { msg: &inner, aad: &self.aad })
            .expect("a datagram is far below the AEAD's size limit");
        let mut out = Vec::with_capacity(HEADER.len() + NONCE + sealed.len());
        out.extend_from_slice(&HEADER);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }
}

struct SenderState {
    /// Highest sequence number accepted.
    top: u64,
    /// Bit `i`: `top - i` was accepted.
    window: u64,
    last_seen_ms: u64,
    /// First half of a split message: its sequence number and bytes.
    half: Option<(u64, Vec<u8>)>,
}

/// Opens incoming datagrams, refusing forged, foreign, replayed and stale ones.
pub struct Opener {
    cipher: XChaCha20Poly1305,
    aad: Vec<u8>,
    senders: HashMap<u64, SenderState>,
}

impl Opener {
    /// An opener for `keys`.
    pub fn new(keys: &ClusterKeys) -> Opener {
        Opener {
            cipher: XChaCha20Poly1305::new(&keys.gossip.into()),
            aad: aad(&keys.cluster_id),
            senders: HashMap::new(),
        }
    }

    /// Open a datagram: `Ok(Some(bytes))` is a chitchat datagram to process, `Ok(None)` the
    /// first half of one (kept until its second half arrives).
    pub fn open(&mut self, datagram: &[u8], now_ms: u64) -> Result<Option<Vec<u8>>, Dropped> {
        if datagram.len() < HEADER.len() + NONCE + TAG + INNER || datagram[..HEADER.len()] != HEADER {
            return Err(Dropped::Malformed);
        }
        let nonce: [u8; NONCE] =
            datagram[HEADER.len()..HEADER.len() + NONCE].try_into().map_err(|_| Dropped::Malformed)?;
        let mut inner = self
            .cipher
            .decrypt(&XNonce::from(nonce), Payload { msg: &datagram[HEADER.len() + NONCE..], aad: &self.aad })
            .map_err(|_| Dropped::Auth)?;
        let word = |at: usize| u64::from_be_bytes(inner[at..at + 8].try_into().expect("8 bytes"));
        let (sender, seq, sent_ms, part) = (word(0), word(8), word(16), inner[24]);
        if part > 2 {
            return Err(Dropped::Malformed);
        }
        if sent_ms.abs_diff(now_ms) > MAX_SKEW_MS {
            return Err(Dropped::Stale);
        }
        let state = self.sender(sender, now_ms);
        accept_seq(state, seq)?;
        state.last_seen_ms = now_ms;
        inner.drain(..INNER);
        match part {
            0 => Ok(Some(inner)),
            1 => {
                state.half = Some((seq, inner));
                Ok(None)
            }
            _ => match state.half.take() {
                Some((first, mut whole)) if first + 1 == seq => {
                    whole.extend_from_slice(&inner);
                    Ok(Some(whole))
                }
                _ => Err(Dropped::Incomplete),
            },
        }
    }

    fn sender(&mut self, sender: u64, now_ms: u64) -> &mut SenderState {
        if !self.senders.contains_key(&sender) && self.senders.len() >= MAX_SENDERS {
            // Forget senders silent for longer than the clock window first: their replays are
            // stale anyway. Then, if still full, the longest silent one.
            self.senders.retain(|_, s| now_ms.saturating_sub(s.last_seen_ms) <= 2 * MAX_SKEW_MS);
            if self.senders.len() >= MAX_SENDERS {
                if let Some(oldest) = self.senders.iter().min_by_key(|(_, s)| s.last_seen_ms).map(|(k, _)| *k)
                {
                    self.senders.remove(&oldest);
                }
            }
        }
        self.senders.entry(sender).or_insert(SenderState {
            top: 0,
            window: 0,
            last_seen_ms: now_ms,
            half: None,
        })
    }
}

/// The sliding replay window: accept each sequence number once, and none older than the window.
fn accept_seq(s: &mut SenderState, seq: u64) -> Result<(), Dropped> {
    if s.window == 0 {
        // First datagram from this sender.
        s.top = seq;
        s.window = 1;
        return Ok(());
    }
    if seq > s.top {
        let shift = seq - s.top;
        s.window = if shift >= WINDOW { 0 } else { s.window << shift };
        s.window |= 1;
        s.top = seq;
        return Ok(());
    }
    let back = s.top - seq;
    if back >= WINDOW || s.window & (1 << back) != 0 {
        return Err(Dropped::Replay);
    }
    s.window |= 1 << back;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000_000;

    fn keys(secret: &[u8], cluster: &str) -> ClusterKeys {
        ClusterKeys::derive(Some(secret), cluster)
    }

    const SECRET: &[u8] = b"gossip-test-secret-of-thirty-two-bytes";

    #[test]
    fn a_datagram_opens_once_under_the_same_key() {
        let k = keys(SECRET, "c");
        let (mut s, mut o) = (Sealer::new(&k), Opener::new(&k));
        let d = s.seal(b"hello chitchat", NOW).unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].len(), b"hello chitchat".len() + OVERHEAD);
        assert_eq!(o.open(&d[0], NOW + 5).unwrap().as_deref(), Some(&b"hello chitchat"[..]));
        assert_eq!(o.open(&d[0], NOW + 6), Err(Dropped::Replay), "a replay is dropped");
        // Two seals of the same bytes differ (random nonce): nothing to correlate.
        assert_ne!(s.seal(b"x", NOW).unwrap(), s.seal(b"x", NOW).unwrap());
    }

    #[test]
    fn another_secret_cluster_id_or_a_forgery_is_refused() {
        let k = keys(SECRET, "c");
        let mut o = Opener::new(&k);
        for other in [
            keys(b"other-gossip-secret-of-thirty-two-byt", "c"),
            keys(SECRET, "other-cluster"),
            ClusterKeys::derive(None, "c"),
        ] {
            let d = Sealer::new(&other).seal(b"join me", NOW).unwrap();
            assert_eq!(o.open(&d[0], NOW), Err(Dropped::Auth));
        }
        // A flipped bit anywhere after the header fails authentication.
        let d = Sealer::new(&k).seal(b"state", NOW).unwrap().remove(0);
        for at in [3, 3 + NONCE, d.len() - 1] {
            let mut bad = d.clone();
            bad[at] ^= 1;
            assert_eq!(o.open(&bad, NOW), Err(Dropped::Auth), "byte {at}");
        }
        // Plain chitchat bytes, a short or a foreign datagram.
        assert_eq!(
            o.open(b"\x00\x00\x00junk-datagram-that-is-long-enough-to-try", NOW),
            Err(Dropped::Malformed)
        );
        assert_eq!(o.open(&d[..20], NOW), Err(Dropped::Malformed));
        assert_eq!(o.open(&d, NOW).unwrap().as_deref(), Some(&b"state"[..]), "the original still opens");
    }

    #[test]
    fn replays_are_dropped_within_and_beyond_the_window_and_old_datagrams_by_time() {
        let k = keys(SECRET, "c");
        let (mut s, mut o) = (Sealer::new(&k), Opener::new(&k));
        let sealed: Vec<Vec<u8>> = (0..100).map(|i| s.seal(&[i as u8], NOW).unwrap().remove(0)).collect();
        // Out of order within the window is fine; each exactly once.
        for i in [5usize, 3, 4, 0, 1, 2] {
            assert!(o.open(&sealed[i], NOW).unwrap().is_some(), "datagram {i}");
        }
        assert_eq!(o.open(&sealed[3], NOW), Err(Dropped::Replay));
        for d in &sealed[6..100] {
            o.open(d, NOW).unwrap();
        }
        // 10 is now more than 64 behind the newest: refused even though never seen twice here.
        assert_eq!(o.open(&sealed[10], NOW), Err(Dropped::Replay));
        // A fresh opener (this node restarted) still refuses a captured old datagram by time.
        let mut fresh = Opener::new(&k);
        assert_eq!(fresh.open(&sealed[0], NOW + MAX_SKEW_MS + 1), Err(Dropped::Stale));
        assert_eq!(fresh.open(&s.seal(b"x", NOW - MAX_SKEW_MS - 1).unwrap()[0], NOW), Err(Dropped::Stale));
        assert!(
            fresh.open(&s.seal(b"x", NOW - 1000).unwrap()[0], NOW).unwrap().is_some(),
            "1 s of skew is fine"
        );
    }

    #[test]
    fn a_full_size_chitchat_datagram_is_split_in_two_and_rejoined() {
        let k = keys(SECRET, "c");
        let (mut s, mut o) = (Sealer::new(&k), Opener::new(&k));
        let big: Vec<u8> = (0..MAX_DATAGRAM).map(|i| i as u8).collect();
        let parts = s.seal(&big, NOW).unwrap();
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|p| p.len() <= MAX_DATAGRAM));
        assert_eq!(o.open(&parts[0], NOW), Ok(None));
        assert_eq!(o.open(&parts[1], NOW).unwrap(), Some(big.clone()));
        // A second half alone (its first half lost) is dropped, and the next message is fine.
        let parts = s.seal(&big, NOW).unwrap();
        assert_eq!(o.open(&parts[1], NOW), Err(Dropped::Incomplete));
        assert!(o.open(&s.seal(b"next", NOW).unwrap()[0], NOW).unwrap().is_some());
        assert_eq!(s.seal(&vec![0u8; 2 * MAX_PART + 1], NOW), Err(Dropped::Oversize));
    }

    #[test]
    fn sender_state_is_bounded() {
        let k = keys(SECRET, "c");
        let mut o = Opener::new(&k);
        for i in 0..(MAX_SENDERS as u64 + 10) {
            // Each sealer is a new sender (a restarted node).
            o.open(&Sealer::new(&k).seal(b"hi", NOW + i).unwrap()[0], NOW + i).unwrap();
        }
        assert!(o.senders.len() <= MAX_SENDERS);
    }
}
