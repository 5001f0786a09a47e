//! The Admin UI's static files at `admin_ui.ui_path` on the client port: the copy embedded at
//! build time (`dataplane/build.rs`, from the pinned `@socket.io/admin-ui` npm package), or
//! `admin_ui.ui_dir`. Nothing is fetched at run time.
//!
//! Invariant: only files under the chosen root are served — a request path with `..`, `.`,
//! empty segments, backslashes or percent-escapes is not found.

use std::path::PathBuf;

use bytes::Bytes;
use socketio_hub_config::AdminUiConfig;
use warp::http::{header, Response, StatusCode};
use warp::{Filter, Rejection};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/admin_ui_assets.rs"));
}

/// Where the files come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// Embedded in the binary at build time.
    Embedded,
    /// Read from this directory.
    Dir(PathBuf),
}

/// Whether this binary embeds the UI.
pub fn embedded_available() -> bool {
    !embedded::FILES.is_empty()
}

/// Where `config` serves the UI from; `None` when `serve_ui` is off, an error naming the fix
/// when it is on but there is nothing to serve.
pub fn source(config: &AdminUiConfig) -> Result<Option<Source>, String> {
    if !config.enabled || !config.serve_ui {
        return Ok(None);
    }
    if let Some(dir) = &config.ui_dir {
        let dir = PathBuf::from(dir);
        if !dir.join("index.html").is_file() {
            return Err(format!(
                "admin_ui.ui_dir {} has no index.html (point it at the @socket.io/admin-ui package's ui/dist)",
                dir.display()
            ));
        }
        return Ok(Some(Source::Dir(dir)));
    }
    if embedded_available() {
        return Ok(Some(Source::Embedded));
    }
    Err("admin_ui.serve_ui is on, but this binary was built without the UI (SOCKETIO_HUB_ADMIN_UI_DIST unset): set admin_ui.ui_dir to the package's ui/dist, or rebuild with it".into())
}

/// The path under the root a request names, if acceptable.
fn relative(rest: &str) -> Option<String> {
    if rest.is_empty() {
        return Some("index.html".into());
    }
    let ok = rest.split('/').all(|seg| {
        !seg.is_empty() && seg != "." && seg != ".." && !seg.contains(['\\', '%', '\0']) && seg.len() <= 255
    });
    ok.then(|| rest.to_string())
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "application/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        Some("woff2") => "font/woff2",
        _ => "application/octet-stream",
    }
}

async fn load(source: &Source, rel: &str) -> Option<Bytes> {
    match source {
        Source::Embedded => {
            embedded::FILES.iter().find(|(p, _)| *p == rel).map(|(_, b)| Bytes::from_static(b))
        }
        Source::Dir(dir) => {
            let path = dir.join(rel);
            match tokio::fs::metadata(&path).await {
                Ok(m) if m.is_file() => tokio::fs::read(&path).await.ok().map(Bytes::from),
                _ => None,
            }
        }
    }
}

fn response(status: StatusCode) -> warp::http::response::Builder {
    Response::builder().status(status).header("x-content-type-options", "nosniff")
}

/// The answer to `GET path` under `base` (`<base>` is `index.html`; `base` without its
/// trailing slash redirects, so the page's relative links resolve); `None`: not found.
async fn serve(base: &str, source: &Source, path: &str) -> Option<Response<Bytes>> {
    if path == base.trim_end_matches('/') {
        let r = response(StatusCode::PERMANENT_REDIRECT).header(header::LOCATION, base).body(Bytes::new());
        return Some(r.expect("valid response"));
    }
    let rel = relative(path.strip_prefix(base)?)?;
    let body = load(source, &rel).await?;
    // Everything but index.html has a content hash in its name.
    let cache = if rel == "index.html" { "no-cache" } else { "public, max-age=86400" };
    let r = response(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type(&rel))
        .header(header::CACHE_CONTROL, cache)
        .body(body);
    Some(r.expect("valid response"))
}

/// `GET <ui_path>…`: the UI's files (see `serve`); anything else falls through.
pub fn routes(
    ui_path: &str,
    source: Source,
) -> impl Filter<Extract = (Response<Bytes>,), Error = Rejection> + Clone + Send + Sync + 'static {
    let base: std::sync::Arc<str> = std::sync::Arc::from(ui_path);
    warp::get().and(warp::path::full()).and_then(move |full: warp::path::FullPath| {
        let (source, base) = (source.clone(), base.clone());
        async move { serve(&base, &source, full.as_str()).await.ok_or_else(warp::reject::not_found) }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_paths_under_the_root_are_served() {
        assert_eq!(relative("").as_deref(), Some("index.html"));
        assert_eq!(relative("js/app.0d7d7845.js").as_deref(), Some("js/app.0d7d7845.js"));
        for bad in ["../etc/passwd", "js/../../x", "./index.html", "js//app.js", "%2e%2e/x", "a\\b", "js/"] {
            assert_eq!(relative(bad), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn files_come_from_the_directory_with_their_types() {
        let dir = std::env::temp_dir().join(format!("sioh-ui-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("js")).unwrap();
        std::fs::write(dir.join("index.html"), "<html>ui</html>").unwrap();
        std::fs::write(dir.join("js/app.js"), "console.log(1)").unwrap();
        let cfg = AdminUiConfig {
            enabled: true,
            serve_ui: true,
            ui_dir: Some(dir.display().to_string()),
            ..Default::default()
        };
        let src = source(&cfg).unwrap().unwrap();
        let get = |p: &'static str| {
            let src = src.clone();
            async move { serve("/admin-ui/", &src, p).await }
        };
        let r = get("/admin-ui/").await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.body().as_ref(), b"<html>ui</html>");
        assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
        assert_eq!(r.headers()["cache-control"], "no-cache");
        let r = get("/admin-ui/js/app.js").await.unwrap();
        assert_eq!(r.headers()["content-type"], "application/javascript; charset=utf-8");
        let r = get("/admin-ui").await.unwrap();
        assert_eq!((r.status().as_u16(), r.headers()["location"].to_str().unwrap()), (308, "/admin-ui/"));
        assert!(get("/admin-ui/missing.js").await.is_none());
        assert!(get("/admin-ui/../Cargo.toml").await.is_none());
        assert!(get("/other").await.is_none());
        // A directory without index.html is refused at start, with the fix.
        let empty = AdminUiConfig { ui_dir: Some(dir.join("js").display().to_string()), ..cfg.clone() };
        assert!(source(&empty).unwrap_err().contains("no index.html"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
