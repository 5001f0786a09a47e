//! Access keys: the connection string, HS256 JWTs for the REST API, server links and clients,
//! and webhook signatures.
//!
//! Two keys may be configured so they can be rotated: anything signed with either verifies;
//! the hub signs with the primary. Invariant: key material never appears in logs or errors.
//!
//! One key signs three kinds of token, told apart by `aud` (and, for links, a claim), so that a
//! token handed to a browser can never act as a server:
//!
//! | token | `aud` | also | verified by |
//! | --- | --- | --- | --- |
//! | client | `socketio-hub:client` (minted), or none (app-signed) | | `verify_client_token` |
//! | REST API | `socketio-hub:api`, none, or the app's own | | `verify_api_token` |
//! | server link | `socketio-hub:link` (required) | `"sio.link": true` (required) | `verify_link_token` |
//!
//! Invariant: a token with the client audience is refused by the REST API and the link
//! endpoint; a token with a server audience (link or api) or a `sio.link` claim is refused as a
//! client token; `POST /api/v1/tokens` only ever mints the client audience (it refuses every
//! `RESERVED_CLAIMS` name and every `sio.` claim in user input).

use std::sync::Arc;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde_json::{Map, Value};
use sha2::Sha256;
use socketio_hub_config::AuthConfig;

/// The `aud` of client tokens (`POST /api/v1/tokens` mints only this one).
pub const CLIENT_AUDIENCE: &str = "socketio-hub:client";
/// The `aud` a server-link token must carry (with `"sio.link": true`).
pub const LINK_AUDIENCE: &str = "socketio-hub:link";
/// The `aud` REST API tokens may carry (optional; clients refuse tokens that carry it).
pub const API_AUDIENCE: &str = "socketio-hub:api";
/// The claim a server-link token must set to `true`.
pub const LINK_CLAIM: &str = "sio.link";

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
    /// A valid token presented where its kind is not accepted (see the module table).
    #[error("{0}")]
    WrongKind(WrongKind),
}

/// Which kind of token was presented where it does not belong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WrongKind {
    /// A client token (aud `socketio-hub:client`) used against the REST API or a server link.
    #[error(
        "it is a client token (aud \"socketio-hub:client\"); servers sign their own token with an access key"
    )]
    ClientTokenForServer,
    /// A link endpoint token without `aud: socketio-hub:link` and `sio.link: true`.
    #[error("a server link needs a token with \"aud\": \"socketio-hub:link\" and \"sio.link\": true")]
    NotLinkToken,
    /// A server-link token used against the REST API.
    #[error("it is a server-link token (aud \"socketio-hub:link\"); the REST API needs its own token")]
    LinkTokenForApi,
    /// A server token (aud link or api, or a `sio.link` claim) presented by a client.
    #[error("it is a server token (aud \"socketio-hub:link\"/\"socketio-hub:api\" or a \"sio.link\" claim); clients need a client token")]
    ServerTokenForClient,
}

/// The signed headers of one webhook call. The MAC covers
/// `<timestamp>\n<ce-id>\n<ce-type>\n<ce-source>\n<raw body>`: HTTP header values cannot hold a
/// line feed, so the fields cannot be shifted into one another.
#[derive(Debug, Clone, Copy)]
pub struct WebhookParts<'a> {
    /// `ce-timestamp`: seconds since the Unix epoch.
    pub timestamp: u64,
    /// `ce-id`.
    pub id: &'a str,
    /// `ce-type`.
    pub kind: &'a str,
    /// `ce-source`.
    pub source: &'a str,
}

impl WebhookParts<'_> {
    fn feed(&self, mac: &mut Hmac<Sha256>) {
        for field in [self.timestamp.to_string().as_str(), self.id, self.kind, self.source] {
            mac.update(field.as_bytes());
            mac.update(b"\n");
        }
    }
}

/// The body of the link endpoint's 401 for `e`: what the SDK's operator must fix.
pub fn link_refusal(e: &TokenError) -> String {
    match e {
        TokenError::WrongKind(kind) => format!("access token refused: {kind}"),
        e => format!(
            "access token refused ({e}): is the AccessKey of the connection string one of this hub's keys?"
        ),
    }
}

