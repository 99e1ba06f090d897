//! Dedicated connections: an authenticated connection of its own for one task, for what the
//! shared multiplexed connection cannot carry.
//!
//! A blocking command (`BLPOP`, `BRPOP`, `BLMOVE`, `XREAD BLOCK`, `WAIT`) holds up every
//! command behind it on its connection, and a `WATCH` / `MULTI` / `EXEC` transaction needs a
//! connection no other task writes to. [`AzureRedis::dedicated`](crate::AzureRedis::dedicated)
//! opens such a connection with the handle's endpoint, TLS settings and current token, and
//! keeps it authenticated while it lives:
//!
//! - On every new token a task of the connection's own sends `AUTH <oid> <token>`. Redis
//!   answers it after the command in progress, so a blocking command delays the re-AUTH by
//!   at most its own timeout: keep blocking timeouts well under the refresh lead (25 % of the
//!   token's lifetime by default, 15 minutes of a one-hour token) and the connection never
//!   reaches expiry. A blocking command that waits forever (timeout 0) holds the re-AUTH back
//!   until it returns, and Azure closes the connection when its token expires.
//! - The re-AUTH never lands inside a transaction: a `MULTI` sent as a command of its own
//!   opens one, and a re-AUTH due while it is open waits for its `EXEC` or `DISCARD` (Redis
//!   would queue the `AUTH` into the transaction otherwise). `WATCH` before `MULTI` is not
//!   affected: `AUTH` does not touch watched keys. A `redis::pipe().atomic()` pipeline is
//!   written whole, so nothing can land inside it.
//! - `RESET` is not for a dedicated connection: it signs the connection out (back to the
//!   `default` user, which Azure refuses) and resets its database and protocol.
//! - A dedicated connection does not reconnect: a `WATCH` would silently stop holding on a
//!   new one. When a command fails with a connection error, drop it and open another (a pool
//!   does that for you: [`pool`](crate::pool)).
//!
//! Each command has the handle's response timeout unless
//! [`set_response_timeout`](DedicatedConnection::set_response_timeout) says otherwise: set it
//! above your blocking commands' timeouts (or to `None`) on a connection that blocks.
//!
//! ```no_run
//! # async fn run(redis: azure_redis_connect::AzureRedis) -> redis::RedisResult<()> {
//! use std::time::Duration;
//! use redis::AsyncCommands;
//!
//! let mut jobs = redis.dedicated().await?;
//! jobs.set_response_timeout(Some(Duration::from_secs(15)));
//! loop {
//!     // Blocks up to 10 s on this connection only; `redis` serves other tasks meanwhile.
//!     let job: Option<(String, String)> = jobs.blpop("jobs", 10.0).await?;
//!     if let Some((_, job)) = job {
//!         let () = redis.clone().incr("jobs:done", 1).await?;
//!         # let _ = job;
//!     }
//! }
//! # }
//! ```

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, SystemTime};

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{Cmd, Pipeline, RedisError, RedisFuture, RedisResult, Value};

use crate::handle::{self, Attempt, TokenWatch};
use crate::task::{TaskOwner, spawn_owned};
use crate::token::{Credentials, TokenProvider};

/// An authenticated connection of its own, re-AUTHed on every new token while it lives; see
/// the [module docs](self). Use it with [`redis::AsyncCommands`], pipelines and scripts as any
/// `ConnectionLike`. Not `Clone`: it is meant for one task at a time.
pub struct DedicatedConnection {
    conn: MultiplexedConnection,
    state: Arc<State>,
    response_timeout: Option<Duration>,
    db: i64,
    opened: tokio::time::Instant,
    _reauth: TaskOwner,
}

/// What the connection and its re-AUTH task share.
struct State {
    /// Held while a re-AUTH is written and answered, and while a `MULTI` is: so that no AUTH
    /// is written after a `MULTI` and before its `EXEC`.
    transaction: tokio::sync::Mutex<Transaction>,
    /// The credentials the connection is authenticated with.
    authenticated: Mutex<Arc<Credentials>>,
    /// A re-AUTH was refused after its retries, or found the connection closed.
    failed: AtomicBool,
    reauths: AtomicU64,
    auth_timeout: Duration,
}

