//! `POST /api/v1/tokens`: mint a client token (HS256, signed with the primary access key).
//!
//! Claims: `sub` (the user id), `iat`, `exp`, `aud = "socketio-hub:client"` (so the token
//! cannot call this API), and the grants the hub reads at connect and for `hub:` commands:
//! `sio.ns` (namespaces the client may join; absent = any), `sio.join`, `sio.emit` (room
//! patterns: exact, `*`, or a prefix ending in `*`). Extra `claims` are copied as given and
//! reach the application in the connect webhook.
//!
//! Invariant: minting never grants a server role. User-supplied `claims` may not name a
//! registered JWT claim (`iss sub aud exp nbf iat jti`) nor any `sio.` claim (the hub's grants
//! and the server link's `sio.link`): such a request is refused with 400, never silently
//! rewritten, and `aud` is always the client audience.

use serde_json::{json, Map, Value};
use warp::http::StatusCode;

use super::error::ApiError;
use super::fields::Fields;
use super::target::MAX_NAME;
use super::{json_response, Response};
use crate::state::Hub;

pub use crate::auth::CLIENT_AUDIENCE;
/// Longest lifetime of a client token: 30 days.
pub const MAX_EXPIRES_IN: u64 = 30 * 24 * 3600;
/// Lifetime when none is asked for: 1 hour.
pub const DEFAULT_EXPIRES_IN: u64 = 3600;
/// Most patterns in each of `namespaces`, `join`, `emit`.
pub const MAX_PATTERNS: usize = 64;
/// Claims user input may not set: the registered JWT claims (the hub sets `sub iat exp aud`;
/// the others would change how the token verifies). Every `sio.`-prefixed claim is refused too
/// (`RESERVED_PREFIX`).
pub const RESERVED_CLAIMS: &[&str] = &["iss", "sub", "aud", "exp", "nbf", "iat", "jti"];
/// The hub's own claim namespace: `sio.ns`, `sio.join`, `sio.emit`, `sio.link`, and any future one.
pub const RESERVED_PREFIX: &str = "sio.";

/// Whether user input may not set claim `name`.
pub fn is_reserved_claim(name: &str) -> bool {
    RESERVED_CLAIMS.contains(&name) || name.starts_with(RESERVED_PREFIX)
}

/// A parsed token request.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRequest {
    /// `sub`.
    pub user_id: String,
    /// Seconds until `exp`.
    pub expires_in: u64,
    /// `sio.ns`, when given.
    pub namespaces: Option<Vec<String>>,
    /// `sio.join`, when given.
    pub join: Option<Vec<String>>,
    /// `sio.emit`, when given.
    pub emit: Option<Vec<String>>,
    /// Extra claims.
    pub claims: Map<String, Value>,
}

/// Parse and validate a token request.
pub fn parse(body: &[u8]) -> Result<TokenRequest, ApiError> {
    let mut f = Fields::parse(body)?;
    let user_id: String = f.required("userId")?;
    let expires_in = f.optional::<u64>("expiresInSeconds")?.unwrap_or(DEFAULT_EXPIRES_IN);
    let namespaces = f.optional::<Vec<String>>("namespaces")?;
    let join = f.optional::<Vec<String>>("join")?;
    let emit = f.optional::<Vec<String>>("emit")?;
    let claims = f.optional::<Map<String, Value>>("claims")?.unwrap_or_default();
    f.finish()?;
    if user_id.is_empty() || user_id.len() > MAX_NAME {
        return Err(ApiError::field("userId", format!("must have 1 to {MAX_NAME} bytes")));
    }
    if !(1..=MAX_EXPIRES_IN).contains(&expires_in) {
        return Err(ApiError::field(
            "expiresInSeconds",
            format!("must be between 1 and {MAX_EXPIRES_IN} (30 days), got {expires_in}"),
        ));
    }
    patterns("namespaces", namespaces.as_deref(), |p| p == "*" || p.starts_with('/'))?;
    patterns("join", join.as_deref(), |_| true)?;
    patterns("emit", emit.as_deref(), |_| true)?;
    if let Some(name) = claims.keys().find(|k| is_reserved_claim(k)) {
        return Err(ApiError::field(
            format!("claims.{name}"),
            "is reserved (registered JWT claims and every \"sio.\" claim are set by the hub, never by the \
             request); use userId, expiresInSeconds, namespaces, join and emit",
        ));
    }
    Ok(TokenRequest { user_id, expires_in, namespaces, join, emit, claims })
}

