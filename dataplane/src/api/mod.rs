//! The REST API for application servers (`/api/v1/…`), authenticated by access-key JWTs.
//! `docs/openapi.yaml` is its reference.
//!
//! One warp filter takes every `/api/v1/…` request and hands it to `handle`, which resolves
//! the route, authenticates, reads the body (bounded), and calls the route's handler; handlers
//! are thin and their parsing lives in pure, tested functions next to them. Every failure is
//! an `ApiError`, answered in one place as `{"error": …}` with its status. Every request is
//! counted in `rest_requests_total{route, status}` (the route's path or `unknown`, and the
//! status class).
//!
//! Socket operations go through the cluster-wide operations layer (`crate::ops`), exactly as
//! the server link's and the client commands' do; answers name the nodes that did not answer in
//! time (`missingNodes`).

mod auth;
mod body;
mod emit;
mod error;
mod fields;
mod query;
mod rooms;
mod sockets;
mod target;
mod tokens;

use std::sync::Arc;

use bytes::Buf;
use futures_util::Stream;
use serde::Serialize;
use warp::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use warp::{Filter, Rejection, Reply};

pub use error::ApiError;
pub use tokens::CLIENT_AUDIENCE;

use crate::ops::Ops;
use crate::state::Hub;

/// The response type of every route.
pub type Response = warp::reply::Response;

/// The REST routes.
pub fn routes(
    ops: Ops,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone + Send + Sync + 'static {
    let query = warp::query::raw().or(warp::any().map(String::new)).unify();
    warp::path("api")
        .and(warp::path("v1"))
        .and(warp::path::tail())
        .and(warp::method())
        .and(warp::header::headers_cloned())
        .and(query)
        .and(warp::body::stream())
        .then(move |tail: warp::path::Tail, method: Method, headers: HeaderMap, query: String, body| {
            let ops = ops.clone();
            async move {
                let req = Request { method, path: tail.as_str().to_string(), query, headers };
                handle(&ops, req, body).await
            }
        })
}

/// What `handle` needs of a request besides its body.
struct Request {
    method: Method,
    /// The path after `/api/v1/`.
    path: String,
    query: String,
    headers: HeaderMap,
}

/// The API's routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Emit,
    SocketsJoin,
    SocketsLeave,
    SocketsDisconnect,
    SocketsFetch,
    Rooms,
    Namespaces,
    Tokens,
}

impl Route {
    const ALL: [Route; 8] = [
        Route::Emit,
        Route::SocketsJoin,
        Route::SocketsLeave,
        Route::SocketsDisconnect,
        Route::SocketsFetch,
        Route::Rooms,
        Route::Namespaces,
        Route::Tokens,
    ];

    /// The path after `/api/v1/`; also the metric label.
    fn path(self) -> &'static str {
        match self {
            Route::Emit => "emit",
            Route::SocketsJoin => "sockets/join",
            Route::SocketsLeave => "sockets/leave",
            Route::SocketsDisconnect => "sockets/disconnect",
            Route::SocketsFetch => "sockets/fetch",
            Route::Rooms => "rooms",
            Route::Namespaces => "namespaces",
            Route::Tokens => "tokens",
        }
    }

    fn method(self) -> Method {
        match self {
            Route::Rooms | Route::Namespaces => Method::GET,
            _ => Method::POST,
        }
    }

    /// The route for `method` on `path` (after `/api/v1/`; a trailing `/` is ignored).
    fn resolve(method: &Method, path: &str) -> Result<Route, ApiError> {
        let clean = path.trim_end_matches('/');
        let route = Route::ALL
            .into_iter()
            .find(|r| r.path() == clean)
            .ok_or_else(|| ApiError::NoRoute { method: method.to_string(), path: path.to_string() })?;
        if route.method() != method {
            let allow = if route.method() == Method::GET { "GET" } else { "POST" };
            return Err(ApiError::MethodNotAllowed {
                method: method.to_string(),
                path: path.to_string(),
                allow,
            });
        }
        Ok(route)
    }
}

/// Serve one API request and count it.
async fn handle<S, B>(ops: &Ops, req: Request, body: S) -> Response
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let hub = &ops.hub;
    let route = Route::resolve(&req.method, &req.path);
    let label = route.as_ref().map_or("unknown", |r| r.path());
    let result = match route {
        Ok(route) => run(ops, route, &req, body).await,
        Err(e) => Err(e),
    };
    let resp = result.unwrap_or_else(ApiError::into_response);
    hub.metrics.rest_requests.with_label_values(&[label, status_class(resp.status())]).inc();
    resp
}

async fn run<S, B>(ops: &Ops, route: Route, req: &Request, body: S) -> Result<Response, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let hub: &Arc<Hub> = &ops.hub;
    auth::authenticate(&hub.keys, req.headers.get(header::AUTHORIZATION).map(HeaderValue::as_bytes))?;
    let content_length = req
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let read = |body| body::read(body, content_length, body::MAX_BODY);
    // A fenced node would act on its side of a partition only; minting a token is local.
    if let (Some(why), false) = (hub.unavailable(), matches!(route, Route::Tokens)) {
        return Err(ApiError::Unavailable(why));
    }
    match route {
        Route::Rooms => rooms::rooms(hub, query::parse(&req.query)?),
        Route::Namespaces => rooms::namespaces(hub, query::parse(&req.query)?),
        Route::Emit => emit::handle(ops, &read(body).await?).await,
        Route::SocketsJoin => sockets::change(ops, &read(body).await?, sockets::Change::Join).await,
        Route::SocketsLeave => sockets::change(ops, &read(body).await?, sockets::Change::Leave).await,
        Route::SocketsDisconnect => sockets::disconnect(ops, &read(body).await?).await,
        Route::SocketsFetch => sockets::fetch(ops, &read(body).await?).await,
        Route::Tokens => tokens::mint(hub, &read(body).await?),
    }
}

/// A JSON response.
pub(crate) fn json_response(status: StatusCode, body: &impl Serialize) -> Response {
    // Serializing `serde_json::Value`s and plain structs cannot fail.
    let text = serde_json::to_vec(body).expect("JSON body serializes");
    let mut resp = Response::new(text.into());
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// The status class label: `2xx`, `4xx`, `5xx`.
fn status_class(status: StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_routes() {
        assert_eq!(Route::resolve(&Method::POST, "emit").unwrap(), Route::Emit);
        assert_eq!(Route::resolve(&Method::POST, "sockets/join/").unwrap(), Route::SocketsJoin);
        assert_eq!(Route::resolve(&Method::GET, "rooms").unwrap(), Route::Rooms);
        for r in Route::ALL {
            assert_eq!(Route::resolve(&r.method(), r.path()).unwrap(), r);
        }
        let e = Route::resolve(&Method::GET, "emit").unwrap_err();
        assert_eq!(e.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(e.to_string(), "GET is not allowed on /api/v1/emit; use POST");
        let e = Route::resolve(&Method::POST, "sockets").unwrap_err();
        assert_eq!(
            (e.status(), e.to_string()),
            (StatusCode::NOT_FOUND, "no route POST /api/v1/sockets".into())
        );
    }

    #[test]
    fn status_classes() {
        assert_eq!(status_class(StatusCode::ACCEPTED), "2xx");
        assert_eq!(status_class(StatusCode::PAYLOAD_TOO_LARGE), "4xx");
        assert_eq!(status_class(StatusCode::INTERNAL_SERVER_ERROR), "5xx");
    }
}
