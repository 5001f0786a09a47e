//! The recovery offset a client holds: a version vector, the highest sequence number of each
//! emitting node's stream that the socket's node had applied when it sent the packet.
//!
//! Every node applies each emitter's stream in order (one mesh link per pair of nodes), so
//! "everything from emitter E up to `seq`" is a prefix, and a vector of prefixes describes
//! exactly what a socket can have received — on whichever node it was. That is what lets any
//! node that holds the same streams replay what the socket missed, with nothing twice.
//!
//! Text form: `tag-seq` pairs (tag as 6 hex digits, seq in decimal) sorted by tag, joined by
//! `.`, e.g. `00a1b2-57.3f0c11-3`. Parsing is strict and bounded: a malformed offset is no
//! offset (the client is then told it was not recovered).

use std::collections::BTreeMap;

use crate::ids::NodeTag;

/// Most emitters an offset may name (a cluster's nodes, and recently gone generations).
pub const MAX_EMITTERS: usize = 64;

/// An emitter's tag and a sequence number in its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Stamp {
    /// The emitting node's tag.
    pub tag: NodeTag,
    /// Position in that node's stream of this namespace (from 1).
    pub seq: u64,
}

/// Highest applied sequence number per emitter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vector(pub BTreeMap<u32, u64>);

impl Vector {
    /// The text a client stores.
    pub fn text(&self) -> String {
        let mut out = String::with_capacity(self.0.len() * 12);
        for (i, (tag, seq)) in self.0.iter().enumerate() {
            if i > 0 {
                out.push('.');
            }
            out.push_str(&format!("{tag:06x}-{seq}"));
        }
        out
    }

    /// Parse a client's offset; `None` when it is not one of ours.
    pub fn parse(text: &str) -> Option<Vector> {
        if text.is_empty() {
            return Some(Vector::default());
        }
        if text.len() > MAX_EMITTERS * 28 {
            return None;
        }
        let mut map = BTreeMap::new();
        for part in text.split('.') {
            let (tag, seq) = part.split_once('-')?;
            if tag.len() != 6 || seq.is_empty() || seq.len() > 20 || !seq.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            let tag = u32::from_str_radix(tag, 16).ok()?;
            let seq: u64 = seq.parse().ok()?;
            if map.insert(tag, seq).is_some() || map.len() > MAX_EMITTERS {
                return None;
            }
        }
        Some(Vector(map))
    }

    /// The sequence number applied for `tag`, if the vector names it.
    pub fn get(&self, tag: NodeTag) -> Option<u64> {
        self.0.get(&tag.0).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn text_round_trips_and_is_sorted() {
        let v = Vector(BTreeMap::from([(0x3f0c11, 3), (0x00a1b2, 57)]));
        assert_eq!(v.text(), "00a1b2-57.3f0c11-3");
        assert_eq!(Vector::parse(&v.text()), Some(v));
        assert_eq!(Vector::parse(""), Some(Vector::default()));
    }

    #[test]
    fn refuses_what_is_not_an_offset() {
        for bad in
            ["12", "00a1b2", "00a1b2-", "00a1b2-x", "0a1b2-1", "00a1b2-1.00a1b2-2", "zzzzzz-1", "00a1b2--1"]
        {
            assert_eq!(Vector::parse(bad), None, "{bad}");
        }
        let long: Vec<String> = (0..=MAX_EMITTERS as u32).map(|t| format!("{t:06x}-1")).collect();
        assert_eq!(Vector::parse(&long.join(".")), None);
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in ".{0,200}") {
            let _ = Vector::parse(&s);
        }

        #[test]
        fn any_vector_round_trips(m in proptest::collection::btree_map(0u32..0x100_0000, any::<u64>(), 0..MAX_EMITTERS)) {
            let v = Vector(m);
            prop_assert_eq!(Vector::parse(&v.text()), Some(v));
        }
    }
}
