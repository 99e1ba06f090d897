//! The token provider in the shape redis-rs takes: a [`StreamingCredentialsProvider`] for a
//! connection, a `ConnectionManager` or a cluster client of the application's own.
//!
//! redis-rs (1.8, `aio/multiplexed_connection.rs`) takes the first item of a fresh stream as
//! the credentials of each new connection, then subscribes again and spawns a task per
//! connection that sends `AUTH` with every further item. That task stops for good after one
//! refused AUTH, and a connection opened with an expired token is refused; so this stream:
//!
//! - never yields a token that has expired: while the current one has (an identity outage),
//!   the first item waits for the next token, up to [`RedisCredentials::first_wait`], and is an
//!   error after that, so that redis-rs fails that connection attempt (and a
//!   `ConnectionManager` tries again later) instead of sending an AUTH Azure refuses;
//! - yields every new token, for as long as the stream lives (the provider's refresh never
//!   gives up, whatever the token lifetime: see [`RefreshPolicy`](super::RefreshPolicy)), and
//!   never ends: an ended stream only makes redis-rs stop re-authenticating.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{Stream, StreamExt as _, stream};
use redis::{BasicAuth, RedisResult, StreamingCredentialsProvider};
use secrecy::ExposeSecret;
use tokio::sync::watch;

use super::{Credentials, TokenProvider};
use crate::handle::{expired, unexpired_within};

/// How long the first item of a stream waits for an unexpired token by default: the default
/// connect timeout, the time redis-rs gives a connection attempt.
pub const DEFAULT_FIRST_WAIT: Duration = crate::handle::DEFAULT_CONNECT_TIMEOUT;

/// A [`TokenProvider`] as redis-rs's [`StreamingCredentialsProvider`]: give it to
/// `AsyncConnectionConfig`, `ConnectionManagerConfig` or `ClusterClientBuilder` with
/// `set_credentials_provider`, and every connection they open authenticates with the current
/// token and re-AUTHs with each new one.
///
/// [`Builder::redis_client`](crate::handle::Builder::redis_client) gives the provider with a
/// `redis::Client` for the endpoint, and shows a `ConnectionManager` using them.
#[derive(Clone)]
pub struct RedisCredentials {
    provider: TokenProvider,
    first_wait: Duration,
    follow: Follow,
}

/// Which new tokens a stream yields after its first item.
#[derive(Clone, Copy)]
enum Follow {
    /// Every one.
    Every,
    /// Only one that arrives within this time of the subscription: for connections whose
    /// owner re-AUTHs them itself (the cluster handle's nodes).
    Within(Duration),
}

impl TokenProvider {
    /// This provider as redis-rs's [`StreamingCredentialsProvider`]; see [`RedisCredentials`].
    pub fn redis_credentials(&self) -> RedisCredentials {
        RedisCredentials {
            provider: self.clone(),
            first_wait: DEFAULT_FIRST_WAIT,
            follow: Follow::Every,
        }
    }
}

impl RedisCredentials {
    /// How long the first item of a stream (a new connection's credentials) waits for an
    /// unexpired token while the current one has expired; [`DEFAULT_FIRST_WAIT`] by default.
    pub fn first_wait(mut self, wait: Duration) -> Self {
        self.first_wait = wait;
        self
    }

    /// Streams that yield the current credentials, then only a new token that arrives within
    /// `grace` of the subscription, for connections whose owner re-AUTHs them itself.
    pub(crate) fn first_only(provider: TokenProvider, grace: Duration) -> Self {
        RedisCredentials {
            provider,
            first_wait: grace,
            follow: Follow::Within(grace),
        }
    }
}

impl std::fmt::Debug for RedisCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCredentials")
            .field("first_wait", &self.first_wait)
            .finish_non_exhaustive()
    }
}

/// The credentials as redis-rs takes them (`default` as the user name of a bare password).
pub(crate) fn basic_auth(credentials: &Credentials) -> BasicAuth {
    BasicAuth::new(
        credentials
            .username
            .clone()
            .unwrap_or_else(|| "default".to_string()),
        credentials.password.expose_secret().to_string(),
    )
}

