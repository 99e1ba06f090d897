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
    let address = endpoint
        .tls_server_name
        .as_deref()
        .unwrap_or(&endpoint.host);
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
