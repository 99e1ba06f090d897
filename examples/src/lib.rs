//! Example services built on azure-redis-connect; each is a binary under `src/bin/`.
//!
//! `axum_service` and `actix_service` serve the same small API, each with its framework's
//! idioms; what they share lives here:
//!
//! - [`api`]: the Redis work behind the routes, framework-neutral: a counter (`INCR`), a
//!   cache-aside lookup in front of a slow source, and a fixed-window rate limiter;
//! - [`support`]: logging, the startup line naming the variables read, token event logging and
//!   the shutdown signal.

pub mod api {
    //! The Redis work behind the example routes.
    //!
    //! | route | what |
    //! |---|---|
    //! | `POST /counter/{name}` | `INCR counter:{name}`; answers `{"name", "value"}` |
    //! | `GET /counter/{name}` | the counter's value (0 when unset) |
    //! | `GET /items/{id}` | cache-aside: `item:{id}` from Redis, else from a slow source, then `SET EX` |
    //! | every route but `/health` | fixed-window rate limit per client (`x-client-id` header, else the peer address) |
    //! | `GET /health` | the library's health handler |

    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use azure_redis_connect::AzureRedis;
    use azure_redis_connect::redis::{self, AsyncCommands, RedisResult};
    use serde::{Deserialize, Serialize};

    /// The application's own settings that the routes need.
    #[derive(Clone, Debug)]
    pub struct ApiConfig {
        /// How long a cached item lives in Redis.
        pub cache_ttl: Duration,
        /// How long the simulated source takes to produce an item.
        pub source_delay: Duration,
        /// Requests allowed per client and window.
        pub rate_limit: u32,
        /// The rate limit's window.
        pub rate_window: Duration,
    }

    /// The application state both services hand to their handlers.
    #[derive(Clone, Debug)]
    pub struct AppState {
        /// The Redis handle.
        pub redis: AzureRedis,
        /// The routes' settings.
        pub config: ApiConfig,
    }

    /// Whether a counter name or client id is acceptable: 1 to 64 of `A-Z a-z 0-9 _ - .`.
    ///
    /// ```
    /// use azure_redis_connect_examples::api::valid_name;
    /// assert!(valid_name("page-views"));
    /// assert!(!valid_name(""));
    /// assert!(!valid_name("a b"));
    /// assert!(!valid_name(&"x".repeat(65)));
    /// ```
    pub fn valid_name(name: &str) -> bool {
        (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    }

    /// A counter's value after `INCR`.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Counter {
        /// The counter's name.
        pub name: String,
        /// Its value.
        pub value: i64,
    }

    /// The Redis key of a counter.
    pub fn counter_key(name: &str) -> String {
        format!("counter:{name}")
    }

    /// `INCR counter:{name}`.
    pub async fn increment(redis: &mut AzureRedis, name: &str) -> RedisResult<Counter> {
        let value = redis.incr(counter_key(name), 1).await?;
        Ok(Counter {
            name: name.to_string(),
            value,
        })
    }

    /// The counter's value, 0 when unset.
    pub async fn read_counter(redis: &mut AzureRedis, name: &str) -> RedisResult<Counter> {
        let value: Option<i64> = redis.get(counter_key(name)).await?;
        Ok(Counter {
            name: name.to_string(),
            value: value.unwrap_or(0),
        })
    }

