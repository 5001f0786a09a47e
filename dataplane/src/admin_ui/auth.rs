//! Admin UI authentication: username + bcrypt password hash, and the `session` id the UI keeps
//! to reconnect without the password.
//!
//! A session id is self-verifying, so it works on every node of a cluster with no shared store:
//! `<expiry s>.<nonce>.<HMAC-SHA256(key, "<expiry>.<nonce>")>`, the key derived from the
//! username, the password hash and the configured access key. Changing the password (or the
//! access key) ends every session; so does the expiry (`session_ttl_s`).
//!
//! Invariants: at most `MAX_VERIFYING` bcrypt checks run at once (each costs tens of ms of CPU
//! by design), on the blocking pool; secrets are compared in constant time.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use socketio_hub_config::{AdminUiAuth, AdminUiConfig};
use tokio::sync::Semaphore;

use crate::auth::AccessKeys;

/// Most bcrypt verifications running at once; more attempts wait their turn.
const MAX_VERIFYING: usize = 2;

/// Why the admin UI's credentials could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// `password_hash_file` could not be read.
    #[error("admin_ui.password_hash_file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The hash (from the file) is not a bcrypt hash.
    #[error(
        "admin_ui: the password hash from {0} is not a bcrypt hash ($2b$<cost>$ followed by 53 characters)"
    )]
    NotBcrypt(String),
}

/// The configured credentials (`auth = "basic"`).
pub struct Credentials {
    username: String,
    hash: String,
    key: Vec<u8>,
    ttl: Duration,
    verifying: Semaphore,
}

impl Credentials {
    /// The credentials of `cfg`, reading `password_hash_file`; `None` with `auth = "none"`.
    pub fn load(cfg: &AdminUiConfig, keys: &AccessKeys) -> Result<Option<Credentials>, AuthError> {
        if cfg.auth == AdminUiAuth::None {
            return Ok(None);
        }
        let (hash, from) = match (&cfg.password_hash, &cfg.password_hash_file) {
            (Some(h), _) => (h.trim().to_string(), "admin_ui.password_hash".to_string()),
            (None, Some(path)) => (
                std::fs::read_to_string(path)
                    .map_err(|source| AuthError::Read { path: path.clone(), source })?
                    .trim()
                    .to_string(),
                path.clone(),
            ),
            // `validate` requires one of them with basic auth.
            (None, None) => (String::new(), "admin_ui.password_hash".to_string()),
        };
        if !socketio_hub_config::is_bcrypt_hash(&hash) {
            return Err(AuthError::NotBcrypt(from));
        }
        let username = cfg.username.clone().unwrap_or_default();
        // A generated access key differs per node, so only a configured one goes into the key.
        let access = if keys.generated { "" } else { keys.primary() };
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(access.as_bytes()).expect("HMAC takes any key");
        mac.update(b"socketio-hub admin-ui session\0");
        mac.update(username.as_bytes());
        mac.update(b"\0");
        mac.update(hash.as_bytes());
        let key = mac.finalize().into_bytes().to_vec();
        Ok(Some(Credentials {
            username,
            hash,
            key,
            ttl: Duration::from_secs(cfg.session_ttl_s),
            verifying: Semaphore::new(MAX_VERIFYING),
        }))
    }

    fn mac(&self, body: &str) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(body.as_bytes());
        mac
    }

    /// A new session id, valid until `now + session_ttl_s`.
    pub fn new_session(&self, now: Duration) -> String {
        let mut nonce = [0u8; 12];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut nonce);
        let body = format!("{}.{}", (now + self.ttl).as_secs(), hex::encode(nonce));
        let tag = hex::encode(self.mac(&body).finalize().into_bytes());
        format!("{body}.{tag}")
    }

    /// Whether `session` is a session id this hub issued that has not expired at `now`.
    pub fn session_valid(&self, session: &str, now: Duration) -> bool {
        let Some((body, tag)) = session.rsplit_once('.') else { return false };
        let Some((expiry, _nonce)) = body.split_once('.') else { return false };
        let (Ok(expiry), Ok(tag)) = (expiry.parse::<u64>(), hex::decode(tag)) else { return false };
        expiry > now.as_secs() && self.mac(body).verify_slice(&tag).is_ok()
    }

    /// Whether `username` and `password` match (bcrypt, off the async workers, a few at once).
    pub async fn password_valid(&self, username: &str, password: &str) -> bool {
        let user_ok: bool = {
            let (a, b) = (self.username.as_bytes(), username.as_bytes());
            a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
        };
        // The semaphore is never closed.
        let Ok(_permit) = self.verifying.acquire().await else { return false };
        let (hash, password) = (self.hash.clone(), password.to_string());
        // Verify even for a wrong username, so timing does not tell which part was wrong.
        let pass_ok = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
            .await
            .unwrap_or(false);
        user_ok && pass_ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(password: &str, ttl: u64) -> Credentials {
        let cfg = AdminUiConfig {
            enabled: true,
            username: Some("admin".into()),
            password_hash: Some(bcrypt::hash(password, 4).unwrap()),
            session_ttl_s: ttl,
            ..Default::default()
        };
        Credentials::load(&cfg, &AccessKeys::from_keys(vec!["k".repeat(32)])).unwrap().unwrap()
    }

    #[tokio::test]
    async fn passwords_are_checked_with_bcrypt() {
        let c = creds("s3cret", 60);
        assert!(c.password_valid("admin", "s3cret").await);
        assert!(!c.password_valid("admin", "wrong").await);
        assert!(!c.password_valid("root", "s3cret").await);
        assert!(!c.password_valid("", "").await);
    }

    #[test]
    fn sessions_verify_expire_and_cannot_be_forged() {
        let c = creds("s3cret", 60);
        let now = Duration::from_secs(1_000_000);
        let s = c.new_session(now);
        assert!(c.session_valid(&s, now));
        assert!(c.session_valid(&s, now + Duration::from_secs(59)));
        assert!(!c.session_valid(&s, now + Duration::from_secs(60)), "expired");
        // A later expiry with the old tag does not verify.
        let (_, rest) = s.split_once('.').unwrap();
        assert!(!c.session_valid(&format!("9999999999.{rest}"), now));
        for bad in ["", "x", "1.2", "1.2.3", &s[..s.len() - 2]] {
            assert!(!c.session_valid(bad, now), "{bad:?}");
        }
        // Another password (so another hash) does not accept it.
        assert!(!creds("other", 60).session_valid(&s, now));
    }

    #[test]
    fn a_bad_hash_file_is_a_clear_error() {
        let dir = std::env::temp_dir().join(format!("sioh-admin-ui-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("hash");
        std::fs::write(&file, "plain-password\n").unwrap();
        let cfg = AdminUiConfig {
            enabled: true,
            username: Some("admin".into()),
            password_hash_file: Some(file.display().to_string()),
            ..Default::default()
        };
        let keys = AccessKeys::from_keys(vec!["k".repeat(32)]);
        let err = Credentials::load(&cfg, &keys).err().expect("refused");
        assert!(err.to_string().contains("not a bcrypt hash"), "{err}");
        std::fs::write(&file, format!("{}\n", bcrypt::hash("pw", 4).unwrap())).unwrap();
        assert!(Credentials::load(&cfg, &keys).unwrap().is_some());
        let missing = AdminUiConfig { password_hash_file: Some("/nonexistent/hash".into()), ..cfg };
        assert!(Credentials::load(&missing, &keys).err().unwrap().to_string().contains("/nonexistent/hash"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
