//! Identifiers: session ids that name their owning node, socket ids, room names.
//!
//! Invariant: an id is 20 URL-safe characters; the first 4 encode the owning node's tag, so
//! any node can tell where to forward a request without asking anyone.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use rand::RngCore;

/// A node's 24-bit tag, carried in every id it mints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeTag(pub u32);

impl NodeTag {
    /// Derive a tag from a node name and its start generation, so a restarted node mints ids
    /// distinct from its previous life's.
    pub fn derive(name: &str, generation: u64) -> Self {
        // FNV-1a: stable across builds and platforms, which `DefaultHasher` is not.
        let mut h: u32 = 0x811c9dc5;
        for b in name.bytes().chain(generation.to_le_bytes()) {
            h ^= b as u32;
            h = h.wrapping_mul(0x0100_0193);
        }
        NodeTag(h & 0x00ff_ffff)
    }

    fn encode(self) -> [u8; 4] {
        let bytes = self.0.to_be_bytes();
        let mut out = [0u8; 4];
        // 3 bytes encode to exactly 4 base64 characters.
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode_slice(&bytes[1..], &mut out)
            .expect("3 bytes fit in 4 chars");
        out
    }
}

/// Mint a new id for `tag`: 4 characters of node tag and 16 of randomness (96 bits).
fn mint(tag: NodeTag) -> Arc<str> {
    let mut random = [0u8; 12];
    rand::rng().fill_bytes(&mut random);
    let mut out = [0u8; 20];
    out[..4].copy_from_slice(&tag.encode());
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode_slice(random, &mut out[4..])
        .expect("12 bytes fit in 16 chars");
    // Base64 output is ASCII.
    Arc::from(std::str::from_utf8(&out).expect("ascii"))
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Arc<str>);

        impl $name {
            /// A fresh random id owned by the node with `tag`.
            pub fn new(tag: NodeTag) -> Self {
                $name(mint(tag))
            }
            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
            /// Accept an id received from outside, when it has the shape of ours.
            pub fn parse(text: &str) -> Option<Self> {
                let ok = text.len() == 20
                    && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                ok.then(|| $name(Arc::from(text)))
            }
            /// Whether this id was minted by the node with `tag`.
            pub fn is_owned_by(&self, tag: NodeTag) -> bool {
                self.0.as_bytes()[..4] == tag.encode()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// An Engine.IO session id (one per client connection).
    Sid
);
id_type!(
    /// A Socket.IO socket id (one per namespace a connection joined); also the socket's own room.
    SocketId
);

/// A room name.
pub type Room = Arc<str>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_name_their_node() {
        let a = NodeTag::derive("hub-0", 1);
        let b = NodeTag::derive("hub-0", 2);
        assert_ne!(a, b);
        let sid = Sid::new(a);
        assert_eq!(sid.as_str().len(), 20);
        assert!(sid.is_owned_by(a));
        assert!(!sid.is_owned_by(b));
        assert_eq!(Sid::parse(sid.as_str()), Some(sid.clone()));
        assert_eq!(Sid::parse("short"), None);
        assert_eq!(Sid::parse("aaaaaaaaaaaaaaaaaaa/"), None);
    }
}