#[derive(Default)]
struct Transaction {
    /// A `MULTI` was sent and its `EXEC` / `DISCARD` was not.
    open: bool,
    /// The credentials of a re-AUTH that came while the transaction was open.
    pending: Option<Arc<Credentials>>,
}

/// What a command does to the connection's transaction state.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Effect {
    None,
    Opens,
    Closes,
}

fn effect_of(cmd: &Cmd) -> Effect {
    match cmd.args_iter().next() {
        Some(redis::Arg::Simple(name)) if name.eq_ignore_ascii_case(b"MULTI") => Effect::Opens,
        Some(redis::Arg::Simple(name))
            if name.eq_ignore_ascii_case(b"EXEC")
                || name.eq_ignore_ascii_case(b"DISCARD")
                || name.eq_ignore_ascii_case(b"RESET") =>
        {
            Effect::Closes
        }
        _ => Effect::None,
    }
}

/// The effect of the last transaction command of `pipeline` as written (an atomic pipeline's own `MULTI` / `EXEC` pair is written whole and leaves
/// the state as it was).
fn effect_of_pipeline(pipeline: &Pipeline) -> Effect {
    pipeline
        .cmd_iter()
        .map(effect_of)
        .filter(|e| *e != Effect::None)
        .last()
        .unwrap_or(Effect::None)
}

impl DedicatedConnection {
    /// Wraps `conn`, authenticated with `credentials`, and starts its re-AUTH task.
    pub(crate) fn start(
        conn: MultiplexedConnection,
        credentials: Arc<Credentials>,
        provider: &TokenProvider,
        response_timeout: Option<Duration>,
        auth_timeout: Duration,
        db: i64,
    ) -> DedicatedConnection {
        let state = Arc::new(State {
            transaction: tokio::sync::Mutex::new(Transaction::default()),
            authenticated: Mutex::new(credentials),
            failed: AtomicBool::new(false),
            reauths: AtomicU64::new(0),
            auth_timeout,
        });
        let task = reauth_on_refresh(
            Arc::downgrade(&state),
            conn.clone(),
            TokenWatch::new(provider),
            provider.clone(),
        );
        DedicatedConnection {
            conn,
            state,
            response_timeout,
            db,
            opened: tokio::time::Instant::now(),
            _reauth: spawn_owned(task),
        }
    }

    /// The timeout of each command's reply; `None` waits forever. Set it above the timeout of
    /// the blocking commands this connection sends.
    pub fn set_response_timeout(&mut self, timeout: Option<Duration>) {
        self.response_timeout = timeout.filter(|t| !t.is_zero());
    }

    /// The timeout of each command's reply.
    pub fn response_timeout(&self) -> Option<Duration> {
        self.response_timeout
    }

    /// When the token this connection is authenticated with expires (`None` for an access key).
    pub fn authenticated_until(&self) -> Option<SystemTime> {
        self.state.authenticated().expires_at
    }

    /// Whether the token this connection is authenticated with has expired: Azure closes it.
    pub fn is_expired(&self) -> bool {
        handle::expired(&self.state.authenticated())
    }

    /// Whether the connection can no longer be kept authenticated: a re-AUTH was refused after
    /// its retries, or found the connection closed. Drop it and open another.
    pub fn is_broken(&self) -> bool {
        self.state.failed.load(Ordering::Relaxed)
    }

    /// How long ago the connection was opened.
    pub fn age(&self) -> Duration {
        self.opened.elapsed()
    }

    /// Successful re-AUTHs so far.
    pub fn reauths(&self) -> u64 {
        self.state.reauths.load(Ordering::Relaxed)
    }

    /// Whether a `MULTI` was sent and its `EXEC` / `DISCARD` was not.
    pub fn in_transaction(&self) -> bool {
        self.state
            .transaction
            .try_lock()
            .map(|t| t.open)
            .unwrap_or(false)
    }

