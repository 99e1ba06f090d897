//! A small actix-web 4 service on Azure Cache for Redis, configured from the variables Service
//! Connector injects for a managed identity.
//!
//! Routes: `POST /counter/{name}` (INCR), `GET /counter/{name}`, `GET /items/{id}` (cache-aside
//! in front of a slow source), a fixed-window rate limit per client on those, and `GET /health`
//! (the library's handler: 200 while healthy, 503 when the token expired or Redis is down).
//!
//! ```text
//! eval "$(azure-redis-emulator --auth system-identity --token-lifetime 5 &)"   # or Azure's variables
//! cargo run -p azure-redis-connect-examples --bin actix_service
//! curl -X POST localhost:8080/counter/visits
//! ```

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::{Next, from_fn};
use actix_web::web::{self, ThinData};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer};
use azure_redis_connect::{AzureRedis, AzureRedisConfig};
use azure_redis_connect_examples::api::{self, ApiConfig, ErrorBody};
use azure_redis_connect_examples::support::{self, TokenLogger};

/// Everything the service reads from its environment: Service Connector's variables for a
/// system- or user-assigned managed identity (or `az login` on a laptop), and its own settings.
#[derive(AzureRedisConfig, Debug)]
#[azure_redis(auth(system_identity, user_identity, developer_tools))]
struct Settings {
    /// `AZURE_REDIS_HOST`.
    host: String,
    /// `AZURE_REDIS_PORT` (6380 by default for Azure Cache for Redis).
    port: Option<u16>,
    /// `AZURE_REDIS_CLIENTID`: set for a user-assigned identity.
    client_id: Option<String>,
    /// Where to listen.
    #[azure_redis(env = "LISTEN_ADDR", default = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// How long cached items live, in seconds.
    #[azure_redis(env = "CACHE_TTL_SECS", default = 30)]
    cache_ttl_secs: u64,
    /// How long the simulated source takes, in milliseconds.
    #[azure_redis(env = "SOURCE_DELAY_MS", default = 200)]
    source_delay_ms: u64,
    /// Requests per client and window.
    #[azure_redis(env = "RATE_LIMIT", default = 100)]
    rate_limit: u32,
    /// The rate limit's window, in seconds.
    #[azure_redis(env = "RATE_WINDOW_SECS", default = 10)]
    rate_window_secs: u64,
    /// Worker threads.
    #[azure_redis(env = "WORKERS", default = 2)]
    workers: usize,
}

fn error(status: StatusCode, body: ErrorBody) -> HttpResponse {
    HttpResponse::build(status).json(body)
}

fn bad_name() -> HttpResponse {
    error(
        StatusCode::BAD_REQUEST,
        ErrorBody::new("names are 1 to 64 of A-Z a-z 0-9 _ - ."),
    )
}

async fn increment(name: web::Path<String>, mut redis: AzureRedis) -> HttpResponse {
    if !api::valid_name(&name) {
        return bad_name();
    }
    match api::increment(&mut redis, &name).await {
        Ok(counter) => HttpResponse::Ok().json(counter),
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            api::unavailable("INCR", &e),
        ),
    }
}

async fn read_counter(name: web::Path<String>, mut redis: AzureRedis) -> HttpResponse {
    if !api::valid_name(&name) {
        return bad_name();
    }
    match api::read_counter(&mut redis, &name).await {
        Ok(counter) => HttpResponse::Ok().json(counter),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, api::unavailable("GET", &e)),
    }
}

async fn item(
    id: web::Path<String>,
    config: ThinData<ApiConfig>,
    mut redis: AzureRedis,
) -> HttpResponse {
    let Ok(id) = id.parse::<u64>() else {
        return error(
            StatusCode::BAD_REQUEST,
            ErrorBody::new("item ids are numbers"),
        );
    };
    match api::lookup_item(&mut redis, &config, id).await {
        Ok(Some(found)) => HttpResponse::Ok()
            .insert_header(("x-cache", found.cache.as_str()))
            .json(found),
        Ok(None) => error(StatusCode::NOT_FOUND, ErrorBody::new("no such item")),
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            api::unavailable("item lookup", &e),
        ),
    }
}

