//! A small axum 0.8 service on Azure Cache for Redis, configured from the variables Service
//! Connector injects for a managed identity.
//!
//! Routes: `POST /counter/{name}` (INCR), `GET /counter/{name}`, `GET /items/{id}` (cache-aside
//! in front of a slow source), a fixed-window rate limit per client on those, and `GET /health`
//! (the library's handler: 200 while healthy, 503 when the token expired or Redis is down).
//!
//! ```text
//! eval "$(azure-redis-emulator --auth system-identity --token-lifetime 5 &)"   # or Azure's variables
//! cargo run -p azure-redis-connect-examples --bin axum_service
//! curl -X POST localhost:8080/counter/visits
//! ```

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRef, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use azure_redis_connect::{AzureRedis, AzureRedisConfig};
use azure_redis_connect_examples::api::{self, ApiConfig, AppState, ErrorBody};
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
}

/// The Redis handle out of the application state, for the `AzureRedis` extractor and the
/// library's health handler.
#[derive(Clone)]
struct Shared(AppState);

impl FromRef<Shared> for AzureRedis {
    fn from_ref(state: &Shared) -> AzureRedis {
        state.0.redis.clone()
    }
}

impl FromRef<Shared> for ApiConfig {
    fn from_ref(state: &Shared) -> ApiConfig {
        state.0.config.clone()
    }
}

fn error(status: StatusCode, body: ErrorBody) -> Response {
    (status, Json(body)).into_response()
}

fn bad_name() -> Response {
    error(
        StatusCode::BAD_REQUEST,
        ErrorBody::new("names are 1 to 64 of A-Z a-z 0-9 _ - ."),
    )
}

async fn increment(Path(name): Path<String>, mut redis: AzureRedis) -> Response {
    if !api::valid_name(&name) {
        return bad_name();
    }
    match api::increment(&mut redis, &name).await {
        Ok(counter) => Json(counter).into_response(),
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            api::unavailable("INCR", &e),
        ),
    }
}

async fn read_counter(Path(name): Path<String>, mut redis: AzureRedis) -> Response {
    if !api::valid_name(&name) {
        return bad_name();
    }
    match api::read_counter(&mut redis, &name).await {
        Ok(counter) => Json(counter).into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, api::unavailable("GET", &e)),
    }
}

async fn item(
    Path(id): Path<String>,
    State(config): State<ApiConfig>,
    mut redis: AzureRedis,
) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return error(
            StatusCode::BAD_REQUEST,
            ErrorBody::new("item ids are numbers"),
        );
    };
    match api::lookup_item(&mut redis, &config, id).await {
        Ok(Some(found)) => {
            let cache = HeaderValue::from_static(found.cache.as_str());
            ([("x-cache", cache)], Json(found)).into_response()
        }
        Ok(None) => error(StatusCode::NOT_FOUND, ErrorBody::new("no such item")),
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            api::unavailable("item lookup", &e),
        ),
    }
}

/// The client a request counts against: a valid `x-client-id` header, else the peer's address.
fn client_of(headers: &HeaderMap, peer: Option<SocketAddr>) -> String {
    headers
        .get("x-client-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| api::valid_name(v))
        .map(str::to_string)
        .or_else(|| peer.map(|p| p.ip().to_string()))
        .unwrap_or_else(|| "unknown".to_string())
}

async fn rate_limit(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let client = client_of(request.headers(), peer);
    let mut redis = state.0.redis.clone();
    let decision = match api::rate_limit(&mut redis, &state.0.config, &client).await {
        Ok(decision) => decision,
        Err(e) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                api::unavailable("rate limit", &e),
            );
        }
    };
    let mut response = if decision.allowed {
        next.run(request).await
    } else {
        let mut response = error(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorBody::new("rate limit exceeded"),
        );
        response
            .headers_mut()
            .insert("retry-after", HeaderValue::from(decision.reset_secs));
        response
    };
    let headers = response.headers_mut();
    headers.insert("x-ratelimit-limit", HeaderValue::from(decision.limit));
    headers.insert(
        "x-ratelimit-remaining",
        HeaderValue::from(decision.remaining),
    );
    response
}

fn router(state: AppState) -> Router {
    let shared = Shared(state);
    let api = Router::new()
        .route("/counter/{name}", post(increment).get(read_counter))
        .route("/items/{id}", get(item))
        .route_layer(middleware::from_fn_with_state(shared.clone(), rate_limit));
    Router::new()
        .merge(api)
        .route("/health", get(azure_redis_connect::web::axum::health))
        .with_state(shared)
}

#[tokio::main]
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

    let state = AppState {
        redis,
        config: ApiConfig {
            cache_ttl: Duration::from_secs(settings.cache_ttl_secs),
            source_delay: Duration::from_millis(settings.source_delay_ms),
            rate_limit: settings.rate_limit,
            rate_window: Duration::from_secs(settings.rate_window_secs),
        },
    };
    let stop = support::shutdown_signal();
    let listener = match tokio::net::TcpListener::bind(settings.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(%error, addr = %settings.listen, "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        Ok(addr) => tracing::info!("listening on http://{addr}"),
        Err(error) => tracing::warn!(%error, "listening (address unknown)"),
    }
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await;
    drop(token_logger);
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
