//! The cluster secret and the keys derived from it: one for the mesh's Noise handshake (a
//! pre-shared key), one for sealing gossip datagrams. Every node of a cluster holds the same
//! secret; a node with another one can neither complete a mesh handshake nor open a datagram.
//!
//! Invariants: the secret itself is never logged, printed or sent; keys are derived with
//! HKDF-SHA256, one `info` per purpose and the cluster id in each, so a key never serves two
//! purposes and two clusters with the same secret but different ids do not accept each other.
//! Without a secret the keys are derived from the empty string: the links are still encrypted
//! (ephemeral Diffie-Hellman), but anyone can derive the keys — `ClusterKeys::authenticated`
//! says which, and the node warns at start.

use hkdf::Hkdf;
use sha2::Sha256;
use socketio_hub_config::{ClusterConfig, MIN_CLUSTER_SECRET_LEN};

/// Why the cluster secret could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// `cluster.secret_file` could not be read.
    #[error("cluster.secret_file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The secret is too short (or empty once trimmed).
    #[error("the cluster secret from {from} has {len} bytes; it needs at least {MIN_CLUSTER_SECRET_LEN} (generate one with `openssl rand -hex 32`)")]
    TooShort {
        /// Where it came from.
        from: String,
        /// Its length after trimming.
        len: usize,
    },
}

/// The keys of one cluster.
#[derive(Clone)]
pub struct ClusterKeys {
    /// Noise pre-shared key of the mesh handshake.
    pub mesh_psk: [u8; 32],
    /// XChaCha20-Poly1305 key of gossip datagrams.
    pub gossip: [u8; 32],
    /// The cluster id, bound into the mesh prologue and the datagrams' associated data.
    pub cluster_id: String,
    /// Whether the keys come from a real secret (false: derived from nothing, anyone can join).
    pub authenticated: bool,
}

impl std::fmt::Debug for ClusterKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterKeys")
            .field("cluster_id", &self.cluster_id)
            .field("authenticated", &self.authenticated)
            .finish_non_exhaustive()
    }
}

const SALT: &[u8] = b"socketio-hub cluster secret v1";

impl ClusterKeys {
    /// Derive the keys of `cluster_id` from `secret` (`None`: unauthenticated cluster).
    pub fn derive(secret: Option<&[u8]>, cluster_id: &str) -> ClusterKeys {
        let hk = Hkdf::<Sha256>::new(Some(SALT), secret.unwrap_or_default());
        let expand = |purpose: &[u8]| {
            let mut info = Vec::with_capacity(purpose.len() + 1 + cluster_id.len());
            info.extend_from_slice(purpose);
            info.push(0);
            info.extend_from_slice(cluster_id.as_bytes());
            let mut key = [0u8; 32];
            // 32 bytes is far below HKDF-SHA256's 255 × 32 output limit.
            hk.expand(&info, &mut key).expect("32-byte HKDF output is always valid");
            key
        };
        ClusterKeys {
            mesh_psk: expand(b"mesh noise psk"),
            gossip: expand(b"gossip datagram key"),
            cluster_id: cluster_id.to_string(),
            authenticated: secret.is_some(),
        }
    }

    /// Load the secret named by `config` (inline or file; `validate` already refused both) and
    /// derive the keys of `cluster_id`.
    pub fn load(config: &ClusterConfig, cluster_id: &str) -> Result<ClusterKeys, SecretError> {
        let (raw, from) = match (&config.secret, &config.secret_file) {
            (Some(s), _) => (s.clone().into_bytes(), "cluster.secret".to_string()),
            (None, Some(path)) => (
                std::fs::read(path).map_err(|source| SecretError::Read { path: path.clone(), source })?,
                path.clone(),
            ),
            (None, None) => return Ok(ClusterKeys::derive(None, cluster_id)),
        };
        let secret = raw.trim_ascii();
        if secret.len() < MIN_CLUSTER_SECRET_LEN {
            return Err(SecretError::TooShort { from, len: secret.len() });
        }
        Ok(ClusterKeys::derive(Some(secret), cluster_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_by_purpose_secret_and_cluster_id() {
        let a = ClusterKeys::derive(Some(b"0123456789abcdef0123456789abcdef"), "c");
        assert!(a.authenticated);
        assert_ne!(a.mesh_psk, a.gossip);
        let b = ClusterKeys::derive(Some(b"0123456789abcdef0123456789abcdeX"), "c");
        assert_ne!(a.mesh_psk, b.mesh_psk);
        let c = ClusterKeys::derive(Some(b"0123456789abcdef0123456789abcdef"), "other");
        assert_ne!(a.gossip, c.gossip);
        let none = ClusterKeys::derive(None, "c");
        assert!(!none.authenticated);
        assert_ne!(none.mesh_psk, a.mesh_psk);
        assert!(!format!("{a:?}").contains("mesh_psk"), "keys never appear in Debug output");
    }

    #[test]
    fn the_secret_file_is_trimmed_and_checked() {
        let dir = std::env::temp_dir().join(format!("sioh-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("secret");
        let secret = "s".repeat(40);
        std::fs::write(&file, format!("{secret}\n")).unwrap();
        let config = ClusterConfig { secret_file: Some(file.display().to_string()), ..Default::default() };
        let from_file = ClusterKeys::load(&config, "c").unwrap();
        let inline =
            ClusterKeys::load(&ClusterConfig { secret: Some(secret), ..Default::default() }, "c").unwrap();
        assert_eq!(from_file.mesh_psk, inline.mesh_psk, "the trailing newline is not part of the secret");
        std::fs::write(&file, "short\n").unwrap();
        assert!(matches!(ClusterKeys::load(&config, "c"), Err(SecretError::TooShort { len: 5, .. })));
        let missing =
            ClusterConfig { secret_file: Some(dir.join("nope").display().to_string()), ..Default::default() };
        assert!(matches!(ClusterKeys::load(&missing, "c"), Err(SecretError::Read { .. })));
        assert!(!ClusterKeys::load(&ClusterConfig::default(), "c").unwrap().authenticated);
    }
}
