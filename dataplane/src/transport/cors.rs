//! CORS for the Engine.IO endpoint: which origins may connect, with or without credentials.

use http::header::{self, HeaderMap, HeaderValue};
use socketio_hub_config::CorsConfig;

/// The origin to allow for this request and whether with credentials, or `None` when the
/// request is refused or carries no `Origin` header. The Admin UI's origins are allowed with
/// credentials (the UI connects `withCredentials`).
pub fn allowed_origin<'a>(cfg: &CorsConfig, headers: &'a HeaderMap) -> Option<(&'a HeaderValue, bool)> {
    let origin = headers.get(header::ORIGIN)?;
    let text = origin.to_str().ok()?;
    if cfg.admin_origins.iter().any(|o| o == text) {
        return Some((origin, true));
    }
    let ok = cfg.allowed_origins.is_empty() || cfg.allowed_origins.iter().any(|o| o == "*" || o == text);
    ok.then_some((origin, cfg.credentials))
}

/// Whether a request with an `Origin` header is refused by the configured list.
pub fn is_forbidden(cfg: &CorsConfig, headers: &HeaderMap) -> bool {
    headers.contains_key(header::ORIGIN) && allowed_origin(cfg, headers).is_none()
}

/// Add CORS headers to a response.
pub fn decorate(cfg: &CorsConfig, req_headers: &HeaderMap, resp: &mut HeaderMap, preflight: bool) {
    let Some((origin, credentials)) = allowed_origin(cfg, req_headers) else { return };
    resp.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    resp.insert(header::VARY, HeaderValue::from_static("Origin"));
    if credentials {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(o: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ORIGIN, HeaderValue::from_static(o));
        h
    }

    #[test]
    fn the_admin_ui_origin_gets_credentials_and_others_keep_the_policy() {
        let cfg = CorsConfig {
            allowed_origins: vec!["https://app.example".into()],
            credentials: false,
            admin_origins: vec!["https://admin.socket.io".into()],
        };
        let mut resp = HeaderMap::new();
        decorate(&cfg, &origin("https://admin.socket.io"), &mut resp, true);
        assert_eq!(resp[header::ACCESS_CONTROL_ALLOW_ORIGIN], "https://admin.socket.io");
        assert_eq!(resp[header::ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
        let mut resp = HeaderMap::new();
        decorate(&cfg, &origin("https://app.example"), &mut resp, false);
        assert_eq!(resp[header::ACCESS_CONTROL_ALLOW_ORIGIN], "https://app.example");
        assert!(!resp.contains_key(header::ACCESS_CONTROL_ALLOW_CREDENTIALS));
        assert!(is_forbidden(&cfg, &origin("https://evil.example")));
        assert!(!is_forbidden(&cfg, &origin("https://admin.socket.io")));
    }
}
