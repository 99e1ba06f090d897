//! Tracing spans for what the crate does besides commands: the token fetch, and connecting,
//! reconnecting and re-authenticating. Field names follow OpenTelemetry's semantic conventions
//! (`db.system.name`, `server.address`, `server.port`, `error.type`), so that
//! `tracing-opentelemetry` exports the spans as they are.
//!
//! | span | when | fields |
//! |---|---|---|
//! | `azure_redis.token.fetch` | each token request (the first, and every refresh) | `error.type` on failure |
//! | `redis.connect` | a handle's first connection | `db.system.name`, `server.address`, `server.port`, `error.type` |
//! | `redis.reconnect` | a replacement connection (single node), a rebuilt cluster connection | the same |
//! | `redis.reauth` | `AUTH` with a new token on the live connection(s), retries included | the same |
//!
//! `error.type` is a short, fixed name (`timeout`, `WRONGPASS`, `refused`...), never a message:
//! messages may hold what an identity endpoint answered.
//!
//! With the `metrics` feature, the counters and gauges named in `crate::metrics` are recorded
//! here too, through one-line calls that compile to nothing without the feature.

use std::time::SystemTime;

use redis::RedisError;
use tracing::Span;
use tracing::field::Empty;

use crate::config::Endpoint;
use crate::token::TokenError;

/// What a Redis span is for.
#[derive(Clone, Copy, Debug)]
pub(crate) enum RedisOperation {
    Connect,
    Reconnect,
    Reauth,
}

/// A span for `operation` on `endpoint`.
pub(crate) fn redis_span(operation: RedisOperation, endpoint: &Endpoint) -> Span {
    let address = server_address(endpoint);
    let port = endpoint.port;
    macro_rules! span {
        ($name:literal) => {
            tracing::info_span!(
                $name,
                db.system.name = "redis",
                server.address = address,
                server.port = port,
                error.type = Empty,
            )
        };
    }
    match operation {
        RedisOperation::Connect => span!("redis.connect"),
        RedisOperation::Reconnect => span!("redis.reconnect"),
        RedisOperation::Reauth => span!("redis.reauth"),
    }
}

/// A span for one token request.
pub(crate) fn token_span() -> Span {
    tracing::info_span!("azure_redis.token.fetch", error.type = Empty)
}

/// Records why the operation of `span` failed.
pub(crate) fn record_redis_error(span: &Span, error: &RedisError) {
    span.record("error.type", redis_error_type(error));
}

/// Records why the token request of `span` failed.
pub(crate) fn record_token_error(span: &Span, error: &TokenError) {
    span.record("error.type", token_error_type(error));
}

/// Records a failure that is not an error value (a refused re-AUTH after its retries).
pub(crate) fn record_failure(span: &Span, error_type: &'static str) {
    span.record("error.type", error_type);
}

/// The Redis error code where there is a known one, else the kind of failure.
pub(crate) fn redis_error_type(error: &RedisError) -> &'static str {
    const CODES: &[&str] = &[
        "WRONGPASS",
        "NOAUTH",
        "NOPERM",
        "MOVED",
        "ASK",
        "TRYAGAIN",
        "CLUSTERDOWN",
        "LOADING",
        "BUSY",
        "READONLY",
        "MASTERDOWN",
        "ERR",
    ];
    if let Some(code) = error.code()
        && let Some(known) = CODES.iter().find(|known| **known == code)
    {
        return known;
    }
    if error.is_timeout() {
        "timeout"
    } else if error.is_connection_refusal() {
        "connection_refused"
    } else if error.is_connection_dropped() {
        "connection_dropped"
    } else if error.is_io_error() {
        "io"
    } else {
        "redis"
    }
}

/// The address a span or a metric names: the TLS name where it differs from the host.
fn server_address(endpoint: &Endpoint) -> &str {
    endpoint
        .tls_server_name
        .as_deref()
        .unwrap_or(&endpoint.host)
}

/// Which handle a metric counts for (label `azure_redis.handle`).
#[derive(Clone, Copy, Debug)]
pub(crate) enum HandleKind {
    Single,
    Cluster,
}

/// What went unanswered when a connection was retired (label `azure_redis.reason`).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Unanswered {
    Command,
    Keepalive,
}

#[cfg(feature = "metrics")]
fn handle_labels(kind: HandleKind, endpoint: &Endpoint) -> Vec<::metrics::Label> {
    let kind = match kind {
        HandleKind::Single => "single",
        HandleKind::Cluster => "cluster",
    };
    vec![
        ::metrics::Label::from_static_parts("azure_redis.handle", kind),
        ::metrics::Label::new("server.address", server_address(endpoint).to_owned()),
    ]
}

