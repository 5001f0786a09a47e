//! Access keys: the connection string, HS256 JWTs for the REST API and for clients, and
//! webhook signatures.
//!
//! Two keys may be configured so they can be rotated: anything signed with either verifies;
//! the hub signs with the primary. Invariant: key material never appears in logs or errors.

use std::sync::Arc;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde_json::{Map, Value};
use sha2::Sha256;
use socketio_hub_config::AuthConfig;

/// Why keys could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The keys file could not be read.
    #[error("cannot read access keys file {path}: {source}")]
    File {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Wrong number or length of keys.
    #[error("access keys: {0}")]
    Invalid(String),
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Past its `exp`.
    #[error("token expired")]
    Expired,
    /// No `exp` claim.
    #[error("token has no exp claim")]
    NoExpiry,
    /// Signed with another key, or tampered with.
    #[error("token signature is invalid")]
    BadSignature,
    /// Not a JWT, or not HS256.
    #[error("token is malformed")]
    Malformed,
}

/// The hub's access keys (one or two).
#[derive(Clone)]
pub struct AccessKeys {
    keys: Arc<Vec<String>>,
    /// Whether the key was generated at start (none configured).
    pub generated: bool,
}

impl std::fmt::Debug for AccessKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AccessKeys({} keys)", self.keys.len())
    }
}

impl AccessKeys {
    /// Keys from the configuration, else from the keys file, else a fresh random key.
    pub fn load(cfg: &AuthConfig) -> Result<Self, KeyError> {
        let mut keys: Vec<String> = cfg.access_keys.clone();
        if keys.is_empty() {
            if let Some(path) = &cfg.access_keys_file {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| KeyError::File { path: path.clone(), source })?;
                keys = text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
                if keys.is_empty() {
                    return Err(KeyError::Invalid(format!("{path} holds no key")));
                }
            }
        }
        if keys.len() > 2 {
            return Err(KeyError::Invalid(format!(
                "{} keys given; at most two (primary, secondary)",
                keys.len()
            )));
        }
        if keys.iter().any(|k| k.len() < 16) {
            return Err(KeyError::Invalid("each key needs at least 16 characters".into()));
        }
        let generated = keys.is_empty();
        if generated {
            keys.push(Self::random_key());
        }
        Ok(AccessKeys { keys: Arc::new(keys), generated })
    }

    /// Keys given directly (tests, tools).
    pub fn from_keys(keys: Vec<String>) -> Self {
        AccessKeys { keys: Arc::new(keys), generated: false }
    }

    /// A new random 256-bit key, base64url.
    pub fn random_key() -> String {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The key the hub signs with.
    pub fn primary(&self) -> &str {
        &self.keys[0]
    }

    /// `Endpoint=…;AccessKey=…;` for servers.
    pub fn connection_string(&self, endpoint: &str) -> String {
        format!("Endpoint={endpoint};AccessKey={};", self.primary())
    }

    /// `sha256=<hex>` per key, comma-separated: the webhook signature header.
    pub fn sign(&self, body: &[u8]) -> String {
        self.keys
            .iter()
            .map(|k| {
                // HMAC accepts keys of any length.
                let mut mac = Hmac::<Sha256>::new_from_slice(k.as_bytes()).expect("any key length");
                mac.update(body);
                format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Verify an HS256 JWT signed with either key; `exp` is required.
    pub fn verify_token(&self, token: &str) -> Result<Map<String, Value>, TokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_aud = false;
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp"]);
        let mut last = TokenError::Malformed;
        for key in self.keys.iter() {
            match jsonwebtoken::decode::<Map<String, Value>>(
                token,
                &DecodingKey::from_secret(key.as_bytes()),
                &validation,
            ) {
                Ok(data) => return Ok(data.claims),
                Err(e) => {
                    use jsonwebtoken::errors::ErrorKind;
                    last = match e.kind() {
                        ErrorKind::ExpiredSignature => return Err(TokenError::Expired),
                        ErrorKind::MissingRequiredClaim(_) => return Err(TokenError::NoExpiry),
                        ErrorKind::InvalidSignature => TokenError::BadSignature,
                        _ => TokenError::Malformed,
                    }
                }
            }
        }
        Err(last)
    }

    /// Sign `claims` with the primary key.
    pub fn mint(&self, claims: &Map<String, Value>) -> String {
        // Encoding a JSON map with HS256 cannot fail.
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(self.primary().as_bytes()),
        )
        .expect("HS256 encoding of a JSON map")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(exp_offset: i64) -> Map<String, Value> {
        let now = crate::clock::since_epoch().as_secs() as i64;
        json!({ "sub": "u1", "exp": now + exp_offset }).as_object().unwrap().clone()
    }

    #[test]
    fn tokens_verify_with_either_key_and_expire() {
        let a = AccessKeys::from_keys(vec!["a".repeat(32), "b".repeat(32)]);
        let b = AccessKeys::from_keys(vec!["b".repeat(32)]);
        let other = AccessKeys::from_keys(vec!["c".repeat(32)]);
        let t = b.mint(&claims(60));
        assert_eq!(a.verify_token(&t).unwrap()["sub"], "u1");
        assert_eq!(other.verify_token(&t), Err(TokenError::BadSignature));
        assert_eq!(a.verify_token(&a.mint(&claims(-120))), Err(TokenError::Expired));
        let mut no_exp = claims(60);
        no_exp.remove("exp");
        assert_eq!(a.verify_token(&a.mint(&no_exp)), Err(TokenError::NoExpiry));
        assert_eq!(a.verify_token("not.a.jwt"), Err(TokenError::Malformed));
    }

    #[test]
    fn signatures_cover_every_key() {
        let k = AccessKeys::from_keys(vec!["key-one-0123456789".into(), "key-two-0123456789".into()]);
        let sig = k.sign(b"{}");
        let parts: Vec<_> = sig.split(',').collect();
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|p| p.starts_with("sha256=") && p.len() == 71));
        assert_eq!(k.connection_string("http://h:1"), "Endpoint=http://h:1;AccessKey=key-one-0123456789;");
    }
}
