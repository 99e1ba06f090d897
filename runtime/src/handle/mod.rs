//! What the single-node handle ([`AzureRedis`](crate::AzureRedis)) and the cluster handle
//! ([`AzureRedisCluster`](crate::cluster::AzureRedisCluster)) share: the [`Builder`] and its
//! options with their defaults, and (inside the crate) the connection factory, the AUTH rule,
//! the subscriptions restored on every new connection and the reconnect backoff. Each rule
//! lives here once; the handles are thin over it.
//!
//! # Defaults
//!
//! | setting | default | why |
//! |---|---|---|
//! | [`connect_timeout`](Builder::connect_timeout) | [`DEFAULT_CONNECT_TIMEOUT`] (10 s) | TCP, TLS and the first AUTH; Azure can take seconds to validate a token |
//! | [`response_timeout`](Builder::response_timeout) | [`DEFAULT_RESPONSE_TIMEOUT`] (5 s) | a command without a reply fails, and its connection is replaced: a peer that vanished sends nothing |
//! | [`auth_timeout`](Builder::auth_timeout) | [`DEFAULT_AUTH_TIMEOUT`] (10 s) | re-AUTH of live connections (also bounded by the response timeout) |
//! | [`keepalive`](Builder::keepalive) | [`DEFAULT_KEEPALIVE`] (60 s) | well under Azure's 10-minute idle close; finds a dead idle connection |
//! | [`wait_for_connection`](Builder::wait_for_connection) | [`DEFAULT_WAIT_FOR_CONNECTION`] (5 s) | how long a command waits while its connection is re-established |
//! | [`health_cache`](Builder::health_cache) | [`DEFAULT_HEALTH_CACHE`] (1 s) | how long a health check's result is shared |
//! | reconnect backoff | [`RECONNECT_BACKOFF`] (200 ms doubling to 2 s, jittered) | between failed connection attempts |
//! | re-AUTH retries | [`REAUTH_ATTEMPTS`] (3) tries, [`REAUTH_RETRY_STEP`] (50 ms) x attempt apart | then the connection is replaced |

mod auth;
mod backoff;
mod builder;
mod connector;
mod subscriptions;
mod surface;
mod tokens;

pub(crate) use auth::{Attempt, auth_cmd, retry_auth};
pub use auth::{REAUTH_ATTEMPTS, REAUTH_RETRY_STEP};
pub use backoff::{Backoff, RECONNECT_BACKOFF};
pub use builder::{
    Builder, Cluster, DEFAULT_AUTH_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_HEALTH_CACHE,
    DEFAULT_KEEPALIVE, DEFAULT_RESPONSE_TIMEOUT, DEFAULT_WAIT_FOR_CONNECTION, Single,
};
pub(crate) use connector::{
    client, connection_config, connection_info, endpoint_info, protocol, tls_roots,
};
pub(crate) use subscriptions::{Subscriptions, Topic};
pub(crate) use surface::handle_surface;
pub(crate) use tokens::{TokenWatch, unexpired_within};

/// Keepalive ticks every `period`, the first one `period` from now; none without a period.
pub(crate) fn keepalive_ticks(
    period: Option<std::time::Duration>,
) -> Option<tokio::time::Interval> {
    period.map(|period| {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks
    })
}

/// The next tick of `ticks`; never without them.
pub(crate) async fn next_tick(ticks: &mut Option<tokio::time::Interval>) {
    match ticks {
        Some(ticks) => {
            ticks.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// `Box::pin(make())` for a request's future, with the box allocated before the future is made,
/// so that the future is written into it in place. `Box::pin(async { .. })` makes the future on
/// the stack and copies it (over a kilobyte for a future that holds a redis-rs request), which
/// costs more instructions than all the rest of what a handle adds to a command.
pub(crate) fn boxed_in_place<'a, T, F>(make: impl FnOnce() -> F) -> redis::RedisFuture<'a, T>
where
    F: std::future::Future<Output = redis::RedisResult<T>> + Send + 'a,
{
    let boxed: Box<F> = Box::write(Box::new_uninit(), make());
    Box::into_pin(boxed)
}

/// Whether `credentials` have expired (a password that does not expire never has).
pub(crate) fn expired(credentials: &crate::token::Credentials) -> bool {
    credentials
        .expires_at
        .is_some_and(|at| at <= std::time::SystemTime::now())
}
