//! actix-web 4: [`AzureRedis`] through `web::ThinData` / `web::Data` and as an extractor, and a
//! health handler.
//!
//! Register the handle once with `App::app_data`, then name it as a handler argument. The
//! extractor finds it registered as `web::ThinData(redis)` (the handle is a cheap `Clone`
//! already, so this is the natural choice), `web::Data::new(redis)`, or bare `redis`; the
//! framework's own `web::ThinData<AzureRedis>` and `web::Data<AzureRedis>` extractors work too.
//!
//! ```no_run
//! use actix_web::{App, HttpServer, web};
//! use azure_redis_connect::{AzureRedis, redis::AsyncCommands};
//!
//! async fn hit(name: web::Path<String>, mut redis: AzureRedis) -> actix_web::Result<String> {
//!     let n: i64 = redis
//!         .incr(format!("hits:{name}"), 1)
//!         .await
//!         .map_err(actix_web::error::ErrorServiceUnavailable)?;
//!     Ok(n.to_string())
//! }
//!
//! async fn serve(redis: AzureRedis) -> std::io::Result<()> {
//!     HttpServer::new(move || {
//!         App::new()
//!             .app_data(web::ThinData(redis.clone()))
//!             .route("/hit/{name}", web::post().to(hit))
//!             .route("/health", web::get().to(azure_redis_connect::web::actix::health))
//!     })
//!     .bind(("127.0.0.1", 8080))?
//!     .run()
//!     .await
//! }
//! ```
//!
//! A handler that is not given the handle fails with `500 Internal Server Error` and logs (at
//! `error`, through `tracing`) how to register it.

use std::future::{Ready, ready};

use ::actix_web::body::BoxBody;
use ::actix_web::dev::Payload;
use ::actix_web::http::StatusCode;
use ::actix_web::http::header::{CACHE_CONTROL, HeaderValue};
use ::actix_web::web::{Data, ThinData};
use ::actix_web::{FromRequest, HttpRequest, HttpResponse, Responder, error};

use crate::cluster::AzureRedisCluster;
use crate::conn::AzureRedis;
use crate::health::HealthReport;

/// The handle of type `T` registered as `ThinData(handle)`, `Data::new(handle)` or bare; a 500
/// (and an error log saying how to register it) without.
fn registered<T: Clone + 'static>(req: &HttpRequest, name: &str) -> Result<T, error::Error> {
    if let Some(ThinData(handle)) = req.app_data::<ThinData<T>>() {
        return Ok(handle.clone());
    }
    if let Some(data) = req.app_data::<Data<T>>() {
        return Ok(T::clone(data));
    }
    req.app_data::<T>().cloned().ok_or_else(|| {
        tracing::error!(
            path = req.path(),
            "no {name} handle registered: add `.app_data(web::ThinData(handle.clone()))` to the App"
        );
        error::ErrorInternalServerError("the Redis handle is not configured")
    })
}

impl FromRequest for AzureRedis {
    type Error = error::Error;
    type Future = Ready<Result<AzureRedis, error::Error>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        ready(registered(req, "AzureRedis"))
    }
}

/// Registered like [`AzureRedis`].
impl FromRequest for AzureRedisCluster {
    type Error = error::Error;
    type Future = Ready<Result<AzureRedisCluster, error::Error>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        ready(registered(req, "AzureRedisCluster"))
    }
}

impl Responder for HealthReport {
    type Body = BoxBody;

    /// The report as JSON, 200 when healthy and 503 otherwise, never cached.
    fn respond_to(self, _req: &HttpRequest) -> HttpResponse<BoxBody> {
        let status = if self.healthy {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        HttpResponse::build(status)
            .insert_header((CACHE_CONTROL, HeaderValue::from_static("no-store")))
            .json(self)
    }
}

/// `GET /health`: sends `PING`, then answers with the [`HealthReport`] as JSON, `200 OK` while
/// healthy and `503 Service Unavailable` when the token expired or the server is unreachable.
///
/// ```no_run
/// # fn app(redis: azure_redis_connect::AzureRedis) {
/// use actix_web::{App, web};
/// let app = App::new()
///     .app_data(web::ThinData(redis))
///     .route("/health", web::get().to(azure_redis_connect::web::actix::health));
/// # }
/// ```
pub async fn health(redis: AzureRedis) -> HealthReport {
    HealthReport::check(&redis).await
}

/// `GET /health` for a cluster handle: sends `PING` to every primary, then answers like
/// [`health`], `503 Service Unavailable` unless each one answered.
///
/// ```no_run
/// # fn app(cluster: azure_redis_connect::cluster::AzureRedisCluster) {
/// use actix_web::{App, web};
/// let app = App::new()
///     .app_data(web::ThinData(cluster))
///     .route("/health", web::get().to(azure_redis_connect::web::actix::cluster_health));
/// # }
/// ```
pub async fn cluster_health(cluster: AzureRedisCluster) -> HealthReport {
    HealthReport::check(&cluster).await
}
