//! The REST API for application servers (`/api/v1/…`), authenticated by access-key JWTs.
//! See `docs/openapi.yaml`.

use std::sync::Arc;

use warp::{Filter, Rejection, Reply};

use crate::state::Hub;

/// The REST routes.
pub fn routes(
    hub: Arc<Hub>,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone + Send + Sync + 'static {
    let _ = hub;
    warp::path("api")
        .and(warp::path("v1"))
        .and_then(|| async { Err::<String, Rejection>(warp::reject::not_found()) })
}
