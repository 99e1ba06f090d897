//! A supervisor's view of the token provider: the rules for connecting with a token, stated
//! once for both handles. No connection is opened with a token known to have expired (the
//! supervisor waits for the next one and connects at once when it arrives), and a failed
//! attempt backs off by [`RECONNECT_BACKOFF`], cut short by a new token.

use std::sync::Arc;

use tokio::sync::watch;

use std::time::Duration;

use redis::{ErrorKind, RedisError, RedisResult};

use super::{RECONNECT_BACKOFF, expired};
use crate::token::{Credentials, TokenProvider};

/// The newest credentials of `rx`, or, while they have expired (an identity outage), the next
/// ones if they come within `wait`; an authentication error naming `target` (an endpoint)
/// otherwise, so that no connection is opened with a token the server would refuse.
pub(crate) async fn unexpired_within(
    mut rx: watch::Receiver<Arc<Credentials>>,
    wait: Duration,
    target: Option<&str>,
) -> RedisResult<Arc<Credentials>> {
    let valid = rx.wait_for(|credentials| !expired(credentials));
    if let Ok(Ok(credentials)) = tokio::time::timeout(wait, valid).await {
        return Ok(Arc::clone(&credentials));
    }
    const WHY: &str = "the token has expired and no new one came in time; not connecting with it";
    Err(match target {
        Some(target) => RedisError::from((
            ErrorKind::AuthenticationFailed,
            WHY,
            format!("connecting to {target}"),
        )),
        None => RedisError::from((ErrorKind::AuthenticationFailed, WHY)),
    })
}

/// The token channel of one supervisor. Every method returns `None` (or `false`) once the
/// provider is gone, which only happens when the handle is.
pub(crate) struct TokenWatch(watch::Receiver<Arc<Credentials>>);

impl TokenWatch {
    pub(crate) fn new(provider: &TokenProvider) -> Self {
        TokenWatch(provider.subscribe())
    }

    /// Waits for a new token; `false` once the provider is gone.
    pub(crate) async fn changed(&mut self) -> bool {
        self.0.changed().await.is_ok()
    }

    /// The newest credentials, marked seen.
    pub(crate) fn latest(&mut self) -> Arc<Credentials> {
        Arc::clone(&self.0.borrow_and_update())
    }

    /// The newest credentials that have not expired, waiting for the next token while the
    /// newest has expired (an identity outage: a connection with it would be refused). Logs
    /// once per wait; `what` names what is waiting, for that log.
    pub(crate) async fn unexpired(&mut self, what: &str) -> Option<Arc<Credentials>> {
        let mut waiting_logged = false;
        loop {
            let credentials = self.latest();
            if !expired(&credentials) {
                return Some(credentials);
            }
            if !waiting_logged {
                tracing::warn!(
                    generation = credentials.generation,
                    what,
                    "the token has expired; connecting when the next one arrives"
                );
                waiting_logged = true;
            }
            if !self.changed().await {
                return None;
            }
        }
    }

    /// After failed attempt number `failures` (from 1): waits [`RECONNECT_BACKOFF`], or less
    /// if a new token arrives (after an identity outage, say, it is worth trying at once).
    /// `false` once the provider is gone.
    pub(crate) async fn back_off(
        &mut self,
        failures: u32,
        what: &str,
        error: &redis::RedisError,
    ) -> bool {
        let wait = RECONNECT_BACKOFF.delay(failures);
        tracing::warn!(error = %error, what, retry_in_ms = wait.as_millis() as u64, "connecting failed");
        tokio::select! {
            () = tokio::time::sleep(wait) => true,
            changed = self.0.changed() => changed.is_ok(),
        }
    }
}