    /// An item of the simulated catalogue.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Item {
        /// Its id.
        pub id: u64,
        /// Its name.
        pub name: String,
        /// Its price in cents.
        pub price_cents: u64,
        /// When the source produced it (milliseconds since the Unix epoch).
        pub loaded_at_ms: u64,
    }

    /// Whether an item came from Redis or from the source.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub enum CacheOutcome {
        /// Found in Redis.
        Hit,
        /// Loaded from the source and stored in Redis.
        Miss,
    }

    impl CacheOutcome {
        /// `"hit"` or `"miss"`, for an `x-cache` header.
        pub fn as_str(self) -> &'static str {
            match self {
                CacheOutcome::Hit => "hit",
                CacheOutcome::Miss => "miss",
            }
        }
    }

    /// The answer of `GET /items/{id}`.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ItemLookup {
        /// The item.
        pub item: Item,
        /// Where it came from.
        pub cache: CacheOutcome,
    }

    /// The highest item id the simulated source knows.
    pub const MAX_ITEM_ID: u64 = 1_000_000;

    /// The Redis key of a cached item.
    pub fn item_key(id: u64) -> String {
        format!("item:{id}")
    }

    /// The slow source behind the cache: waits `delay`, then makes up item `id` (`None` past
    /// [`MAX_ITEM_ID`]).
    pub async fn load_from_source(id: u64, delay: Duration) -> Option<Item> {
        tokio::time::sleep(delay).await;
        (1..=MAX_ITEM_ID).contains(&id).then(|| Item {
            id,
            name: format!("item {id}"),
            price_cents: 100 + id.wrapping_mul(37) % 10_000,
            loaded_at_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
        })
    }

    /// Cache-aside: the item from Redis, or from the source, then stored for `cache_ttl`.
    /// `Ok(None)` when the source has no such item.
    pub async fn lookup_item(
        redis: &mut AzureRedis,
        config: &ApiConfig,
        id: u64,
    ) -> RedisResult<Option<ItemLookup>> {
        let key = item_key(id);
        let cached: Option<String> = redis.get(&key).await?;
        if let Some(item) = cached.and_then(|json| serde_json::from_str::<Item>(&json).ok()) {
            return Ok(Some(ItemLookup {
                item,
                cache: CacheOutcome::Hit,
            }));
        }
        let Some(item) = load_from_source(id, config.source_delay).await else {
            return Ok(None);
        };
        // An Item always serializes.
        let json = serde_json::to_string(&item).unwrap_or_default();
        let ttl = config.cache_ttl.as_secs().max(1);
        let () = redis.set_ex(&key, json, ttl).await?;
        Ok(Some(ItemLookup {
            item,
            cache: CacheOutcome::Miss,
        }))
    }

    /// The rate limiter's verdict for one request.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
    pub struct RateDecision {
        /// Whether the request may proceed.
        pub allowed: bool,
        /// Requests allowed per window.
        pub limit: u32,
        /// Requests left in this window.
        pub remaining: u32,
        /// Seconds until the window ends.
        pub reset_secs: u64,
    }

    /// The Redis key of a client's counter in the window that holds `now`.
    pub fn rate_key(client: &str, window: Duration, now: SystemTime) -> String {
        let window = window.as_secs().max(1);
        let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        format!("ratelimit:{client}:{}", secs / window)
    }

    /// Fixed-window rate limit: counts the request in the client's current window (`INCR` and
    /// `EXPIRE` in one transaction) and allows it while the count is within the limit.
    pub async fn rate_limit(
        redis: &mut AzureRedis,
        config: &ApiConfig,
        client: &str,
    ) -> RedisResult<RateDecision> {
        let window = config.rate_window.as_secs().max(1);
        let now = SystemTime::now();
        let key = rate_key(client, config.rate_window, now);
        let (count,): (u64,) = redis::pipe()
            .atomic()
            .incr(&key, 1)
            .expire(&key, window as i64)
            .ignore()
            .query_async(redis)
            .await?;
        let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let limit = u64::from(config.rate_limit);
        Ok(RateDecision {
            allowed: count <= limit,
            limit: config.rate_limit,
            remaining: limit.saturating_sub(count) as u32,
            reset_secs: window - secs % window,
        })
    }

    /// The body of an error answer: `{"error": "..."}`.
    #[derive(Clone, Debug, Serialize, Deserialize)]
    pub struct ErrorBody {
        /// What went wrong, for the caller.
        pub error: String,
    }

    impl ErrorBody {
        /// An error body.
        pub fn new(error: impl Into<String>) -> ErrorBody {
            ErrorBody {
                error: error.into(),
            }
        }
    }

    /// Logs a Redis failure behind a request (the error text of redis-rs holds no credentials)
    /// and gives the caller a body without details.
    pub fn unavailable(what: &str, error: &redis::RedisError) -> ErrorBody {
        tracing::warn!(%error, "{what} failed");
        ErrorBody::new("the cache is unavailable; try again")
    }
}

pub mod support {
    //! Logging, the startup line, token event logging and the shutdown signal.

    use std::fmt::Write as _;
    use std::io::IsTerminal as _;
    use std::time::SystemTime;

    use azure_redis_connect::token::TokenEvent;
    use azure_redis_connect::{AzureRedis, AzureRedisConfig};
    use tokio::sync::broadcast::error::RecvError;
    use tokio::task::JoinHandle;

    /// Logs to standard output with `tracing-subscriber`'s fmt layer; `RUST_LOG` overrides the
    /// default filter (`info`), which shows the service's events and the runtime's refreshes and re-AUTHs.
    pub fn init_tracing() {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(std::io::stdout().is_terminal())
            .init();
    }

