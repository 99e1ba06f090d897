//! Token provider: the current Redis credentials, refreshed before they expire, for as long as
//! the provider lives.
//!
//! A [`TokenProvider`] owns one background task that asks its [`TokenSource`] for a new token
//! after [`RefreshPolicy::refresh_after`] of the current one's lifetime, retries failures
//! (never giving up, also past expiry: see [`RefreshPolicy`] for the cadence), and publishes
//! each new token to subscribers (the connections, which re-AUTH with it). The task stops when
//! the last clone of the provider is dropped.

mod azure;
mod claims;
mod error;
mod policy;
mod redis_credentials;
mod source;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, SystemTime};

use secrecy::SecretString;
use tokio::sync::{broadcast, watch};

use crate::task::{TaskOwner, spawn_owned};
use crate::telemetry::TokenMeter;

pub(crate) use azure::install_crypto_provider;
#[cfg(test)]
pub(crate) use azure::source_with_transport;
pub use azure::{CredentialOptions, source_for};
pub use error::{Refusal, TokenError};
pub use futures_util::future::BoxFuture;
pub use policy::{
    DEFAULT_EXPIRED_RETRY, DEFAULT_INITIAL_BACKOFF, DEFAULT_MAX_BACKOFF, DEFAULT_MIN_LEAD,
    DEFAULT_REFRESH_RATIO, DEFAULT_REQUEST_TIMEOUT, RefreshPolicy,
};
pub use redis_credentials::{DEFAULT_FIRST_WAIT, RedisCredentials};
pub use source::{AzureCredentialSource, CredentialFactory, REDIS_SCOPE, StaticPassword};

/// An access token as a [`TokenSource`] hands it over.
#[derive(Clone)]
pub struct AccessToken {
    /// The token.
    pub token: SecretString,
    /// When it expires; `None` for a password that does not.
    pub expires_at: Option<SystemTime>,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"[REDACTED]")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Something that yields access tokens: an azure_identity credential, or a static password.
pub trait TokenSource: Send + Sync + 'static {
    /// Asks for a token.
    fn fetch(&self) -> BoxFuture<'_, Result<AccessToken, TokenError>>;

    /// Whether the tokens are JWTs whose `oid` claim is the user name.
    fn is_entra_id(&self) -> bool {
        true
    }

    /// The user name to AUTH with when the tokens do not name one.
    fn username(&self) -> Option<String> {
        None
    }
}

/// The credentials to AUTH with: user name and password (a token, or an access key).
#[derive(Clone)]
pub struct Credentials {
    /// User name: the token's `oid`, an explicit override, or `None` for a bare password.
    pub username: Option<String>,
    /// Password: the token or the key.
    pub password: SecretString,
    /// When the password stops being accepted.
    pub expires_at: Option<SystemTime>,
    /// Counts the credentials this provider handed out, starting at 1.
    pub generation: u64,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"[REDACTED]")
            .field("expires_at", &self.expires_at)
            .field("generation", &self.generation)
            .finish()
    }
}

/// What happened in the refresh loop.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum TokenEvent {
    /// New credentials were published.
    Refreshed {
        /// Their generation.
        generation: u64,
        /// When they expire.
        expires_at: Option<SystemTime>,
    },
    /// The source handed back the token already in use (a credential's cache); retried later.
    Unchanged,
    /// A refresh failed; it is retried.
    Failed {
        /// The error, without secrets.
        error: String,
        /// Failures in a row, this one included.
        consecutive_failures: u32,
    },
}

/// A snapshot of the provider's state, for health checks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenStatus {
    /// When the current token expires.
    pub expires_at: Option<SystemTime>,
    /// When the last refresh succeeded.
    pub last_refresh: Option<SystemTime>,
    /// Refresh failures in a row (0 after a success).
    pub consecutive_failures: u32,
    /// The last failure, without secrets.
    pub last_error: Option<String>,
    /// Token requests made so far.
    pub requests: u64,
}

impl TokenStatus {
    /// Whether the current token has expired.
    pub fn is_expired(&self) -> bool {
        self.expires_at.is_some_and(|at| at <= SystemTime::now())
    }
}

