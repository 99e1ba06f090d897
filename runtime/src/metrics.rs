//! The names of the counters and gauges the crate records through the [`metrics`]
//! facade (feature `metrics`): token refreshes and failures, when the token expires, re-AUTHs,
//! reconnects, and connections replaced because they stopped answering. Install any `metrics`
//! recorder (a Prometheus exporter, an OpenTelemetry bridge) and they appear; without one, or
//! without the feature, nothing is recorded.
//!
//! | name | type | labels | what |
//! |---|---|---|---|
//! | [`azure_redis_token_refreshes_total`](TOKEN_REFRESHES) | counter | `server.address` | new tokens, the first one included |
//! | [`azure_redis_token_fetch_failures_total`](TOKEN_FETCH_FAILURES) | counter | `server.address`, `error.type` | failed token requests, the first one included |
//! | [`azure_redis_token_expires_at_seconds`](TOKEN_EXPIRES_AT) | gauge | `server.address` | when the current token expires, as a Unix time |
//! | [`azure_redis_reauths_total`](REAUTHS) | counter | `azure_redis.handle`, `server.address` | `AUTH`s with a new token accepted on live connections |
//! | [`azure_redis_reauth_failures_total`](REAUTH_FAILURES) | counter | `azure_redis.handle`, `server.address`, `error.type` | re-AUTH tries refused or unanswered |
//! | [`azure_redis_reconnects_total`](RECONNECTS) | counter | `azure_redis.handle`, `server.address` | replacement connections (single node), rebuilt cluster connections |
//! | [`azure_redis_unresponsive_replaced_total`](UNRESPONSIVE_REPLACED) | counter | `azure_redis.handle`, `server.address`, `azure_redis.reason` | connections retired because a command or a keepalive `PING` got no reply in time |
//!
//! Labels:
//!
//! - `azure_redis.handle`: `single` ([`AzureRedis`](crate::AzureRedis)) or `cluster`
//!   ([`AzureRedisCluster`](crate::cluster::AzureRedisCluster)).
//! - `server.address`: the host the handle connects to (its TLS name where that differs), as
//!   on the [tracing spans](crate#connecting); one value per handle. A
//!   [`TokenProvider`](crate::token::TokenProvider) started on its own records its token
//!   metrics without it.
//! - `error.type`: a short, fixed name, never a message (messages may hold what an identity
//!   endpoint answered): for tokens `credential`, `refused`, `timeout`, `not_a_jwt`,
//!   `no_object_id`; for re-AUTHs the Redis error code (`WRONGPASS`, `NOAUTH`, ...) or the kind
//!   of failure (`timeout`, `connection_dropped`, `io`, ...).
//! - `azure_redis.reason`: `command_timeout` or `keepalive_timeout`.
//!
//! The Redis counters count the same events as the handle's
//! [`status()`](crate::AzureRedis::status) fields of the same name (`reconnects` is
//! [`ClusterStatus::rebuilds`](crate::cluster::ClusterStatus::rebuilds) for a cluster, and a
//! cluster's re-AUTHs count node by node). A Prometheus exporter turns the dots in label names
//! into underscores (`server_address`).
//!
//! The token's expiry is a timestamp rather than "seconds left": a gauge is only as fresh as
//! its last update, and the token changes once every 45 minutes or so for a 1 h token (every
//! 18 h for a 24 h one), so "seconds left" set on each new token would be wrong most of the
//! time, and keeping it right would take a timer per handle waking up only for metrics. The
//! timestamp is exact between refreshes; the time left is a query away
//! (`azure_redis_token_expires_at_seconds - time()` in PromQL), and so is the alert on a
//! refresh that keeps failing: `azure_redis_token_expires_at_seconds - time() < 300`. An access
//! key, which does not expire, records no token metrics.
//!
//! With `metrics-exporter-prometheus` (not a dependency of this crate):
//!
//! ```ignore
//! metrics_exporter_prometheus::PrometheusBuilder::new()
//!     .with_http_listener(([0, 0, 0, 0], 9000))
//!     .install()?;
//! azure_redis_connect::metrics::describe();
//! let redis = Cache::from_env()?.connect().await?;
//! // GET :9000/metrics
//! // azure_redis_token_refreshes_total{server_address="shop.redis.cache.windows.net"} 3
//! ```

use ::metrics::Unit;

/// Counter: new tokens the provider obtained, the first one included (so that it equals the
/// [generation](crate::token::Credentials::generation) of the current credentials). A token
/// request that hands back the token in use (a cache) is not counted. Label:
/// `server.address`.
pub const TOKEN_REFRESHES: &str = "azure_redis_token_refreshes_total";

/// Counter: failed token requests, the first one included, each retry counted; a token that
/// is not a JWT or names no object ID counts as a failed request. Labels: `server.address`,
/// `error.type`.
pub const TOKEN_FETCH_FAILURES: &str = "azure_redis_token_fetch_failures_total";

/// Gauge: when the current token expires, in seconds since the Unix epoch; set on every new
/// token. Label: `server.address`.
pub const TOKEN_EXPIRES_AT: &str = "azure_redis_token_expires_at_seconds";

/// Counter: `AUTH`s with a new token accepted on a live connection (one per node for a
/// cluster). Labels: `azure_redis.handle`, `server.address`.
pub const REAUTHS: &str = "azure_redis_reauths_total";

/// Counter: re-AUTH tries refused or unanswered, retries included (one per node for a
/// cluster). Labels: `azure_redis.handle`, `server.address`, `error.type`.
pub const REAUTH_FAILURES: &str = "azure_redis_reauth_failures_total";

/// Counter: connections opened after the first one (single node), cluster connections rebuilt
/// (cluster): after a drop, an unresponsive connection, a refused re-AUTH, or (cluster) newly
/// announced nodes. Labels: `azure_redis.handle`, `server.address`.
pub const RECONNECTS: &str = "azure_redis_reconnects_total";

/// Counter: connections retired because a command (`command_timeout`) or a keepalive `PING`
/// (`keepalive_timeout`) got no reply within the response timeout: a peer that vanished.
/// Labels: `azure_redis.handle`, `server.address`, `azure_redis.reason`.
pub const UNRESPONSIVE_REPLACED: &str = "azure_redis_unresponsive_replaced_total";

/// Describes every metric above (unit and help text) to the installed recorder; call it once
/// after installing one, for exporters that show descriptions (Prometheus `# HELP`).
///
/// ```
/// // No recorder installed: does nothing.
/// azure_redis_connect::metrics::describe();
/// ```
pub fn describe() {
    ::metrics::describe_counter!(
        TOKEN_REFRESHES,
        Unit::Count,
        "New Microsoft Entra ID tokens obtained, the first one included."
    );
    ::metrics::describe_counter!(
        TOKEN_FETCH_FAILURES,
        Unit::Count,
        "Failed token requests, retries included."
    );
    ::metrics::describe_gauge!(
        TOKEN_EXPIRES_AT,
        Unit::Seconds,
        "When the current token expires, in seconds since the Unix epoch."
    );
    ::metrics::describe_counter!(
        REAUTHS,
        Unit::Count,
        "AUTHs with a new token accepted on live connections."
    );
    ::metrics::describe_counter!(
        REAUTH_FAILURES,
        Unit::Count,
        "Re-AUTH tries refused or unanswered."
    );
    ::metrics::describe_counter!(
        RECONNECTS,
        Unit::Count,
        "Replacement connections (single node) and rebuilt cluster connections."
    );
    ::metrics::describe_counter!(
        UNRESPONSIVE_REPLACED,
        Unit::Count,
        "Connections retired because a command or a keepalive PING got no reply in time."
    );
}