/// Whether the token's `aud` (a string or a list of strings) names `audience`.
fn has_audience(claims: &Map<String, Value>, audience: &str) -> bool {
    match claims.get("aud") {
        Some(Value::String(a)) => a == audience,
        Some(Value::Array(auds)) => auds.iter().any(|a| a == audience),
        _ => false,
    }
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

    /// The webhook `ce-signature` header: `v1=<hex>` per key (primary first), comma-separated,
    /// each an HMAC-SHA256 of `signed_webhook_payload(..)`. Binding the timestamp and the `ce-*`
    /// headers lets a receiver refuse stale, replayed and re-labelled calls (docs/webhooks.md).
    pub fn sign_webhook(&self, parts: &WebhookParts<'_>, body: &[u8]) -> String {
        self.keys
            .iter()
            .map(|k| {
                // HMAC accepts keys of any length.
                let mut mac = Hmac::<Sha256>::new_from_slice(k.as_bytes()).expect("any key length");
                parts.feed(&mut mac);
                mac.update(body);
                format!("v1={}", hex::encode(mac.finalize().into_bytes()))
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Verify an HS256 JWT signed with either key; `exp` is required. This checks no audience:
    /// callers use `verify_client_token`, `verify_api_token` or `verify_link_token`.
    fn verify_token(&self, token: &str) -> Result<Map<String, Value>, TokenError> {
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

    /// Verify a server-link token: signature and `exp` as `verify_token`, plus `aud`
    /// `socketio-hub:link` and `"sio.link": true` (both required, so neither a minted client
    /// token nor a REST token opens a link).
    pub fn verify_link_token(&self, token: &str) -> Result<Map<String, Value>, TokenError> {
        let claims = self.verify_token(token)?;
        if has_audience(&claims, CLIENT_AUDIENCE) {
            return Err(TokenError::WrongKind(WrongKind::ClientTokenForServer));
        }
        if !has_audience(&claims, LINK_AUDIENCE) || claims.get(LINK_CLAIM) != Some(&Value::Bool(true)) {
            return Err(TokenError::WrongKind(WrongKind::NotLinkToken));
        }
        Ok(claims)
    }

    /// Verify a REST API bearer token: signature and `exp`; the client and link audiences are
    /// refused (any other `aud`, or none, is the application's own business).
    pub fn verify_api_token(&self, token: &str) -> Result<Map<String, Value>, TokenError> {
        let claims = self.verify_token(token)?;
        if has_audience(&claims, CLIENT_AUDIENCE) {
            return Err(TokenError::WrongKind(WrongKind::ClientTokenForServer));
        }
        if has_audience(&claims, LINK_AUDIENCE) || claims.contains_key(LINK_CLAIM) {
            return Err(TokenError::WrongKind(WrongKind::LinkTokenForApi));
        }
        Ok(claims)
    }

    /// Verify a client token (CONNECT `auth.token` or `access_token`): signature and `exp`;
    /// server tokens (aud link or api, or any `sio.link` claim) are refused so a leaked
    /// server token cannot be replayed as a client's identity.
    pub fn verify_client_token(&self, token: &str) -> Result<Map<String, Value>, TokenError> {
        let claims = self.verify_token(token)?;
        if has_audience(&claims, LINK_AUDIENCE)
            || has_audience(&claims, API_AUDIENCE)
            || claims.contains_key(LINK_CLAIM)
        {
            return Err(TokenError::WrongKind(WrongKind::ServerTokenForClient));
        }
        Ok(claims)
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

    fn signed(k: &AccessKeys, extra: Value) -> String {
        let mut c = claims(60);
        c.extend(extra.as_object().unwrap().clone());
        k.mint(&c)
    }

    #[test]
    fn link_tokens_need_the_link_audience_and_claim() {
        let k = AccessKeys::from_keys(vec!["a".repeat(32)]);
        let good = signed(&k, json!({ "aud": LINK_AUDIENCE, "sio.link": true }));
        assert!(k.verify_link_token(&good).is_ok());
        let list = signed(&k, json!({ "aud": ["x", LINK_AUDIENCE], "sio.link": true }));
        assert!(k.verify_link_token(&list).is_ok());
        let not_link = TokenError::WrongKind(WrongKind::NotLinkToken);
        for extra in [
            json!({ "sio.link": true }),
            json!({ "aud": LINK_AUDIENCE }),
            json!({ "aud": LINK_AUDIENCE, "sio.link": "true" }),
            json!({ "aud": API_AUDIENCE, "sio.link": true }),
            json!({}),
        ] {
            assert_eq!(k.verify_link_token(&signed(&k, extra.clone())), Err(not_link.clone()), "{extra}");
        }
        let client = signed(&k, json!({ "aud": [CLIENT_AUDIENCE, LINK_AUDIENCE], "sio.link": true }));
        assert_eq!(k.verify_link_token(&client), Err(TokenError::WrongKind(WrongKind::ClientTokenForServer)));
        assert_eq!(k.verify_link_token("x.y.z"), Err(TokenError::Malformed));
    }

    #[test]
    fn api_and_client_tokens_refuse_the_other_kinds() {
        let k = AccessKeys::from_keys(vec!["a".repeat(32)]);
        let link = signed(&k, json!({ "aud": LINK_AUDIENCE, "sio.link": true }));
        let client = signed(&k, json!({ "aud": CLIENT_AUDIENCE }));
        let api = signed(&k, json!({ "aud": API_AUDIENCE }));
        let plain = signed(&k, json!({}));
        assert_eq!(k.verify_api_token(&link), Err(TokenError::WrongKind(WrongKind::LinkTokenForApi)));
        assert_eq!(k.verify_api_token(&client), Err(TokenError::WrongKind(WrongKind::ClientTokenForServer)));
        assert!(k.verify_api_token(&api).is_ok() && k.verify_api_token(&plain).is_ok());
        let server = TokenError::WrongKind(WrongKind::ServerTokenForClient);
        assert_eq!(k.verify_client_token(&link), Err(server.clone()));
        assert_eq!(k.verify_client_token(&api), Err(server.clone()));
        assert_eq!(k.verify_client_token(&signed(&k, json!({ "sio.link": false }))), Err(server));
        assert!(k.verify_client_token(&client).is_ok() && k.verify_client_token(&plain).is_ok());
    }

    #[test]
    fn signatures_cover_every_key_the_headers_and_the_body() {
        let k = AccessKeys::from_keys(vec!["key-one-0123456789".into(), "key-two-0123456789".into()]);
        let parts = WebhookParts {
            timestamp: 1795644339,
            id: "/socketio-hub/n-ab-1",
            kind: "socketio.event",
            source: "/socketio-hub/n",
        };
        let sig = k.sign_webhook(&parts, b"{}");
        let each: Vec<_> = sig.split(',').collect();
        assert_eq!(each.len(), 2);
        assert!(each.iter().all(|p| p.starts_with("v1=") && p.len() == 67));
        // The MAC is over exactly the documented string (what the Node/Python verifiers build).
        let mut mac = Hmac::<Sha256>::new_from_slice(b"key-one-0123456789").unwrap();
        mac.update(b"1795644339\n/socketio-hub/n-ab-1\nsocketio.event\n/socketio-hub/n\n{}");
        assert_eq!(each[0], format!("v1={}", hex::encode(mac.finalize().into_bytes())));
        // Every signed field changes it.
        for other in [
            WebhookParts { timestamp: 1795644340, ..parts },
            WebhookParts { id: "/socketio-hub/n-ab-2", ..parts },
            WebhookParts { kind: "socketio.connect", ..parts },
            WebhookParts { source: "/socketio-hub/m", ..parts },
        ] {
            assert_ne!(k.sign_webhook(&other, b"{}"), sig, "{other:?}");
        }
        assert_ne!(k.sign_webhook(&parts, b"{ }"), sig);
        assert_eq!(k.connection_string("http://h:1"), "Endpoint=http://h:1;AccessKey=key-one-0123456789;");
    }
}