struct Shared {
    current: watch::Sender<Arc<Credentials>>,
    status: Mutex<TokenStatus>,
    events: broadcast::Sender<TokenEvent>,
    /// The refresh task, which holds only a `Weak` to this; `None` for a password that does
    /// not expire.
    refresh: Mutex<Option<TaskOwner>>,
}

impl Shared {
    fn update_status(&self, f: impl FnOnce(&mut TokenStatus)) {
        f(&mut self.status.lock().unwrap_or_else(PoisonError::into_inner));
    }
}

/// The current credentials, refreshed in the background; cheap to clone.
///
/// ```no_run
/// # async fn run() -> Result<(), azure_redis_connect::token::TokenError> {
/// use azure_redis_connect::token::{RefreshPolicy, StaticPassword, TokenProvider};
///
/// let provider = TokenProvider::start(StaticPassword::new(None, "key".into()), RefreshPolicy::default(), None).await?;
/// let credentials = provider.current();
/// assert_eq!(credentials.generation, 1);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TokenProvider {
    shared: Arc<Shared>,
}

impl fmt::Debug for TokenProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenProvider")
            .field("status", &self.status())
            .finish()
    }
}

/// Time left before `token` expires (`None` for a password that does not); right after a
/// token arrives, its lifetime.
fn time_left(token: &AccessToken) -> Option<Duration> {
    token
        .expires_at
        .map(|at| at.duration_since(SystemTime::now()).unwrap_or_default())
}

async fn fetch(
    source: &dyn TokenSource,
    policy: &RefreshPolicy,
) -> Result<AccessToken, TokenError> {
    use tracing::Instrument as _;
    let span = crate::telemetry::token_span();
    let result = match tokio::time::timeout(policy.request_timeout, source.fetch())
        .instrument(span.clone())
        .await
    {
        Ok(result) => result,
        Err(_) => Err(TokenError::Timeout(policy.request_timeout)),
    };
    if let Err(error) = &result {
        crate::telemetry::record_token_error(&span, error);
    }
    result
}

impl TokenProvider {
    /// Fetches the first token (within the policy's `request_timeout`) and starts the refresh
    /// task. `username` overrides the token's `oid` claim.
    pub async fn start(
        source: impl TokenSource,
        policy: RefreshPolicy,
        username: Option<String>,
    ) -> Result<TokenProvider, TokenError> {
        Self::start_metered(source, policy, username, TokenMeter::default()).await
    }

    /// [`start`](Self::start), recording the token metrics with `meter`'s labels.
    pub(crate) async fn start_metered(
        source: impl TokenSource,
        policy: RefreshPolicy,
        username: Option<String>,
        meter: TokenMeter,
    ) -> Result<TokenProvider, TokenError> {
        let source: Arc<dyn TokenSource> = Arc::new(source);
        let (first, credentials) = fetch(&*source, &policy)
            .await
            .and_then(|first| {
                let credentials = credentials(&*source, first.clone(), username.clone(), 1)?;
                Ok((first, credentials))
            })
            .inspect_err(|error| meter.failed(error))?;
        meter.refreshed(first.expires_at);
        let (current, _) = watch::channel(Arc::new(credentials));
        let (events, _) = broadcast::channel(64);
        let shared = Arc::new(Shared {
            current,
            status: Mutex::new(TokenStatus {
                expires_at: first.expires_at,
                last_refresh: Some(SystemTime::now()),
                requests: 1,
                ..TokenStatus::default()
            }),
            events,
            refresh: Mutex::new(None),
        });
        if first.expires_at.is_some() {
            let refresh = refresh_loop(
                Arc::downgrade(&shared),
                source,
                policy,
                username,
                first,
                meter,
            );
            *shared
                .refresh
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(spawn_owned(refresh));
        }
        Ok(TokenProvider { shared })
    }

    /// The current credentials.
    pub fn current(&self) -> Arc<Credentials> {
        Arc::clone(&self.shared.current.borrow())
    }

