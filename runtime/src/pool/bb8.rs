//! bb8's `ManageConnection` for dedicated connections.

use bb8::ManageConnection;
use redis::RedisError;

use super::{Core, PoolOptions};
use crate::AzureRedis;
use crate::dedicated::DedicatedConnection;

/// A [`bb8::ManageConnection`] of [`DedicatedConnection`]s opened through an [`AzureRedis`]
/// handle; see the [module docs](super) for what is checked before a connection is handed
/// out. bb8 validates connections on check-out by default (`test_on_check_out`); keep it on,
/// or an expired connection can be handed out.
///
/// ```no_run
/// # async fn run(redis: azure_redis_connect::AzureRedis) -> Result<(), Box<dyn std::error::Error>> {
/// use azure_redis_connect::pool::{Bb8Manager, PoolOptions};
///
/// let pool = bb8::Pool::builder()
///     .max_size(8)
///     .build(Bb8Manager::new(redis, PoolOptions::default()))
///     .await?;
/// let mut conn = pool.get().await?;
/// let pong: String = redis::cmd("PING").query_async(&mut *conn).await?;
/// # let _ = pong;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Bb8Manager(Core);

impl Bb8Manager {
    /// A manager opening connections through `redis`.
    pub fn new(redis: AzureRedis, options: PoolOptions) -> Self {
        Bb8Manager(Core { redis, options })
    }
}

impl ManageConnection for Bb8Manager {
    type Connection = DedicatedConnection;
    type Error = RedisError;

    async fn connect(&self) -> Result<DedicatedConnection, RedisError> {
        self.0.open().await
    }

    async fn is_valid(&self, conn: &mut DedicatedConnection) -> Result<(), RedisError> {
        self.0.check(conn).await
    }

    fn has_broken(&self, conn: &mut DedicatedConnection) -> bool {
        self.0.refusal(conn).is_some()
    }
}
