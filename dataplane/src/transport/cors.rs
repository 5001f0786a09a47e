//! CORS for the Engine.IO endpoint: which origins may connect, with or without credentials.

use http::header::{self, HeaderMap, HeaderValue};
use socketio_hub_config::CorsConfig;

/// The origin to allow for this request, or `None` when the request is refused or carries no
/// `Origin` header.
pub fn allowed_origin<'a>(cfg: &CorsConfig, headers: &'a HeaderMap) -> Option<&'a HeaderValue> {
    let origin = headers.get(header::ORIGIN)?;
    let text = origin.to_str().ok()?;
    let ok = cfg.allowed_origins.is_empty() || cfg.allowed_origins.iter().any(|o| o == "*" || o == text);
    ok.then_some(origin)
}

/// Whether a request with an `Origin` header is refused by the configured list.
pub fn is_forbidden(cfg: &CorsConfig, headers: &HeaderMap) -> bool {
    headers.contains_key(header::ORIGIN) && allowed_origin(cfg, headers).is_none()
}

/// Add CORS headers to a response.
pub fn decorate(cfg: &CorsConfig, req_headers: &HeaderMap, resp: &mut HeaderMap, preflight: bool) {
    let Some(origin) = allowed_origin(cfg, req_headers) else { return };
    resp.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    resp.insert(header::VARY, HeaderValue::from_static("Origin"));
    if cfg.credentials {
        resp.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
    }
    if preflight {
        resp.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST, OPTIONS"));
        if let Some(h) = req_headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
            resp.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, h.clone());
        }
        resp.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
    }
}
