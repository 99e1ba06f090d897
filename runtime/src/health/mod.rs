//! Health of a handle, for a health endpoint: a [`HealthReport`] from what the handle knows and
//! one `PING`, shared by concurrent callers and reused for a short time, so that a health
//! endpoint costs Redis at most one `PING` per [`health_cache`](crate::handle::Builder::health_cache)
//! period (1 s by default) whatever its request rate. Always compiled; the `web` module's
//! axum and actix-web handlers serve it.
//!
//! ```json
//! {
//!   "status": "ok",
//!   "healthy": true,
//!   "reasons": [],
//!   "connected": true,
//!   "ping_ms": 0.41,
//!   "token": {
//!     "expires_at": "2026-11-30T12:00:00.000Z",
//!     "expires_in_secs": 2712.5,
//!     "expired": false,
//!     "last_refresh": "2026-11-30T11:00:00.000Z",
//!     "consecutive_failures": 0,
//!     "last_error": null,
//!     "requests": 2
//!   },
//!   "reauths": 1,
//!   "reauth_failures": 0,
//!   "reconnects": 0
//! }
//! ```
//!
//! `status` is `"ok"`, `"degraded"` (still served with 200: the token is valid but refreshing
//! it fails; `reasons` says so) or `"unavailable"` (503: not connected, `PING` failed, or the
//! token expired). The report holds no secret: no token, key or user name, and `last_error` is
//! built from the identity endpoint's status and error codes, never its response body. For a
//! cluster handle the `PING` goes to every primary and fails unless each one answers, and
//! `reconnects` counts rebuilds of the cluster connection.
//!
//! For a framework without a module here:
//!
//! ```no_run
//! # async fn demo(redis: azure_redis_connect::AzureRedis) {
//! use azure_redis_connect::health::HealthReport;
//!
//! let report = HealthReport::check(&redis).await;
//! let (status, body) = (report.http_status(), report.to_json());
//! # let _ = (status, body); }
//! ```

use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::cluster::{AzureRedisCluster, ClusterStatus};
use crate::conn::{AzureRedis, ConnectionStatus};
use crate::token::TokenStatus;

/// A handle whose health can be checked: [`AzureRedis`] or [`AzureRedisCluster`].
pub trait HealthCheck: redis::aio::ConnectionLike + Clone + Send + Sync + sealed::Sealed {
    /// The report of what the handle knows, without asking the server.
    fn report(&self) -> HealthReport;

    #[doc(hidden)]
    fn health_cache(&self) -> &HealthCache;
}

impl HealthCheck for AzureRedis {
    fn report(&self) -> HealthReport {
        HealthReport::from_status(&self.status())
    }

    fn health_cache(&self) -> &HealthCache {
        AzureRedis::health_cache(self)
    }
}

impl HealthCheck for AzureRedisCluster {
    fn report(&self) -> HealthReport {
        HealthReport::from_cluster_status(&self.status())
    }

    fn health_cache(&self) -> &HealthCache {
        AzureRedisCluster::health_cache(self)
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for crate::conn::AzureRedis {}
    impl Sealed for crate::cluster::AzureRedisCluster {}
}

/// The last health check of a handle, shared by concurrent callers and reused for `max_age`.
#[doc(hidden)]
pub struct HealthCache {
    max_age: Duration,
    last: tokio::sync::Mutex<Option<(Instant, Duration, HealthReport)>>,
}

impl HealthCache {
    pub(crate) fn new(max_age: Duration) -> HealthCache {
        HealthCache {
            max_age,
            last: tokio::sync::Mutex::new(None),
        }
    }

    /// The last report if it was made with a `PING` timeout of `timeout` after the caller
    /// arrived (a check it waited for) or within `max_age`; otherwise a new one from `check`.
    async fn get_or_check<F>(&self, timeout: Duration, check: impl FnOnce() -> F) -> HealthReport
    where
        F: std::future::Future<Output = HealthReport>,
    {
        let arrived = Instant::now();
        let mut last = self.last.lock().await;
        if let Some((at, with, report)) = last.as_ref()
            && *with == timeout
            && (*at >= arrived || at.elapsed() <= self.max_age)
        {
            return report.clone();
        }
        let report = check().await;
        *last = Some((Instant::now(), timeout, report.clone()));
        report
    }
}

/// How long the health check waits for `PING` (and for a connection being re-established)
/// before it reports the server unreachable.
pub const DEFAULT_PING_TIMEOUT: Duration = Duration::from_secs(2);

/// The overall state in a [`HealthReport`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthState {
    /// Connected, answering, token valid and refreshing normally.
    Ok,
    /// Serving, but token refreshes fail: the token is still valid and the refresh is retried.
    Degraded,
    /// Not serving: not connected, not answering, or the token expired.
    Unavailable,
}

