//! Connection pools of [`DedicatedConnection`]s: a manager for deadpool (feature `deadpool`)
//! and one for bb8 (feature `bb8`), for services that check a connection out per request or
//! per job rather than share the handle's multiplexed one.
//!
//! Each pooled connection is a [`DedicatedConnection`] opened through an
//! [`AzureRedis`] handle: authenticated with the current token, and re-AUTHed by a task of its
//! own on every refresh, whether it is checked out or idle in the pool. Idle connections are
//! re-authenticated rather than recycled before expiry: recycling would open every pooled
//! connection again at each refresh (a TLS handshake and a token validation each, in bursts
//! of the pool's size), and would not help a connection that is checked out across a refresh,
//! which must be re-authenticated in place anyway.
//!
//! Before a connection is handed out (deadpool's recycle, bb8's validation on check-out) the
//! manager refuses it, so that the pool opens another, when:
//!
//! - the token it is authenticated with has expired or expires within
//!   [`EXPIRY_MARGIN`] (a refresh was missed, say during an identity outage);
//! - its re-AUTH failed ([`DedicatedConnection::is_broken`]);
//! - it is older than the [`max_lifetime`](PoolOptions::max_lifetime), when one is set;
//! - it does not answer a `PING` within the handle's response timeout.
//!
//! ```no_run
//! # #[cfg(feature = "deadpool")]
//! # async fn run(redis: azure_redis_connect::AzureRedis) -> Result<(), Box<dyn std::error::Error>> {
//! use azure_redis_connect::pool::{DeadpoolManager, PoolOptions};
//! use redis::AsyncCommands;
//!
//! let manager = DeadpoolManager::new(redis, PoolOptions::default());
//! let pool = deadpool::managed::Pool::<DeadpoolManager>::builder(manager).max_size(8).build()?;
//! let mut conn = pool.get().await.map_err(|e| e.to_string())?;
//! let job: Option<(String, String)> = conn.blpop("jobs", 5.0).await?;
//! # let _ = job;
//! # Ok(()) }
//! ```

#[cfg(feature = "bb8")]
mod bb8;
#[cfg(feature = "deadpool")]
mod deadpool;

use std::time::{Duration, SystemTime};

use redis::{ErrorKind, RedisError, RedisResult};

use crate::AzureRedis;
use crate::dedicated::DedicatedConnection;

#[cfg(feature = "bb8")]
#[cfg_attr(docsrs, doc(cfg(feature = "bb8")))]
pub use self::bb8::Bb8Manager;
#[cfg(feature = "deadpool")]
#[cfg_attr(docsrs, doc(cfg(feature = "deadpool")))]
pub use self::deadpool::DeadpoolManager;

/// A connection whose token expires sooner than this is not handed out: a command sent on it
/// could meet Azure's close at expiry. (Its own re-AUTH moves the expiry on at each refresh,
/// 25 % of the token's lifetime before it, so only a connection that missed its re-AUTH is
/// ever this close.)
pub const EXPIRY_MARGIN: Duration = Duration::from_secs(1);

/// What both managers take.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct PoolOptions {
    /// Connections older than this are closed instead of handed out (default: none).
    pub max_lifetime: Option<Duration>,
    /// The response timeout of pooled connections; `None` (the default) keeps the handle's.
    /// Set it above the timeouts of the blocking commands sent on them.
    pub response_timeout: Option<Duration>,
}

impl PoolOptions {
    /// Sets [`max_lifetime`](Self::max_lifetime).
    pub fn max_lifetime(mut self, lifetime: Duration) -> Self {
        self.max_lifetime = Some(lifetime);
        self
    }

    /// Sets [`response_timeout`](Self::response_timeout).
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = Some(timeout);
        self
    }
}

/// The rules both managers follow: how a connection is opened and when it is refused.
#[derive(Clone, Debug)]
struct Core {
    redis: AzureRedis,
    options: PoolOptions,
}

impl Core {
    async fn open(&self) -> RedisResult<DedicatedConnection> {
        let mut conn = self.redis.dedicated().await?;
        if let Some(timeout) = self.options.response_timeout {
            conn.set_response_timeout(Some(timeout));
        }
        Ok(conn)
    }

    /// Why `conn` must not be handed out, if it must not, without a round trip.
    fn refusal(&self, conn: &DedicatedConnection) -> Option<&'static str> {
        if conn.is_broken() {
            return Some("its re-AUTH failed");
        }
        let expiring = conn
            .authenticated_until()
            .is_some_and(|at| at <= SystemTime::now() + EXPIRY_MARGIN);
        if expiring {
            return Some("its token expires within the expiry margin");
        }
        if self
            .options
            .max_lifetime
            .is_some_and(|max| conn.age() >= max)
        {
            return Some("it reached its maximum lifetime");
        }
        None
    }

    /// Refuses `conn` for a reason of [`refusal`](Self::refusal), or if it does not answer a
    /// `PING` (within its response timeout).
    async fn check(&self, conn: &mut DedicatedConnection) -> RedisResult<()> {
        if let Some(why) = self.refusal(conn) {
            return Err(refused(why));
        }
        redis::cmd("PING").exec_async(conn).await
    }
}

fn refused(why: &'static str) -> RedisError {
    RedisError::from((ErrorKind::Io, "pooled connection closed", why.to_string()))
}