    /// One line naming each variable the configuration reads and whether it is set (never a
    /// value).
    ///
    /// ```
    /// use azure_redis_connect::AzureRedisConfig;
    /// use azure_redis_connect_examples::support::variables_line;
    ///
    /// #[derive(AzureRedisConfig)]
    /// #[azure_redis(auth = "system_identity")]
    /// struct Cache { host: String }
    ///
    /// let line = variables_line::<Cache>(|name| name == "AZURE_REDIS_HOST");
    /// assert_eq!(line, "AZURE_REDIS_HOST (host: String) set");
    /// ```
    pub fn variables_line<C: AzureRedisConfig>(is_set: impl Fn(&str) -> bool) -> String {
        let mut line = String::new();
        for var in C::variables() {
            if !line.is_empty() {
                line.push_str(", ");
            }
            let _ = write!(line, "{} ({}: {}) ", var.env, var.field, var.ty);
            match (is_set(var.env), var.default) {
                (true, _) => line.push_str("set"),
                (false, Some(default)) => {
                    let _ = write!(line, "unset, default {default}");
                }
                (false, None) => line.push_str("unset"),
            }
            if var.secret {
                line.push_str(", secret");
            }
        }
        line
    }

    /// Logs the variables `C` reads from the process environment, then the resolved auth type
    /// and endpoint (neither holds a secret).
    pub fn log_configuration<C: AzureRedisConfig>(config: &C) {
        let line = variables_line::<C>(|name| std::env::var_os(name).is_some());
        tracing::info!("configuration read from: {line}");
        match (config.auth(), config.endpoint()) {
            (Ok(auth), Ok(endpoint)) => tracing::info!(%auth, %endpoint, "cache"),
            (Err(error), _) | (_, Err(error)) => tracing::error!(%error, "configuration"),
        }
    }

    /// A task that logs every token event of the handle; aborted when dropped.
    #[derive(Debug)]
    pub struct TokenLogger(JoinHandle<()>);

    impl TokenLogger {
        /// Starts logging the token events of `redis`.
        pub fn start(redis: &AzureRedis) -> TokenLogger {
            let mut events = redis.token_provider().events();
            let task = tokio::spawn(async move {
                loop {
                    match events.recv().await {
                        Ok(TokenEvent::Refreshed {
                            generation,
                            expires_at,
                        }) => {
                            let expires_in = expires_at
                                .and_then(|at| at.duration_since(SystemTime::now()).ok())
                                .map_or(0.0, |d| d.as_secs_f64());
                            tracing::info!(
                                generation,
                                expires_in_secs = format!("{expires_in:.1}"),
                                "token refreshed; re-authenticating live connections"
                            );
                        }
                        Ok(TokenEvent::Failed {
                            error,
                            consecutive_failures,
                        }) => {
                            tracing::warn!(%error, consecutive_failures, "token refresh failed; retrying")
                        }
                        Ok(TokenEvent::Unchanged) => {
                            tracing::debug!("token source returned the token in use")
                        }
                        Ok(_) => {}
                        Err(RecvError::Lagged(missed)) => {
                            tracing::warn!(missed, "token events missed")
                        }
                        Err(RecvError::Closed) => return,
                    }
                }
            });
            TokenLogger(task)
        }
    }

    impl Drop for TokenLogger {
        fn drop(&mut self) {
            self.0.abort();
        }
    }

    /// Installs the handlers for Ctrl-C (SIGINT) and SIGTERM now, and returns what completes on
    /// either. Call it before announcing that the service listens: a signal sent as soon as
    /// that is read must not find the default action, which ends the process at once.
    pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
        #[cfg(unix)]
        let signals = {
            use tokio::signal::unix::{SignalKind, signal};
            signal(SignalKind::interrupt()).and_then(|interrupt| {
                signal(SignalKind::terminate()).map(|terminate| (interrupt, terminate))
            })
        };
        async move {
            #[cfg(unix)]
            match signals {
                Ok((mut interrupt, mut terminate)) => {
                    tokio::select! {
                        _ = interrupt.recv() => {}
                        _ = terminate.recv() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
            #[cfg(not(unix))]
            {
                let _ = tokio::signal::ctrl_c().await;
            }
            tracing::info!("shutdown signal received; finishing requests in flight");
        }
    }
}