impl StreamingCredentialsProvider for RedisCredentials {
    fn subscribe(&self) -> Pin<Box<dyn Stream<Item = RedisResult<BasicAuth>> + Send + 'static>> {
        let mut rx = self.provider.subscribe();
        rx.borrow_and_update();
        let head = stream::once(valid_within(rx.clone(), self.first_wait));
        match self.follow {
            Follow::Every => {
                // The stream holds the provider, so its refresh runs while the stream lives.
                let provider = self.provider.clone();
                let rest = stream::unfold((rx, provider), |(mut rx, provider)| async move {
                    let credentials = next_unexpired(&mut rx).await?;
                    Some((Ok(basic_auth(&credentials)), (rx, provider)))
                });
                Box::pin(head.chain(rest).chain(stream::pending()))
            }
            Follow::Within(grace) => {
                let late_change = async move {
                    match tokio::time::timeout(grace, next_unexpired(&mut rx)).await {
                        Ok(Some(credentials)) => Some(Ok(basic_auth(&credentials))),
                        _ => None,
                    }
                };
                let late = stream::once(late_change).filter_map(|item| async move { item });
                Box::pin(head.chain(late).chain(stream::pending()))
            }
        }
    }
}

/// The current credentials, or, while they have expired, the next ones if they come within
/// `wait`; an error otherwise.
async fn valid_within(
    rx: watch::Receiver<Arc<Credentials>>,
    wait: Duration,
) -> RedisResult<BasicAuth> {
    let credentials = unexpired_within(rx, wait, None).await?;
    Ok(basic_auth(&credentials))
}

/// The next new credentials that have not expired; `None` once the provider is gone.
async fn next_unexpired(rx: &mut watch::Receiver<Arc<Credentials>>) -> Option<Arc<Credentials>> {
    loop {
        rx.changed().await.ok()?;
        let credentials = Arc::clone(&rx.borrow_and_update());
        if !expired(&credentials) {
            return Some(credentials);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::{
        AccessToken, BoxFuture, RefreshPolicy, StaticPassword, TokenError, TokenSource,
    };
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::SystemTime;

    async fn static_provider() -> TokenProvider {
        TokenProvider::start(
            StaticPassword::new(None, "key".into()),
            RefreshPolicy::default(),
            None,
        )
        .await
        .expect("a static password")
    }

    #[tokio::test]
    async fn first_only_yields_the_current_credentials_then_stays_open() {
        let creds =
            RedisCredentials::first_only(static_provider().await, Duration::from_millis(20));
        let mut s = creds.subscribe();
        let first = s.next().await.expect("an item").expect("credentials");
        assert_eq!((first.username(), first.password()), ("default", "key"));
        assert!(!format!("{first:?}").contains("key\""));
        let more = tokio::time::timeout(Duration::from_millis(200), s.next()).await;
        assert!(more.is_err(), "no further item and no end");
    }

    /// Tokens `t1`, `t2`, ... living `lifetime` each.
    struct Counting {
        n: AtomicU64,
        lifetime: Duration,
    }

    impl TokenSource for Counting {
        fn fetch(&self) -> BoxFuture<'_, Result<AccessToken, TokenError>> {
            let n = self.n.fetch_add(1, Ordering::SeqCst) + 1;
            let expires_at = Some(SystemTime::now() + self.lifetime);
            Box::pin(async move {
                Ok(AccessToken {
                    token: format!("t{n}").into(),
                    expires_at,
                })
            })
        }
        fn is_entra_id(&self) -> bool {
            false
        }
        fn username(&self) -> Option<String> {
            Some("oid".into())
        }
    }

    #[tokio::test]
    async fn every_yields_each_new_token_and_keeps_the_provider_refreshing() {
        let policy = RefreshPolicy {
            min_lead: Duration::ZERO,
            ..RefreshPolicy::default()
        };
        let source = Counting {
            n: AtomicU64::new(0),
            lifetime: Duration::from_millis(400),
        };
        let provider = TokenProvider::start(source, policy, None)
            .await
            .expect("the first token");
        let creds = provider.redis_credentials();
        // The stream alone keeps the refresh going.
        drop(provider);
        let mut s = creds.subscribe();
        drop(creds);
        let mut seen = Vec::new();
        for _ in 0..4 {
            let item = tokio::time::timeout(Duration::from_secs(5), s.next())
                .await
                .expect("a new token within the lifetime")
                .expect("an item")
                .expect("credentials");
            assert_eq!(item.username(), "oid");
            seen.push(item.password().to_string());
        }
        assert_eq!(seen, ["t1", "t2", "t3", "t4"]);
    }
}
