//! The AUTH command and the retry rule of a re-AUTH.

use std::future::Future;
use std::time::Duration;

use redis::Cmd;
use secrecy::ExposeSecret;

use crate::token::Credentials;

/// Tries of a re-AUTH on a live connection before the connection is replaced by one
/// authenticated with the current token.
pub const REAUTH_ATTEMPTS: u32 = 3;
/// Wait before re-AUTH try `n + 1`: `n x` this.
pub const REAUTH_RETRY_STEP: Duration = Duration::from_millis(50);

/// `AUTH [<user>] <password>`.
pub(crate) fn auth_cmd(credentials: &Credentials) -> Cmd {
    let mut cmd = redis::cmd("AUTH");
    if let Some(user) = &credentials.username {
        cmd.arg(user);
    }
    cmd.arg(credentials.password.expose_secret());
    cmd
}

/// How one try of a re-AUTH went.
pub(crate) enum Attempt {
    /// Accepted (by every node).
    Accepted,
    /// Refused or unanswered: worth another try.
    Failed,
    /// The connection is gone: no further try.
    Dropped,
}

/// Runs `attempt(1)`, `attempt(2)`, ... up to [`REAUTH_ATTEMPTS`] tries, [`REAUTH_RETRY_STEP`]
/// x try apart, until one is accepted; returns whether one was.
pub(crate) async fn retry_auth<F, Fut>(mut attempt: F) -> bool
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Attempt>,
{
    for n in 1..=REAUTH_ATTEMPTS {
        match attempt(n).await {
            Attempt::Accepted => return true,
            Attempt::Dropped => return false,
            Attempt::Failed if n < REAUTH_ATTEMPTS => {
                tokio::time::sleep(REAUTH_RETRY_STEP * n).await
            }
            Attempt::Failed => {}
        }
    }
    false
}
