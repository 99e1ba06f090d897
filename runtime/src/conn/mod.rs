//! The authenticated connection: a `Clone` handle over one multiplexed Redis connection that
//! re-AUTHs on every new token and reconnects with the current token when the connection drops
//! or stops answering.
//!
//! One supervisor task per handle ([`supervisor`](self) module; it ends when the last clone is
//! dropped) watches the token provider and the connection:
//!
//! - On a new token it sends `AUTH <oid> <token>` as a request of its own (the multiplexer
//!   writes each request and each pipeline whole, so it never lands inside a pipeline or a
//!   `redis::pipe().atomic()` transaction), retries a failed re-AUTH, and replaces the
//!   connection when re-AUTH keeps failing.
//! - A connection the server closed, or on which a command or a keepalive `PING` got no reply
//!   within the response timeout (a peer that vanished), is replaced with one authenticated
//!   with the current token, and the subscriptions are restored on it. Commands in flight on
//!   the old one fail with an error; they are never sent again.
//! - While the token in use has expired (an identity outage), no connection is attempted with
//!   it: the handle waits for the next token and connects at once when it arrives.
//!
//! Why not redis-rs's `ConnectionManager` with its credentials hook: measured against the
//! emulator (`anchors/redis-rs-entra/`), it reconnects with an expired token, and its
//! per-connection re-AUTH stops for good after one refused AUTH.

mod supervisor;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{Cmd, Pipeline, PushInfo, RedisError, RedisFuture, RedisResult, Value};
use tokio::sync::{mpsc, watch};

use crate::config::{ConfigError, Endpoint};
use crate::dedicated::DedicatedConnection;
use crate::handle::{self, Single, Subscriptions};
use crate::health::HealthCache;
use crate::task::OwnerSlot;
use crate::telemetry::{self, RedisOperation};
use crate::token::{Credentials, TokenError, TokenProvider, TokenStatus};
use tracing::Instrument as _;

/// Sets up an [`AzureRedis`] with what the configuration cannot say; the shared setters are on
/// [`handle::Builder`].
pub type Builder = handle::Builder<Single>;

/// Why a connection could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The configuration is incomplete or malformed.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The first token could not be had.
    #[error("cannot get the first token: {0}")]
    Token(#[from] TokenError),
    /// Plaintext to an Azure host, which accepts Entra ID only over TLS.
    #[error(
        "refusing a plaintext connection to {host}: Azure Redis accepts Microsoft Entra ID only over TLS; leave TLS on"
    )]
    PlaintextRefused {
        /// The host.
        host: String,
    },
    /// Plaintext without `allow_plaintext()`.
    #[error(
        "the endpoint {endpoint} has TLS off; call `allow_plaintext()` on the builder to connect without TLS"
    )]
    PlaintextNotAllowed {
        /// The endpoint.
        endpoint: String,
    },
    /// Redis refused or could not be reached.
    #[error("cannot connect to {endpoint}: {source}")]
    Redis {
        /// The endpoint.
        endpoint: String,
        /// What redis said.
        source: RedisError,
    },
}

/// Counters and state of a handle, for health checks.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionStatus {
    /// Whether a connection is open now.
    pub connected: bool,
    /// The token provider's state.
    pub token: TokenStatus,
    /// Successful re-AUTHs on live connections.
    pub reauths: u64,
    /// Failed re-AUTH attempts.
    pub reauth_failures: u64,
    /// Connections opened after the first one.
    pub reconnects: u64,
    /// Connections replaced because they stopped answering (a command or a keepalive `PING`
    /// got no reply within the response timeout).
    pub unresponsive_replaced: u64,
}

impl ConnectionStatus {
    /// Whether the handle can serve commands: a connection is open and, for Entra ID, the token
    /// in use has not expired.
    pub fn is_healthy(&self) -> bool {
        self.connected && !self.token.is_expired()
    }
}