    /// Sends `request` (whose effect on the transaction is `effect`) under the transaction
    /// rule of the module docs.
    async fn send<T>(
        &mut self,
        effect: Effect,
        request: impl AsyncFnOnce(&mut MultiplexedConnection) -> RedisResult<T>,
    ) -> RedisResult<T> {
        let timeout = self.response_timeout;
        match effect {
            Effect::None => timed(timeout, request(&mut self.conn)).await,
            Effect::Opens => {
                let (conn, state) = (&mut self.conn, &self.state);
                // The wait for a re-AUTH in progress counts in the command's time.
                timed(timeout, async move {
                    let mut transaction = state.transaction.lock().await;
                    let result = request(conn).await;
                    if result.is_ok() {
                        transaction.open = true;
                    }
                    result
                })
                .await
            }
            Effect::Closes => {
                let result = timed(timeout, request(&mut self.conn)).await;
                // The re-AUTH task holds the lock for long only while no transaction is open
                // (it sends its AUTH then), so there is nothing to close after a wait this
                // long.
                let lock = self.state.transaction.lock();
                let Ok(mut transaction) = timed(timeout, async { Ok(lock.await) }).await else {
                    return result;
                };
                transaction.open = false;
                if let Some(credentials) = transaction.pending.take() {
                    self.state.reauth(&mut self.conn, &credentials).await;
                }
                result
            }
        }
    }
}

impl std::fmt::Debug for DedicatedConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DedicatedConnection")
            .field("db", &self.db)
            .field("response_timeout", &self.response_timeout)
            .field("authenticated_until", &self.authenticated_until())
            .field("broken", &self.is_broken())
            .finish_non_exhaustive()
    }
}

impl ConnectionLike for DedicatedConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(self.send(effect_of(cmd), async |conn| {
            conn.send_packed_command(cmd).await
        }))
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(self.send(effect_of_pipeline(pipeline), async move |conn| {
            conn.send_packed_commands(pipeline, offset, count).await
        }))
    }

    fn get_db(&self) -> i64 {
        self.db
    }
}

/// A cluster connection of its own for one task, from
/// [`AzureRedisCluster::dedicated`](crate::cluster::AzureRedisCluster::dedicated): redis-rs's
/// cluster client with its own connection to each node, each re-AUTHed with every new token
/// (through [`RedisCredentials`](crate::token::RedisCredentials), which never yields an
/// expired token). It does not re-route requests to an address that must be mapped first
/// and is not rebuilt when unresponsive, as the handle is: drop it after a connection error
/// and open another.
pub struct DedicatedClusterConnection {
    conn: redis::cluster_async::ClusterConnection,
    response_timeout: Option<Duration>,
    /// Keeps the refresh running while the connection lives.
    _provider: TokenProvider,
}

impl DedicatedClusterConnection {
    pub(crate) fn new(
        conn: redis::cluster_async::ClusterConnection,
        provider: &TokenProvider,
        response_timeout: Option<Duration>,
    ) -> Self {
        DedicatedClusterConnection {
            conn,
            response_timeout,
            _provider: provider.clone(),
        }
    }

    /// The timeout of each request's reply, retries included; `None` waits forever. Set it
    /// above the timeout of the blocking commands this connection sends.
    pub fn set_response_timeout(&mut self, timeout: Option<Duration>) {
        self.response_timeout = timeout.filter(|t| !t.is_zero());
    }
}

impl std::fmt::Debug for DedicatedClusterConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DedicatedClusterConnection")
            .field("response_timeout", &self.response_timeout)
            .finish_non_exhaustive()
    }
}

impl ConnectionLike for DedicatedClusterConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        let timeout = self.response_timeout;
        Box::pin(timed(timeout, self.conn.req_packed_command(cmd)))
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let timeout = self.response_timeout;
        Box::pin(timed(
            timeout,
            self.conn.req_packed_commands(pipeline, offset, count),
        ))
    }

    fn get_db(&self) -> i64 {
        0
    }
}

/// `request`, failing with a timeout error if it has not finished within `timeout`.
async fn timed<T>(
    timeout: Option<Duration>,
    request: impl Future<Output = RedisResult<T>>,
) -> RedisResult<T> {
    match timeout {
        None => request.await,
        Some(limit) => tokio::time::timeout(limit, request)
            .await
            .unwrap_or_else(|_| Err(std::io::Error::from(std::io::ErrorKind::TimedOut).into())),
    }
}

