//! The demo chat page at `/` and the Socket.IO client bundle (like socket.io's
//! `serveClient`), both embedded in the binary.

use warp::http::header;
use warp::{Filter, Rejection, Reply};

/// The namespace the demo page uses; `demo_page = true` grants its clients join/emit.
pub const DEMO_NAMESPACE: &str = "/demo";

static PAGE: &str = include_str!("../assets/demo.html");
/// socket.io-client 4.8.4 `dist/socket.io.min.js` (MIT; its license header is kept).
static CLIENT: &str = include_str!("../assets/socket.io.min.js");

/// `GET /socket.io/socket.io.min.js` (and `.js`): the client bundle.
pub fn client_bundle(path: &str) -> warp::filters::BoxedFilter<(impl Reply,)> {
    let base: Vec<String> =
        path.trim_matches('/').split('/').filter(|s| !s.is_empty()).map(String::from).collect();
    let mut f = warp::get().boxed().map(|| ()).untuple_one().boxed();
    for seg in base {
        f = f.and(warp::path(seg)).boxed();
    }
    f.and(warp::path::param::<String>())
        .and(warp::path::end())
        .and_then(|file: String| async move {
            if file == "socket.io.min.js" || file == "socket.io.js" {
                Ok(warp::reply::with_header(
                    warp::reply::with_header(
                        CLIENT,
                        header::CONTENT_TYPE,
                        "application/javascript; charset=utf-8",
                    ),
                    header::CACHE_CONTROL,
                    "public, max-age=3600",
                ))
            } else {
                Err::<_, Rejection>(warp::reject::not_found())
            }
        })
        .boxed()
}

/// `GET /`: the demo page.
pub fn page() -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone + Send + Sync + 'static {
    warp::get().and(warp::path::end()).map(|| warp::reply::html(PAGE))
}