impl handle::Builder<Single> {
    /// Gets the first token, then connects and authenticates.
    pub async fn connect(mut self) -> Result<AzureRedis, ConnectError> {
        let provider = self
            .options
            .start_provider(&self.endpoint, &self.auth)
            .await?;
        let options = self.options;
        let connector = Connector {
            endpoint: self.endpoint,
            root_ca_pem: options.root_ca_pem,
            connect_timeout: options.connect_timeout,
            response_timeout: options.response_timeout,
            resp3: options.resp3,
        };
        let first = provider.current();
        let span = telemetry::redis_span(RedisOperation::Connect, &connector.endpoint);
        let opened = connector.open(&first).instrument(span.clone()).await;
        let (conn, pushes) = opened.map_err(|source| {
            telemetry::record_redis_error(&span, &source);
            ConnectError::Redis {
                endpoint: connector.endpoint.to_string(),
                source,
            }
        })?;
        let (live, _) = watch::channel(Some(InUse {
            conn,
            id: 1,
            auth_generation: first.generation,
        }));
        let (broken, broken_rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            connector,
            provider,
            live,
            broken,
            user_push: options.push_sender,
            auth_timeout: options.auth_timeout,
            wait_for_connection: self.kind.wait_for_connection,
            counters: Counters::default(),
            subscriptions: Subscriptions::default(),
            health: HealthCache::new(options.health_cache),
            supervisor: OwnerSlot::default(),
        });
        let owner = supervisor::start(&inner, pushes, broken_rx, options.keepalive);
        inner.supervisor.hold(owner);
        Ok(AzureRedis { inner })
    }
}

/// Opens connections: what a new connection is built from.
struct Connector {
    endpoint: Endpoint,
    root_ca_pem: Option<Vec<u8>>,
    connect_timeout: Duration,
    response_timeout: Option<Duration>,
    resp3: bool,
}

type Pushes = Option<mpsc::UnboundedReceiver<PushInfo>>;

impl Connector {
    /// Opens a connection authenticated with `credentials` (redis-rs sends AUTH, then SELECT),
    /// for the handle: with its response timeout and, for RESP3, a channel for its pushes.
    async fn open(
        &self,
        credentials: &Credentials,
    ) -> RedisResult<(MultiplexedConnection, Pushes)> {
        self.open_with(credentials, self.response_timeout, true)
            .await
    }

    /// Opens a connection as [`open`](Self::open) does, with `response_timeout`, and a push
    /// channel only if `pushes`.
    async fn open_with(
        &self,
        credentials: &Credentials,
        response_timeout: Option<Duration>,
        pushes: bool,
    ) -> RedisResult<(MultiplexedConnection, Pushes)> {
        let info = handle::endpoint_info(&self.endpoint, self.resp3, Some(credentials))?;
        let client = handle::client(info, self.root_ca_pem.as_deref())?;
        let (config, pushes) =
            handle::connection_config(self.connect_timeout, response_timeout, self.resp3 && pushes);
        let conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        Ok((conn, pushes))
    }
}

/// The connection in use, with what the supervisor knows of it.
#[derive(Clone)]
struct InUse {
    conn: MultiplexedConnection,
    /// Counts the handle's connections, from 1.
    id: u64,
    /// The generation of the credentials it is authenticated with.
    auth_generation: u64,
}

#[derive(Default)]
struct Counters {
    reauths: AtomicU64,
    reauth_failures: AtomicU64,
    reconnects: AtomicU64,
    unresponsive_replaced: AtomicU64,
}

struct Inner {
    connector: Connector,
    provider: TokenProvider,
    /// The connection in use; `None` while one is being established.
    live: watch::Sender<Option<InUse>>,
    /// Ids of connections a command found broken or unresponsive, for the supervisor.
    broken: mpsc::UnboundedSender<Broken>,
    user_push: Option<mpsc::UnboundedSender<PushInfo>>,
    auth_timeout: Duration,
    wait_for_connection: Duration,
    counters: Counters,
    /// Restored on every new connection.
    subscriptions: Subscriptions,
    health: HealthCache,
    /// The supervisor, which reaches this through a `Weak` and ends when it drops.
    supervisor: OwnerSlot,
}

/// A connection a command found unusable.
#[derive(Clone, Copy, Debug)]
struct Broken {
    id: u64,
    /// No reply within the response timeout (rather than a closed connection).
    unresponsive: bool,
}

/// A `Clone` handle to an authenticated Redis connection that stays authenticated; use it with
/// [`redis::AsyncCommands`], pipelines and scripts as any `ConnectionLike`.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use azure_redis_connect::{AzureRedisConfig, conn::AzureRedis};
/// use redis::AsyncCommands;
///
/// #[derive(AzureRedisConfig)]
/// #[azure_redis(auth = "system_identity")]
/// struct Cache { host: String }
///
/// let mut redis = AzureRedis::connect(&Cache::from_env()?).await?;
/// let _: () = redis.set("greeting", "hello").await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct AzureRedis {
    inner: Arc<Inner>,
}

