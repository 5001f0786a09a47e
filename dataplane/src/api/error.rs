//! The REST API's one error type and the one place it becomes an HTTP response.
//!
//! Every failure a request can meet is an `ApiError` variant; `ApiError::status` decides the
//! HTTP status and `ApiError::into_response` writes `{"error": "<message>"}`. Messages say what
//! is wrong and, where it helps, what to send instead. Invariant: no message carries key
//! material or token text.

use serde_json::json;
use warp::http::{header, HeaderValue, StatusCode};

use super::Response;
use crate::auth::TokenError;
use crate::state::ArgsError;

/// Why a REST request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No `Authorization` header.
    #[error("missing Authorization header: send \"Authorization: Bearer <JWT>\", an HS256 JWT signed with an access key")]
    MissingCredentials,
    /// An `Authorization` header that is not `Bearer <token>`.
    #[error("the Authorization header must be \"Bearer <JWT>\"")]
    NotBearer,
    /// The bearer token failed verification.
    #[error("bearer token refused: {0}")]
    BadToken(#[from] TokenError),
    /// A client token (minted by `POST /tokens`) used against the REST API.
    #[error("bearer token refused: it is a client token (aud \"{}\"); the REST API needs a token the application signs with an access key", super::tokens::CLIENT_AUDIENCE)]
    ClientToken,
    /// No such route.
    #[error("no route {method} /api/v1/{path}")]
    NoRoute {
        /// The request method.
        method: String,
        /// The path after `/api/v1/`.
        path: String,
    },
    /// A route that exists, with another method.
    #[error("{method} is not allowed on /api/v1/{path}; use {allow}")]
    MethodNotAllowed {
        /// The request method.
        method: String,
        /// The path after `/api/v1/`.
        path: String,
        /// The method the route takes.
        allow: &'static str,
    },
    /// The body exceeds the limit.
    #[error("the request body is larger than {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The body could not be read (the client went away mid-request).
    #[error("cannot read the request body: {0}")]
    Unreadable(String),
    /// A POST without a body.
    #[error("the request body is empty; send a JSON object")]
    EmptyBody,
    /// The body is not JSON at all.
    #[error("the request body is not JSON: {0}")]
    NotJson(String),
    /// The body is JSON but not an object.
    #[error("the request body must be a JSON object, not {0}")]
    NotObject(&'static str),
    /// A field the route does not know (usually a typo).
    #[error("unknown field \"{field}\"; expected one of: {expected}")]
    UnknownField {
        /// The field as sent.
        field: String,
        /// The fields the route takes.
        expected: String,
    },
    /// A field (or query parameter) with a missing, wrongly typed or out-of-range value.
    #[error("{field}: {problem}")]
    Field {
        /// The field, with an index for list items (`rooms[2]`).
        field: String,
        /// What is wrong with it.
        problem: String,
    },
    /// `args` cannot be turned into a packet (bad base64, too many binaries).
    #[error("args: {0}")]
    Args(#[from] ArgsError),
    /// The namespace is not one the configuration lets clients join.
    #[error("namespace {0:?} is not served by this hub (see socketio.namespaces)")]
    UnknownNamespace(String),
    /// The node takes no operation now (fenced: cut off from its cluster's majority).
    #[error("{0}")]
    Unavailable(&'static str),
}

impl ApiError {
    /// A problem with one field.
    pub fn field(field: impl Into<String>, problem: impl Into<String>) -> Self {
        ApiError::Field { field: field.into(), problem: problem.into() }
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::MissingCredentials
            | ApiError::NotBearer
            | ApiError::BadToken(_)
            | ApiError::ClientToken => StatusCode::UNAUTHORIZED,
            ApiError::NoRoute { .. } | ApiError::UnknownNamespace(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unreadable(_)
            | ApiError::EmptyBody
            | ApiError::NotJson(_)
            | ApiError::NotObject(_)
            | ApiError::UnknownField { .. }
            | ApiError::Field { .. }
            | ApiError::Args(_) => StatusCode::BAD_REQUEST,
        }
    }

    /// `{"error": message}` with the status, plus `WWW-Authenticate` on 401 and `Allow` on 405.
    pub fn into_response(self) -> Response {
        let status = self.status();
        let mut resp = super::json_response(status, &json!({ "error": self.to_string() }));
        match &self {
            ApiError::MethodNotAllowed { allow, .. } => {
                resp.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            ApiError::Unavailable(_) => {
                resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ if status == StatusCode::UNAUTHORIZED => {
                resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_messages() {
        assert_eq!(ApiError::MissingCredentials.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            ApiError::BadToken(TokenError::Expired).to_string(),
            "bearer token refused: token expired"
        );
        assert_eq!(ApiError::TooLarge { limit: 10 }.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(ApiError::UnknownNamespace("/x".into()).status(), StatusCode::NOT_FOUND);
        let e = ApiError::field("rooms[2]", "must not be empty");
        assert_eq!(
            (e.status(), e.to_string()),
            (StatusCode::BAD_REQUEST, "rooms[2]: must not be empty".into())
        );
    }

    #[test]
    fn responses_carry_json_and_headers() {
        let r = ApiError::NotBearer.into_response();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(r.headers()[header::WWW_AUTHENTICATE], "Bearer");
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        let r = ApiError::MethodNotAllowed { method: "GET".into(), path: "emit".into(), allow: "POST" }
            .into_response();
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(r.headers()[header::ALLOW], "POST");
        let r = ApiError::Unavailable(crate::state::drain::FENCED).into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
    }
}