/// The client a request counts against: a valid `x-client-id` header, else the peer's address.
fn client_of(req: &HttpRequest) -> String {
    req.headers()
        .get("x-client-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| api::valid_name(v))
        .map(str::to_string)
        .or_else(|| req.peer_addr().map(|p| p.ip().to_string()))
        .unwrap_or_else(|| "unknown".to_string())
}

async fn rate_limit(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let (Some(ThinData(redis)), Some(ThinData(config))) = (
        req.app_data::<ThinData<AzureRedis>>(),
        req.app_data::<ThinData<ApiConfig>>(),
    ) else {
        let response = error(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorBody::new("not configured"),
        );
        return Ok(req.into_response(response).map_into_right_body());
    };
    let (mut redis, config) = (redis.clone(), config.clone());
    let client = client_of(req.request());
    let decision = match api::rate_limit(&mut redis, &config, &client).await {
        Ok(decision) => decision,
        Err(e) => {
            let response = error(
                StatusCode::SERVICE_UNAVAILABLE,
                api::unavailable("rate limit", &e),
            );
            return Ok(req.into_response(response).map_into_right_body());
        }
    };
    let mut response = if decision.allowed {
        next.call(req).await?.map_into_left_body()
    } else {
        let response = HttpResponse::TooManyRequests()
            .insert_header(("retry-after", decision.reset_secs))
            .json(ErrorBody::new("rate limit exceeded"));
        req.into_response(response).map_into_right_body()
    };
    let headers = response.headers_mut();
    headers.insert(
        HeaderName::from_static("x-ratelimit-limit"),
        HeaderValue::from(decision.limit),
    );
    headers.insert(
        HeaderName::from_static("x-ratelimit-remaining"),
        HeaderValue::from(decision.remaining),
    );
    Ok(response)
}

#[actix_web::main]
async fn main() -> ExitCode {
    support::init_tracing();
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(error) => {
            tracing::error!("{error}");
            return ExitCode::FAILURE;
        }
    };
    support::log_configuration(&settings);

    let redis = match AzureRedis::connect(&settings).await {
        Ok(redis) => redis,
        Err(error) => {
            tracing::error!(%error, "cannot connect to the cache");
            return ExitCode::FAILURE;
        }
    };
    let token_logger = TokenLogger::start(&redis);
    let health = azure_redis_connect::web::HealthReport::from_status(&redis.status());
    tracing::info!(
        token_expires_at = health.token.expires_at.as_deref().unwrap_or("never"),
        "connected to the cache"
    );

    let config = ApiConfig {
        cache_ttl: Duration::from_secs(settings.cache_ttl_secs),
        source_delay: Duration::from_millis(settings.source_delay_ms),
        rate_limit: settings.rate_limit,
        rate_window: Duration::from_secs(settings.rate_window_secs),
    };
    let app_redis = redis.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(ThinData(app_redis.clone()))
            .app_data(ThinData(config.clone()))
            .service(
                web::resource("/counter/{name}")
                    .wrap(from_fn(rate_limit))
                    .route(web::post().to(increment))
                    .route(web::get().to(read_counter)),
            )
            .service(
                web::resource("/items/{id}")
                    .wrap(from_fn(rate_limit))
                    .route(web::get().to(item)),
            )
            .route(
                "/health",
                web::get().to(azure_redis_connect::web::actix::health),
            )
    })
    .workers(settings.workers.clamp(1, 64))
    .disable_signals()
    .shutdown_timeout(10);
    let stop = support::shutdown_signal();
    let server = match server.bind(settings.listen) {
        Ok(server) => server,
        Err(error) => {
            tracing::error!(%error, addr = %settings.listen, "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    for addr in server.addrs() {
        tracing::info!("listening on http://{addr}");
    }
    let server = server.run();
    let handle = server.handle();
    let stopper = tokio::spawn(async move {
        stop.await;
        handle.stop(true).await;
    });
    let served = server.await;
    stopper.abort();
    drop(token_logger);
    drop(redis);
    match served {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(error) => {
            tracing::error!(%error, "server failed");
            ExitCode::FAILURE
        }
    }
}