handle::handle_surface!(AzureRedis, Single);

impl AzureRedis {
    /// A snapshot of the connection and token state.
    pub fn status(&self) -> ConnectionStatus {
        let c = &self.inner.counters;
        ConnectionStatus {
            connected: self.inner.live.borrow().is_some(),
            token: self.inner.provider.status(),
            reauths: c.reauths.load(Ordering::Relaxed),
            reauth_failures: c.reauth_failures.load(Ordering::Relaxed),
            reconnects: c.reconnects.load(Ordering::Relaxed),
            unresponsive_replaced: c.unresponsive_replaced.load(Ordering::Relaxed),
        }
    }

    /// Opens a connection of its own for one task, authenticated with the current token and
    /// re-AUTHed on every new one while it lives: for blocking commands and `WATCH`
    /// transactions, which would hold up or disturb the shared connection. See
    /// [`dedicated`](crate::dedicated) for what it does and does not do.
    ///
    /// While the current token has expired (an identity outage), waits up to the connect
    /// timeout for the next one.
    pub async fn dedicated(&self) -> RedisResult<DedicatedConnection> {
        let connector = &self.inner.connector;
        let credentials = handle::unexpired_within(
            self.inner.provider.subscribe(),
            connector.connect_timeout,
            Some(&connector.endpoint.to_string()),
        )
        .await?;
        // The dedicated connection times its commands itself (its timeout can be changed).
        let (conn, _) = connector.open_with(&credentials, None, false).await?;
        Ok(DedicatedConnection::start(
            conn,
            credentials,
            &self.inner.provider,
            connector.response_timeout,
            self.inner.auth_timeout,
            connector.endpoint.database,
        ))
    }

    async fn pubsub_connection(&self) -> RedisResult<MultiplexedConnection> {
        Ok(self.live().await?.conn)
    }

    /// The connection in use, waiting up to `wait_for_connection` while one is being
    /// established.
    async fn live(&self) -> RedisResult<InUse> {
        match self.in_use() {
            Some(live) => Ok(live),
            None => self.wait_for_connection().await,
        }
    }

    /// The connection in use now, if one is: a clone of the connection handle, no timer.
    fn in_use(&self) -> Option<InUse> {
        self.inner.live.borrow().clone()
    }

    async fn wait_for_connection(&self) -> RedisResult<InUse> {
        let mut rx = self.inner.live.subscribe();
        let ready = rx.wait_for(Option::is_some);
        match tokio::time::timeout(self.inner.wait_for_connection, ready).await {
            Ok(Ok(live)) => live.clone().ok_or_else(not_connected),
            _ => Err(not_connected()),
        }
    }

    /// Tells the supervisor when `error` shows the connection `id` unusable: closed, or
    /// without a reply within the response timeout.
    fn note_failure(&self, id: u64, error: &RedisError) {
        let unresponsive = error.is_timeout();
        if unresponsive || error.is_connection_dropped() || error.is_unrecoverable_error() {
            let _ = self.inner.broken.send(Broken { id, unresponsive });
        }
    }
}

fn not_connected() -> RedisError {
    std::io::Error::new(
        std::io::ErrorKind::NotConnected,
        "not connected to Redis; reconnecting",
    )
    .into()
}

/// The body of a request: `$send` on the connection in use (waiting for one while it is
/// re-established), reporting the connection if the request shows it unusable.
///
/// Written out in each `ConnectionLike` method rather than through a generic helper taking a
/// closure, and boxed in place: the request is then one flat future written straight into its
/// box, as redis-rs's own. Measured with `bench count` under callgrind, a closure-taking helper
/// cost 60 instructions a command and the stack copy of the future another 146.
macro_rules! on_connection {
    ($this:ident, |$conn:ident| $send:expr) => {
        handle::boxed_in_place(move || async move {
            let mut live = match $this.in_use() {
                Some(live) => live,
                None => Box::pin($this.wait_for_connection()).await?,
            };
            let $conn = &mut live.conn;
            let result = $send.await;
            if let Err(error) = &result {
                $this.note_failure(live.id, error);
            }
            result
        })
    };
}

impl ConnectionLike for AzureRedis {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        let this = &*self;
        on_connection!(this, |conn| conn.send_packed_command(cmd))
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let this = &*self;
        on_connection!(this, |conn| conn
            .send_packed_commands(pipeline, offset, count))
    }

    fn get_db(&self) -> i64 {
        self.inner.connector.endpoint.database
    }
}