/// The token part of a [`HealthReport`].
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct TokenHealth {
    /// When the token in use expires (RFC 3339, UTC); `null` for a key that does not expire.
    pub expires_at: Option<String>,
    /// Seconds until expiry (negative once expired); `null` for a key.
    pub expires_in_secs: Option<f64>,
    /// Whether the token in use has expired.
    pub expired: bool,
    /// When the last refresh succeeded (RFC 3339, UTC).
    pub last_refresh: Option<String>,
    /// Refresh failures in a row (0 after a success).
    pub consecutive_failures: u32,
    /// The last refresh failure, without secrets; `null` after a success.
    pub last_error: Option<String>,
    /// Token requests made so far.
    pub requests: u64,
}

/// The health of an [`AzureRedis`] handle, as the health handlers serve it (serialized with
/// serde).
///
/// ```
/// use azure_redis_connect::health::{HealthReport, HealthState};
/// # fn status() -> azure_redis_connect::conn::ConnectionStatus { unimplemented!() }
///
/// # fn demo() {
/// let report = HealthReport::from_status(&status());
/// if report.status == HealthState::Unavailable {
///     eprintln!("cache unavailable: {}", report.reasons.join(", "));
/// }
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct HealthReport {
    /// `ok`, `degraded` or `unavailable`.
    pub status: HealthState,
    /// Whether the handle serves commands (`ok` or `degraded`): the HTTP status is 200 if so,
    /// 503 otherwise.
    pub healthy: bool,
    /// Why the status is not `ok`, one short phrase each.
    pub reasons: Vec<String>,
    /// Whether a connection is open. A cluster handle always has its cluster connection
    /// (redis-rs repairs the node connections), so this is `true` for it; whether every primary
    /// answers shows in `ping_ms` and `reasons`.
    pub connected: bool,
    /// Round trip of `PING` in milliseconds; `null` when it failed or was not sent.
    pub ping_ms: Option<f64>,
    /// The token provider's state.
    pub token: TokenHealth,
    /// Successful re-AUTHs on live connections.
    pub reauths: u64,
    /// Failed re-AUTH attempts.
    pub reauth_failures: u64,
    /// Connections opened after the first one (for a cluster handle: rebuilds of the cluster
    /// connection).
    pub reconnects: u64,
}

impl HealthReport {
    /// The report for a status snapshot, without asking the server anything.
    pub fn from_status(status: &ConnectionStatus) -> HealthReport {
        HealthReport::at(status, SystemTime::now())
    }

    /// The report for a cluster handle's status snapshot, without asking the server.
    pub fn from_cluster_status(status: &ClusterStatus) -> HealthReport {
        let counts = Counts {
            connected: true,
            reauths: status.reauths,
            reauth_failures: status.reauth_failures,
            reconnects: status.rebuilds,
        };
        HealthReport::build(&counts, &status.token, SystemTime::now())
    }

    fn at(status: &ConnectionStatus, now: SystemTime) -> HealthReport {
        let counts = Counts {
            connected: status.connected,
            reauths: status.reauths,
            reauth_failures: status.reauth_failures,
            reconnects: status.reconnects,
        };
        HealthReport::build(&counts, &status.token, now)
    }

