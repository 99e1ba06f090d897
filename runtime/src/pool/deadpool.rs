//! deadpool's `Manager` for dedicated connections.

use deadpool::managed::{Manager, Metrics, RecycleError, RecycleResult};
use redis::RedisError;

use super::{Core, PoolOptions};
use crate::AzureRedis;
use crate::dedicated::DedicatedConnection;

/// A [`deadpool::managed::Manager`] of [`DedicatedConnection`]s opened through an
/// [`AzureRedis`] handle; see the [module docs](super) for what is checked before a
/// connection is handed out.
///
/// ```no_run
/// # async fn run(redis: azure_redis_connect::AzureRedis) -> Result<(), Box<dyn std::error::Error>> {
/// use azure_redis_connect::pool::{DeadpoolManager, PoolOptions};
///
/// type Pool = deadpool::managed::Pool<DeadpoolManager>;
/// let pool: Pool = Pool::builder(DeadpoolManager::new(redis, PoolOptions::default()))
///     .max_size(8)
///     .build()?;
/// let mut conn = pool.get().await.map_err(|e| e.to_string())?;
/// let pong: String = redis::cmd("PING").query_async(&mut *conn).await?;
/// # let _ = pong;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct DeadpoolManager(Core);

impl DeadpoolManager {
    /// A manager opening connections through `redis`.
    pub fn new(redis: AzureRedis, options: PoolOptions) -> Self {
        DeadpoolManager(Core { redis, options })
    }
}

impl Manager for DeadpoolManager {
    type Type = DedicatedConnection;
    type Error = RedisError;

    async fn create(&self) -> Result<DedicatedConnection, RedisError> {
        self.0.open().await
    }

    async fn recycle(
        &self,
        conn: &mut DedicatedConnection,
        _: &Metrics,
    ) -> RecycleResult<RedisError> {
        self.0.check(conn).await.map_err(RecycleError::Backend)
    }
}