fn patterns(field: &str, list: Option<&[String]>, shape: impl Fn(&str) -> bool) -> Result<(), ApiError> {
    let Some(list) = list else { return Ok(()) };
    if list.len() > MAX_PATTERNS {
        return Err(ApiError::field(field, format!("at most {MAX_PATTERNS} patterns, got {}", list.len())));
    }
    for (i, p) in list.iter().enumerate() {
        if p.is_empty() || p.len() > MAX_NAME || !shape(p) {
            let what = if field == "namespaces" {
                "a namespace pattern (\"/chat\", \"/org-*\", \"*\")"
            } else {
                "a room pattern (\"lobby\", \"room-*\", \"*\")"
            };
            return Err(ApiError::field(format!("{field}[{i}]"), format!("{p:?} is not {what}")));
        }
    }
    Ok(())
}

impl TokenRequest {
    /// The token's claims, issued at `now` (seconds since the epoch).
    pub fn claims(&self, now: u64) -> Map<String, Value> {
        let mut c = self.claims.clone();
        c.insert("sub".into(), json!(self.user_id));
        c.insert("iat".into(), json!(now));
        c.insert("exp".into(), json!(now + self.expires_in));
        c.insert("aud".into(), json!(CLIENT_AUDIENCE));
        for (name, list) in [("sio.ns", &self.namespaces), ("sio.join", &self.join), ("sio.emit", &self.emit)]
        {
            if let Some(list) = list {
                c.insert(name.into(), json!(list));
            }
        }
        c
    }
}

/// Serve `POST /tokens`.
pub fn mint(hub: &Hub, body: &[u8]) -> Result<Response, ApiError> {
    let req = parse(body)?;
    let claims = req.claims(crate::clock::since_epoch().as_secs());
    let token = hub.keys.mint(&claims);
    Ok(json_response(StatusCode::OK, &json!({ "token": token, "expiresAt": claims["exp"] })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::AccessKeys;

    fn err(body: &str) -> String {
        parse(body.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn minimal_request_gets_defaults() {
        let r = parse(br#"{"userId":"u"}"#).unwrap();
        assert_eq!(r.expires_in, DEFAULT_EXPIRES_IN);
        let c = r.claims(1000);
        assert_eq!(Value::Object(c), json!({ "sub": "u", "iat": 1000, "exp": 4600, "aud": CLIENT_AUDIENCE }));
    }

    #[test]
    fn grants_and_extra_claims_become_claims() {
        let r = parse(
            br#"{"userId":"u","expiresInSeconds":60,"namespaces":["/chat"],"join":["room-*"],"emit":["room-1"],"claims":{"role":"admin"}}"#,
        )
        .unwrap();
        let c = r.claims(10);
        assert_eq!(c["exp"], 70);
        assert_eq!(c["sio.ns"], json!(["/chat"]));
        assert_eq!(c["sio.join"], json!(["room-*"]));
        assert_eq!(c["sio.emit"], json!(["room-1"]));
        assert_eq!(c["role"], "admin");
    }

    #[test]
    fn minted_tokens_verify_and_carry_the_grants() {
        let keys = AccessKeys::from_keys(vec!["primary-key-0123456789".into()]);
        let r = parse(br#"{"userId":"u","join":["a"]}"#).unwrap();
        let claims =
            keys.verify_client_token(&keys.mint(&r.claims(crate::clock::since_epoch().as_secs()))).unwrap();
        assert_eq!((claims["sub"].as_str(), &claims["sio.join"]), (Some("u"), &json!(["a"])));
    }

    #[test]
    fn refuses_out_of_range_and_malformed_requests() {
        assert_eq!(err(r#"{}"#), "userId: is required");
        assert_eq!(err(r#"{"userId":""}"#), "userId: must have 1 to 256 bytes");
        assert!(err(r#"{"userId":"u","expiresInSeconds":0}"#)
            .starts_with("expiresInSeconds: must be between 1 and 2592000"));
        assert!(err(r#"{"userId":"u","expiresInSeconds":2592001}"#)
            .starts_with("expiresInSeconds: must be between"));
        assert_eq!(
            err(r#"{"userId":"u","expiresInSeconds":-5}"#),
            "expiresInSeconds: invalid value: integer `-5`, expected u64"
        );
        assert!(err(r#"{"userId":"u","namespaces":["chat"]}"#)
            .starts_with("namespaces[0]: \"chat\" is not a namespace pattern"));
        assert!(err(r#"{"userId":"u","join":["ok",""]}"#).starts_with("join[1]: \"\" is not a room pattern"));
        for claim in ["exp", "aud", "iss", "jti", "sio.join", "sio.link", "sio.anything"] {
            let body = format!(r#"{{"userId":"u","claims":{{"ok":1,"{claim}":true}}}}"#);
            assert!(
                err(&body).starts_with(&format!("claims.{claim}: is reserved")),
                "{claim}: {}",
                err(&body)
            );
        }
        assert_eq!(err(r#"{"userId":"u","claims":[1]}"#), "claims: invalid type: sequence, expected a map");
    }
}