/// Counts a re-AUTH accepted on a live connection (by one node, for a cluster).
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn count_reauth(kind: HandleKind, endpoint: &Endpoint) {
    #[cfg(feature = "metrics")]
    ::metrics::counter!(crate::metrics::REAUTHS, handle_labels(kind, endpoint)).increment(1);
}

/// Counts a re-AUTH try refused or unanswered (by one node, for a cluster).
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn count_reauth_failure(
    kind: HandleKind,
    endpoint: &Endpoint,
    error_type: &'static str,
) {
    #[cfg(feature = "metrics")]
    {
        let mut labels = handle_labels(kind, endpoint);
        labels.push(::metrics::Label::from_static_parts(
            "error.type",
            error_type,
        ));
        ::metrics::counter!(crate::metrics::REAUTH_FAILURES, labels).increment(1);
    }
}

/// Counts a replacement connection (single node) or a rebuilt cluster connection.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn count_reconnect(kind: HandleKind, endpoint: &Endpoint) {
    #[cfg(feature = "metrics")]
    ::metrics::counter!(crate::metrics::RECONNECTS, handle_labels(kind, endpoint)).increment(1);
}

/// Counts a connection retired because `what` got no reply in time.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn count_unresponsive_replaced(kind: HandleKind, endpoint: &Endpoint, what: Unanswered) {
    #[cfg(feature = "metrics")]
    {
        let reason = match what {
            Unanswered::Command => "command_timeout",
            Unanswered::Keepalive => "keepalive_timeout",
        };
        let mut labels = handle_labels(kind, endpoint);
        labels.push(::metrics::Label::from_static_parts(
            "azure_redis.reason",
            reason,
        ));
        ::metrics::counter!(crate::metrics::UNRESPONSIVE_REPLACED, labels).increment(1);
    }
}

/// The labels of one token provider's metrics: the server of the handle it serves, none for a
/// provider started on its own. Empty without the `metrics` feature.
#[derive(Clone, Debug, Default)]
pub(crate) struct TokenMeter {
    #[cfg(feature = "metrics")]
    labels: Vec<::metrics::Label>,
}

impl TokenMeter {
    /// The meter of the provider of a handle on `endpoint`.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn for_endpoint(endpoint: &Endpoint) -> TokenMeter {
        TokenMeter {
            #[cfg(feature = "metrics")]
            labels: vec![::metrics::Label::new(
                "server.address",
                server_address(endpoint).to_owned(),
            )],
        }
    }

    /// Counts a new token that expires at `expires_at`, and sets the expiry gauge to it; a
    /// password that does not expire records nothing.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn refreshed(&self, expires_at: Option<SystemTime>) {
        #[cfg(feature = "metrics")]
        if let Some(at) = expires_at {
            let unix = at
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64();
            ::metrics::counter!(crate::metrics::TOKEN_REFRESHES, self.labels.iter()).increment(1);
            ::metrics::gauge!(crate::metrics::TOKEN_EXPIRES_AT, self.labels.iter()).set(unix);
        }
    }

    /// Counts a failed token request.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn failed(&self, error: &TokenError) {
        #[cfg(feature = "metrics")]
        {
            let mut labels = self.labels.clone();
            labels.push(::metrics::Label::from_static_parts(
                "error.type",
                token_error_type(error),
            ));
            ::metrics::counter!(crate::metrics::TOKEN_FETCH_FAILURES, labels).increment(1);
        }
    }
}

fn token_error_type(error: &TokenError) -> &'static str {
    match error {
        TokenError::Credential { .. } => "credential",
        TokenError::Refused { .. } => "refused",
        TokenError::Timeout(_) => "timeout",
        TokenError::NotAJwt => "not_a_jwt",
        TokenError::NoObjectId => "no_object_id",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_errors_have_short_fixed_types() {
        // As redis-rs reads a refused AUTH off the wire.
        let reply = redis::parse_redis_value(b"-WRONGPASS invalid username-password pair\r\n")
            .expect("a RESP error reply");
        let wrongpass = match reply {
            redis::Value::ServerError(error) => RedisError::from(error),
            other => panic!("{other:?}"),
        };
        let timeout: RedisError = std::io::Error::from(std::io::ErrorKind::TimedOut).into();
        let refused: RedisError =
            std::io::Error::from(std::io::ErrorKind::ConnectionRefused).into();
        let types: Vec<_> = [&wrongpass, &timeout, &refused]
            .into_iter()
            .map(redis_error_type)
            .collect();
        assert_eq!(types, ["WRONGPASS", "timeout", "connection_refused"]);
    }
}
