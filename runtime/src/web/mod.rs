//! Web framework integration (features `axum` and `actix-web`): the [`AzureRedis`] and
//! [`AzureRedisCluster`] handles as extractors, and ready health handlers.
//!
//! - [`axum`](mod@self::axum) (feature `axum`, axum 0.8): `AzureRedis` is a `FromRequestParts`
//!   extractor for any state `S` where `AzureRedis: FromRef<S>` (the handle itself as state, or
//!   an application state with `#[derive(FromRef)]`), and [`axum::health`]
//!   is a handler for `GET /health`; likewise [`AzureRedisCluster`] and [`axum::cluster_health`].
//! - [`actix`] (feature `actix-web`, actix-web 4): `AzureRedis` is a `FromRequest` extractor that
//!   finds the handle registered with `App::app_data` as `web::ThinData(redis)`,
//!   `web::Data::new(redis)` or bare, and [`actix::health`] is a handler for `GET /health`;
//!   likewise [`AzureRedisCluster`] and [`actix::cluster_health`].
//!
//! Both health handlers answer with a [`HealthReport`] as JSON (see [`crate::health`]): `200
//! OK` while the connection is open, answers `PING` and its token is valid, `503 Service
//! Unavailable` otherwise.
//!
//! [`AzureRedis`]: crate::AzureRedis
//! [`AzureRedisCluster`]: crate::cluster::AzureRedisCluster

/// Former name of [`HealthCheck`](crate::health::HealthCheck).
pub use crate::health::HealthCheck as Checkable;
pub use crate::health::{DEFAULT_PING_TIMEOUT, HealthReport, HealthState, TokenHealth};

#[cfg(feature = "actix-web")]
pub mod actix;
#[cfg(feature = "axum")]
pub mod axum;