impl State {
    fn authenticated(&self) -> Arc<Credentials> {
        Arc::clone(
            &self
                .authenticated
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// Sends AUTH with `credentials` (retried as the handles' re-AUTH is), and records how it
    /// went.
    async fn reauth(&self, conn: &mut MultiplexedConnection, credentials: &Arc<Credentials>) {
        let cmd = handle::auth_cmd(credentials);
        // The AUTH is answered after the command in progress, which may block for its whole
        // timeout: it is waited for until the token in use expires (Azure closes the
        // connection then), and at least the auth timeout, never sent twice for want of a
        // reply.
        let left = self
            .authenticated()
            .expires_at
            .and_then(|at| at.duration_since(SystemTime::now()).ok())
            .unwrap_or_default();
        let limit = left.max(self.auth_timeout);
        let accepted = handle::retry_auth(|attempt| {
            let mut conn = conn.clone();
            let cmd = &cmd;
            async move {
                let sent = tokio::time::timeout(limit, cmd.exec_async(&mut conn));
                match sent.await {
                    Ok(Ok(())) => Attempt::Accepted,
                    Ok(Err(error)) => {
                        tracing::warn!(attempt, error = %error, "re-AUTH of a dedicated connection failed");
                        dropped_or_failed(&error)
                    }
                    Err(_) => {
                        tracing::warn!(attempt, "re-AUTH of a dedicated connection got no reply before its token expired");
                        Attempt::Dropped
                    }
                }
            }
        })
        .await;
        if accepted {
            *self
                .authenticated
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Arc::clone(credentials);
            self.reauths.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                generation = credentials.generation,
                "dedicated connection re-authenticated"
            );
        } else {
            self.failed.store(true, Ordering::Relaxed);
            tracing::warn!(
                generation = credentials.generation,
                "a dedicated connection could not be re-authenticated; drop it and open another"
            );
        }
    }
}

fn dropped_or_failed(error: &RedisError) -> Attempt {
    if error.is_connection_dropped() || error.is_unrecoverable_error() {
        Attempt::Dropped
    } else {
        Attempt::Failed
    }
}

/// The re-AUTH task: AUTH with each new unexpired token, unless a transaction is open (then
/// the connection sends it after the transaction's end). Holds `provider` so that its refresh
/// runs while the connection lives, even if the handle it came from is gone.
async fn reauth_on_refresh(
    state: Weak<State>,
    mut conn: MultiplexedConnection,
    mut tokens: TokenWatch,
    _provider: TokenProvider,
) {
    while tokens.changed().await {
        let credentials = tokens.latest();
        if handle::expired(&credentials) {
            continue;
        }
        let Some(state) = state.upgrade() else {
            return;
        };
        if credentials.generation <= state.authenticated().generation {
            continue;
        }
        let mut transaction = state.transaction.lock().await;
        if transaction.open {
            transaction.pending = Some(credentials);
            continue;
        }
        state.reauth(&mut conn, &credentials).await;
        drop(transaction);
        if state.failed.load(Ordering::Relaxed) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_commands_are_recognised_in_any_case() {
        assert_eq!(effect_of(&redis::cmd("multi")), Effect::Opens);
        assert_eq!(effect_of(&redis::cmd("EXEC")), Effect::Closes);
        assert_eq!(effect_of(&redis::cmd("Discard")), Effect::Closes);
        assert_eq!(effect_of(&redis::cmd("RESET")), Effect::Closes);
        assert_eq!(effect_of(redis::cmd("GET").arg("MULTI")), Effect::None);
        let mut pipe = redis::pipe();
        pipe.cmd("WATCH").arg("k").cmd("MULTI");
        assert_eq!(effect_of_pipeline(&pipe), Effect::Opens);
        let mut atomic = redis::pipe();
        atomic.atomic().set("k", 1).incr("k", 1);
        assert_eq!(effect_of_pipeline(&atomic), Effect::None);
        let mut closed = redis::pipe();
        closed.cmd("MULTI").set("k", 1).cmd("EXEC");
        assert_eq!(effect_of_pipeline(&closed), Effect::Closes);
    }
}