    /// A receiver that sees each new credentials.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Credentials>> {
        self.shared.current.subscribe()
    }

    /// Every refresh, unchanged token and failure, as it happens.
    pub fn events(&self) -> broadcast::Receiver<TokenEvent> {
        self.shared.events.subscribe()
    }

    /// A snapshot of the refresh state.
    pub fn status(&self) -> TokenStatus {
        self.shared
            .status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

fn credentials(
    source: &dyn TokenSource,
    token: AccessToken,
    username: Option<String>,
    generation: u64,
) -> Result<Credentials, TokenError> {
    use secrecy::ExposeSecret;
    let username = match username {
        Some(name) => Some(name),
        None if source.is_entra_id() => Some(claims::object_id(token.token.expose_secret())?),
        None => source.username(),
    };
    Ok(Credentials {
        username,
        password: token.token,
        expires_at: token.expires_at,
        generation,
    })
}

fn same_token(a: &AccessToken, b: &AccessToken) -> bool {
    use secrecy::ExposeSecret;
    a.expires_at == b.expires_at && a.token.expose_secret() == b.token.expose_secret()
}

/// Refreshes until the provider is gone: sleeps (holding no strong reference to the
/// provider), fetches, publishes.
async fn refresh_loop(
    shared: Weak<Shared>,
    source: Arc<dyn TokenSource>,
    policy: RefreshPolicy,
    username: Option<String>,
    mut current: AccessToken,
    meter: TokenMeter,
) {
    let mut generation = 1;
    let mut lifetime = time_left(&current);
    let mut wait = lifetime
        .map(|l| policy.refresh_after(l))
        .unwrap_or_default();
    let mut failures = 0u32;
    loop {
        tokio::time::sleep(wait).await;
        let Some(provider) = shared.upgrade() else {
            return;
        };
        provider.update_status(|s| s.requests += 1);
        drop(provider);
        let result = fetch(&*source, &policy).await.and_then(|token| {
            if same_token(&token, &current) {
                return Ok(None);
            }
            let next = credentials(&*source, token.clone(), username.clone(), generation + 1)?;
            Ok(Some((token, next)))
        });
        let Some(shared) = shared.upgrade() else {
            return;
        };
        match result {
            Ok(Some((token, next))) => {
                generation += 1;
                failures = 0;
                lifetime = time_left(&token);
                wait = lifetime
                    .map(|l| policy.refresh_after(l))
                    .unwrap_or_default();
                tracing::info!(
                    generation,
                    expires_in_ms = lifetime.map(|l| l.as_millis() as u64),
                    refresh_in_ms = wait.as_millis() as u64,
                    "token refreshed"
                );
                shared.update_status(|s| {
                    s.expires_at = token.expires_at;
                    s.last_refresh = Some(SystemTime::now());
                    s.consecutive_failures = 0;
                    s.last_error = None;
                });
                meter.refreshed(token.expires_at);
                let _ = shared.events.send(TokenEvent::Refreshed {
                    generation,
                    expires_at: token.expires_at,
                });
                current = token;
                shared.current.send_replace(Arc::new(next));
            }
            Ok(None) => {
                // A cache (the identity endpoint's own, or a credential of the user's) handed
                // back the token in use: ask again later rather than re-AUTH with it.
                failures += 1;
                wait = policy.retry_delay(failures, lifetime, time_left(&current));
                tracing::debug!(retry_in_ms = wait.as_millis() as u64, "token unchanged");
                let _ = shared.events.send(TokenEvent::Unchanged);
            }
            Err(error) => {
                failures += 1;
                wait = policy.retry_delay(failures, lifetime, time_left(&current));
                meter.failed(&error);
                let message = error.to_string();
                tracing::warn!(
                    consecutive_failures = failures,
                    retry_in_ms = wait.as_millis() as u64,
                    error = %message,
                    "token refresh failed"
                );
                shared.update_status(|s| {
                    s.consecutive_failures = failures;
                    s.last_error = Some(message.clone());
                });
                let _ = shared.events.send(TokenEvent::Failed {
                    error: message,
                    consecutive_failures: failures,
                });
            }
        }
    }
}
