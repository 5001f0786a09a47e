//! Who may call the REST API: a bearer JWT (HS256, `exp` required) signed with one of the
//! access keys, so both keys work during a rotation.
//!
//! Client tokens minted by `POST /tokens` are signed with the same key; they carry
//! `aud = "socketio-hub:client"` and are refused here, so a token handed to a browser cannot
//! drive the API. Server-link tokens (`aud = "socketio-hub:link"`) are refused too; the rules
//! live in `crate::auth` (`AccessKeys::verify_api_token`).

use serde_json::{Map, Value};

use super::error::ApiError;
use crate::auth::{AccessKeys, TokenError, WrongKind};

/// The token of an `Authorization: Bearer <token>` header value (scheme case-insensitive).
pub fn bearer(header: Option<&[u8]>) -> Result<&str, ApiError> {
    let raw = header.ok_or(ApiError::MissingCredentials)?;
    let text = std::str::from_utf8(raw).map_err(|_| ApiError::NotBearer)?.trim();
    let (scheme, token) = text.split_once(' ').ok_or(ApiError::NotBearer)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(ApiError::NotBearer);
    }
    Ok(token)
}

/// Verify the caller; returns the token's claims.
pub fn authenticate(keys: &AccessKeys, header: Option<&[u8]>) -> Result<Map<String, Value>, ApiError> {
    keys.verify_api_token(bearer(header)?).map_err(|e| match e {
        TokenError::WrongKind(WrongKind::ClientTokenForServer) => ApiError::ClientToken,
        e => ApiError::BadToken(e),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::auth::{CLIENT_AUDIENCE, LINK_AUDIENCE};

    fn keys() -> AccessKeys {
        AccessKeys::from_keys(vec!["primary-key-0123456789".into(), "second-key-0123456789".into()])
    }

    fn token(keys: &AccessKeys, claims: Value) -> String {
        keys.mint(claims.as_object().unwrap())
    }

    fn exp(offset: i64) -> i64 {
        crate::clock::since_epoch().as_secs() as i64 + offset
    }

    #[test]
    fn parses_bearer_headers() {
        assert_eq!(bearer(Some(b"Bearer abc")).unwrap(), "abc");
        assert_eq!(bearer(Some(b"bearer  abc ")).unwrap(), "abc");
        assert!(matches!(bearer(None), Err(ApiError::MissingCredentials)));
        assert!(matches!(bearer(Some(b"Bearer ")), Err(ApiError::NotBearer)));
        assert!(matches!(bearer(Some(b"Basic dTpw")), Err(ApiError::NotBearer)));
        assert!(matches!(bearer(Some(b"abc")), Err(ApiError::NotBearer)));
        assert!(matches!(bearer(Some(b"Bearer \xff")), Err(ApiError::NotBearer)));
    }

    #[test]
    fn verifies_with_either_key() {
        let k = keys();
        let second = AccessKeys::from_keys(vec!["second-key-0123456789".into()]);
        let t = token(&second, json!({ "sub": "app", "exp": exp(60) }));
        let header = format!("Bearer {t}");
        assert_eq!(authenticate(&k, Some(header.as_bytes())).unwrap()["sub"], "app");
    }

    #[test]
    fn refuses_bad_tokens_with_the_reason() {
        let k = keys();
        let other = AccessKeys::from_keys(vec!["some-other-key-0123456789".into()]);
        let cases = [
            (token(&other, json!({ "exp": exp(60) })), TokenError::BadSignature),
            (token(&k, json!({ "exp": exp(-60) })), TokenError::Expired),
            (token(&k, json!({ "sub": "x" })), TokenError::NoExpiry),
            ("not-a-jwt".to_string(), TokenError::Malformed),
        ];
        for (t, want) in cases {
            let header = format!("Bearer {t}");
            match authenticate(&k, Some(header.as_bytes())) {
                Err(ApiError::BadToken(got)) => assert_eq!(got, want),
                other => panic!("{want:?}: got {other:?}"),
            }
        }
    }

    #[test]
    fn refuses_client_tokens() {
        let k = keys();
        for aud in [json!(CLIENT_AUDIENCE), json!(["x", CLIENT_AUDIENCE])] {
            let header = format!("Bearer {}", token(&k, json!({ "exp": exp(60), "aud": aud })));
            assert!(matches!(authenticate(&k, Some(header.as_bytes())), Err(ApiError::ClientToken)));
        }
        let header = format!("Bearer {}", token(&k, json!({ "exp": exp(60), "aud": "my-app" })));
        assert!(authenticate(&k, Some(header.as_bytes())).is_ok());
    }

    #[test]
    fn refuses_link_tokens() {
        let k = keys();
        let link = token(&k, json!({ "exp": exp(60), "aud": LINK_AUDIENCE, "sio.link": true }));
        let header = format!("Bearer {link}");
        match authenticate(&k, Some(header.as_bytes())) {
            Err(ApiError::BadToken(TokenError::WrongKind(WrongKind::LinkTokenForApi))) => {}
            other => panic!("{other:?}"),
        }
    }
}