    fn build(status: &Counts, token: &TokenStatus, now: SystemTime) -> HealthReport {
        let expired = token.expires_at.is_some_and(|at| at <= now);
        let mut report = HealthReport {
            status: HealthState::Ok,
            healthy: true,
            reasons: Vec::new(),
            connected: status.connected,
            ping_ms: None,
            token: TokenHealth {
                expires_at: token.expires_at.map(rfc3339),
                expires_in_secs: token.expires_at.map(|at| signed_secs(at, now)),
                expired,
                last_refresh: token.last_refresh.map(rfc3339),
                consecutive_failures: token.consecutive_failures,
                last_error: token.last_error.clone(),
                requests: token.requests,
            },
            reauths: status.reauths,
            reauth_failures: status.reauth_failures,
            reconnects: status.reconnects,
        };
        if !status.connected {
            report.unavailable("not connected to Redis");
        }
        if expired {
            report.unavailable("the access token has expired");
        }
        if token.consecutive_failures > 0 {
            report.reasons.push(format!(
                "token refresh failing ({} in a row)",
                token.consecutive_failures
            ));
            if report.status == HealthState::Ok {
                report.status = HealthState::Degraded;
            }
        }
        report
    }

    fn unavailable(&mut self, reason: impl Into<String>) {
        self.status = HealthState::Unavailable;
        self.healthy = false;
        self.reasons.push(reason.into());
    }

    /// Takes a status snapshot and sends `PING` through the handle, waiting at most
    /// [`DEFAULT_PING_TIMEOUT`]. Concurrent calls share one `PING`, and a result is reused for
    /// the handle's [`health_cache`](crate::handle::Builder::health_cache) period (1 s by
    /// default).
    pub async fn check(redis: &impl HealthCheck) -> HealthReport {
        HealthReport::check_with_timeout(redis, DEFAULT_PING_TIMEOUT).await
    }

    /// Like [`HealthReport::check`], with another `PING` timeout.
    pub async fn check_with_timeout(redis: &impl HealthCheck, timeout: Duration) -> HealthReport {
        redis
            .health_cache()
            .get_or_check(timeout, || HealthReport::ping(redis, timeout))
            .await
    }

    /// A new report with a `PING` of its own.
    async fn ping(redis: &impl HealthCheck, timeout: Duration) -> HealthReport {
        let mut conn = redis.clone();
        let started = Instant::now();
        let ping = tokio::time::timeout(
            timeout,
            redis::cmd("PING").query_async::<redis::Value>(&mut conn),
        )
        .await;
        let elapsed = started.elapsed();
        let mut report = redis.report();
        match ping {
            Ok(Ok(_)) => report.ping_ms = Some(round3(elapsed.as_secs_f64() * 1000.0)),
            Ok(Err(error)) => report.unavailable(format!("PING failed: {}", describe(&error))),
            Err(_) => report.unavailable(format!("PING timed out after {timeout:?}")),
        }
        report
    }

    /// The HTTP status code to serve: 200 when healthy, 503 otherwise.
    pub fn http_status(&self) -> u16 {
        if self.healthy { 200 } else { 503 }
    }

    /// The report as JSON.
    pub fn to_json(&self) -> String {
        // Serializing plain strings, numbers and options cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }
}

/// What a report takes from a status besides the token.
struct Counts {
    connected: bool,
    reauths: u64,
    reauth_failures: u64,
    reconnects: u64,
}

/// A redis error in a few words, never its detail text (which could quote what was sent).
fn describe(error: &redis::RedisError) -> String {
    if error.is_timeout() {
        "timed out".into()
    } else if error.is_connection_dropped() {
        "connection dropped".into()
    } else if error.is_connection_refusal() {
        "connection refused".into()
    } else if let Some(code) = error.code() {
        format!("server replied {code}")
    } else if error.is_io_error() {
        "I/O error".into()
    } else {
        let category = error.category();
        if category.is_empty() {
            "error".into()
        } else {
            category.into()
        }
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// `at - now` in seconds, negative when `at` is past, to the millisecond.
fn signed_secs(at: SystemTime, now: SystemTime) -> f64 {
    match at.duration_since(now) {
        Ok(ahead) => round3(ahead.as_secs_f64()),
        Err(behind) => -round3(behind.duration().as_secs_f64()),
    }
}

/// Formats a time as RFC 3339 in UTC with milliseconds: `2026-11-30T12:00:00.000Z`.
fn rfc3339(time: SystemTime) -> String {
    const FORMAT: &[time::format_description::BorrowedFormatItem<'_>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::from(time)
        .format(FORMAT)
        .unwrap_or_else(|_| "invalid time".to_owned())
}

#[cfg(test)]
mod tests;
