//! The credentials every new node connection authenticates with, handed to redis-rs's
//! `StreamingCredentialsProvider` hook from the token provider's watch channel.
//!
//! redis-rs takes the first item of one stream as the credentials of a new connection (so a
//! node connected after MOVED, a failover or a restart gets the current token, not the one the
//! handle was built with), then spawns a task per connection that re-AUTHs with every further
//! item and stops for good after one failed AUTH. The handle re-AUTHs every node itself on each
//! refresh (see the module root), so the per-connection stream yields the current credentials
//! once and then only a change that arrives within `grace` of the subscription: the window in
//! which a connection set up with the previous token may not yet be among the nodes the
//! handle's AUTH round reaches. After that the stream stays silent; it never ends (an ended
//! stream only makes redis-rs log a warning).
//!
//! While the current token has expired (an identity outage), the first item waits up to
//! `grace` for the next token and is otherwise an error, so that redis-rs fails that node
//! connection before sending an AUTH the server would refuse. (redis-rs 1.8,
//! `aio/multiplexed_connection.rs`: the connection takes the first item of a fresh stream, then
//! subscribes again for its re-AUTH task.)

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{Stream, StreamExt as _, stream};
use redis::{BasicAuth, ErrorKind, RedisError, RedisResult, StreamingCredentialsProvider};
use secrecy::ExposeSecret;
use tokio::sync::watch;

use crate::token::{Credentials, TokenProvider};

/// Streams of the provider's credentials for redis-rs.
#[derive(Clone)]
pub(crate) struct NodeCredentials {
    pub(crate) provider: TokenProvider,
    pub(crate) grace: Duration,
}

pub(crate) fn basic_auth(credentials: &Credentials) -> BasicAuth {
    BasicAuth::new(
        credentials
            .username
            .clone()
            .unwrap_or_else(|| "default".to_string()),
        credentials.password.expose_secret().to_string(),
    )
}

impl StreamingCredentialsProvider for NodeCredentials {
    fn subscribe(&self) -> Pin<Box<dyn Stream<Item = RedisResult<BasicAuth>> + Send + 'static>> {
        let mut rx = self.provider.subscribe();
        rx.borrow_and_update();
        let grace = self.grace;
        let head = stream::once(valid_within(rx.clone(), grace));
        let late_change = async move {
            match tokio::time::timeout(grace, changed(&mut rx)).await {
                Ok(Some(credentials)) => Some(Ok(basic_auth(&credentials))),
                _ => None,
            }
        };
        let late = stream::once(late_change).filter_map(|item| async move { item });
        Box::pin(head.chain(late).chain(stream::pending()))
    }
}

/// The current credentials, or, while they have expired, the next ones if they come within
/// `grace`; an error otherwise.
async fn valid_within(
    mut rx: watch::Receiver<Arc<Credentials>>,
    grace: Duration,
) -> RedisResult<BasicAuth> {
    let valid = rx.wait_for(|credentials| !crate::handle::expired(credentials));
    match tokio::time::timeout(grace, valid).await {
        Ok(Ok(credentials)) => Ok(basic_auth(&credentials)),
        _ => Err(RedisError::from((
            ErrorKind::AuthenticationFailed,
            "the token has expired; waiting for the next one before connecting",
        ))),
    }
}

async fn changed(rx: &mut watch::Receiver<Arc<Credentials>>) -> Option<Arc<Credentials>> {
    rx.changed().await.ok()?;
    Some(Arc::clone(&rx.borrow_and_update()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::{RefreshPolicy, StaticPassword};

    #[tokio::test]
    async fn yields_the_current_credentials_then_stays_open() {
        let provider = TokenProvider::start(
            StaticPassword::new(None, "key".into()),
            RefreshPolicy::default(),
            None,
        )
        .await
        .expect("a static password");
        let creds = NodeCredentials {
            provider,
            grace: Duration::from_millis(20),
        };
        let mut s = creds.subscribe();
        let first = s.next().await.expect("an item").expect("credentials");
        assert_eq!((first.username(), first.password()), ("default", "key"));
        assert!(!format!("{first:?}").contains("key\""));
        let more = tokio::time::timeout(Duration::from_millis(200), s.next()).await;
        assert!(more.is_err(), "no further item and no end");
    }
}
