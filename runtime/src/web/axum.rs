//! axum 0.8: [`AzureRedis`] as state and as an extractor, and a health handler.
//!
//! `AzureRedis` implements [`FromRequestParts<S>`] for every state `S` from which it can be taken
//! (`AzureRedis: FromRef<S>`), so a handler names it as an argument. With the handle itself as
//! the router's state, `State<AzureRedis>` works as well:
//!
//! ```no_run
//! use axum::{Router, routing::{get, post}, extract::Path};
//! use azure_redis_connect::{AzureRedis, redis::AsyncCommands};
//!
//! async fn hit(Path(name): Path<String>, mut redis: AzureRedis) -> Result<String, String> {
//!     let n: i64 = redis.incr(format!("hits:{name}"), 1).await.map_err(|e| e.to_string())?;
//!     Ok(n.to_string())
//! }
//!
//! fn app(redis: AzureRedis) -> Router {
//!     Router::new()
//!         .route("/hit/{name}", post(hit))
//!         .route("/health", get(azure_redis_connect::web::axum::health))
//!         .with_state(redis)
//! }
//! ```
//!
//! An application state of its own holds the handle next to other things and says how to take
//! it out, with `#[derive(FromRef)]` (axum's `macros` feature) or by hand:
//!
//! ```no_run
//! use axum::{Router, extract::FromRef, routing::get};
//! use azure_redis_connect::AzureRedis;
//!
//! #[derive(Clone)]
//! struct AppState {
//!     redis: AzureRedis,
//!     greeting: String,
//! }
//!
//! impl FromRef<AppState> for AzureRedis {
//!     fn from_ref(state: &AppState) -> AzureRedis {
//!         state.redis.clone()
//!     }
//! }
//!
//! fn app(state: AppState) -> Router {
//!     Router::new()
//!         .route("/health", get(azure_redis_connect::web::axum::health))
//!         .with_state(state)
//! }
//! ```

use std::convert::Infallible;

use ::axum::Json;
use ::axum::extract::{FromRef, FromRequestParts};
use ::axum::http::request::Parts;
use ::axum::http::{HeaderValue, StatusCode, header};
use ::axum::response::{IntoResponse, Response};

use crate::cluster::AzureRedisCluster;
use crate::conn::AzureRedis;
use crate::health::HealthReport;

impl<S> FromRequestParts<S> for AzureRedis
where
    AzureRedis: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Infallible;

    async fn from_request_parts(_parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Ok(AzureRedis::from_ref(state))
    }
}

impl<S> FromRequestParts<S> for AzureRedisCluster
where
    AzureRedisCluster: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Infallible;

    async fn from_request_parts(_parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Ok(AzureRedisCluster::from_ref(state))
    }
}

impl IntoResponse for HealthReport {
    /// The report as JSON, 200 when healthy and 503 otherwise, never cached.
    fn into_response(self) -> Response {
        let status = if self.healthy {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        let mut response = (status, Json(self)).into_response();
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

/// `GET /health`: sends `PING`, then answers with the [`HealthReport`] as JSON, `200 OK` while
/// healthy and `503 Service Unavailable` when the token expired or the server is unreachable.
///
/// Works with any router state from which an [`AzureRedis`] can be taken (see the
/// [module documentation](self)).
///
/// ```no_run
/// # fn app(redis: azure_redis_connect::AzureRedis) -> axum::Router {
/// axum::Router::new()
///     .route("/health", axum::routing::get(azure_redis_connect::web::axum::health))
///     .with_state(redis)
/// # }
/// ```
pub async fn health(redis: AzureRedis) -> HealthReport {
    HealthReport::check(&redis).await
}

/// `GET /health` for a cluster handle: sends `PING` to every primary, then answers like
/// [`health`], `503 Service Unavailable` unless each one answered.
///
/// ```no_run
/// # fn app(cluster: azure_redis_connect::cluster::AzureRedisCluster) -> axum::Router {
/// axum::Router::new()
///     .route("/health", axum::routing::get(azure_redis_connect::web::axum::cluster_health))
///     .with_state(cluster)
/// # }
/// ```
pub async fn cluster_health(cluster: AzureRedisCluster) -> HealthReport {
    HealthReport::check(&cluster).await
}
