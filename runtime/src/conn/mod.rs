//! The authenticated connection: a `Clone` handle over one multiplexed Redis connection that
//! re-AUTHs on every new token and reconnects with the current token when the connection drops.
//!
//! One supervisor task per handle (stopped when the last clone is dropped) watches the token
//! provider and the connection: on a new token it sends `AUTH <oid> <token>` as a request of its
//! own (the multiplexer writes each request and each pipeline whole, so it never lands inside a
//! pipeline or a `redis::pipe().atomic()` transaction), retries a failed re-AUTH, and replaces
//! the connection when re-AUTH keeps failing or the server closes it. Commands in flight on a
//! dropped connection fail with an error; they are never sent again.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::FutureExt;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionAddr, IntoConnectionInfo, Pipeline,
    ProtocolVersion, PushInfo, PushKind, RedisConnectionInfo, RedisError, RedisFuture, RedisResult,
    TlsCertificates, Value,
};
use secrecy::ExposeSecret;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;

mod options;

pub(crate) use options::{Options, keepalive_ticks, option_setters, tick};

use crate::config::{Auth, AzureRedisConfig, ConfigError, Endpoint};
use crate::token::{Credentials, RefreshPolicy, TokenError, TokenProvider, TokenStatus};

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
}

impl ConnectionStatus {
    /// Whether the handle can serve commands: a connection is open and, for Entra ID, the token
    /// in use has not expired.
    pub fn is_healthy(&self) -> bool {
        self.connected && !self.token.is_expired()
    }
}

/// Sets up an [`AzureRedis`] with what the configuration cannot say.
#[must_use]
pub struct Builder {
    endpoint: Endpoint,
    auth: Auth,
    options: Options,
    push_sender: Option<mpsc::UnboundedSender<PushInfo>>,
    wait_for_connection: Duration,
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("endpoint", &self.endpoint)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

option_setters!(Builder);

impl Builder {
    /// A builder for `endpoint` and `auth` with defaults: TLS verified against the system roots,
    /// RESP3, 10 s connect and AUTH timeouts, no response timeout, a keepalive `PING` every 60 s,
    /// [`RefreshPolicy::default`].
    pub fn new(endpoint: Endpoint, auth: Auth) -> Builder {
        Builder {
            endpoint,
            auth,
            options: Options::default(),
            push_sender: None,
            wait_for_connection: Duration::from_secs(5),
        }
    }

    /// Receives RESP3 pushes (pub/sub messages) of the connection.
    pub fn push_sender(mut self, sender: mpsc::UnboundedSender<PushInfo>) -> Builder {
        self.push_sender = Some(sender);
        self
    }

    /// How long a command waits for a connection while one is being re-established (default 5 s).
    pub fn wait_for_connection(mut self, wait: Duration) -> Builder {
        self.wait_for_connection = wait;
        self
    }

    /// Gets the first token, then connects and authenticates.
    pub async fn connect(mut self) -> Result<AzureRedis, ConnectError> {
        let provider = self
            .options
            .start_provider(&self.endpoint, &self.auth)
            .await?;
        let options = self.options;
        let template = Template {
            endpoint: self.endpoint,
            root_ca_pem: options.root_ca_pem,
            connect_timeout: options.connect_timeout,
            response_timeout: options.response_timeout,
            resp3: options.resp3,
        };
        let first = provider.current();
        let (conn, pushes) = template
            .open(&first)
            .await
            .map_err(|source| ConnectError::Redis {
                endpoint: template.endpoint.to_string(),
                source,
            })?;
        let (live, _) = watch::channel(Some(Live {
            conn,
            id: 1,
            auth_generation: first.generation,
        }));
        let inner = Arc::new(Inner {
            template,
            provider,
            live,
            broken: Notify::new(),
            broken_id: AtomicU64::new(0),
            user_push: self.push_sender,
            auth_timeout: options.auth_timeout,
            wait_for_connection: self.wait_for_connection,
            keepalive: options.keepalive,
            reauths: AtomicU64::new(0),
            reauth_failures: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            subscriptions: Mutex::new(Subscriptions::default()),
        });
        let task = tokio::spawn(supervise(Arc::clone(&inner), pushes));
        Ok(AzureRedis {
            inner,
            _task: Arc::new(TaskGuard(task)),
        })
    }
}

/// What a new connection is built from.
struct Template {
    endpoint: Endpoint,
    root_ca_pem: Option<Vec<u8>>,
    connect_timeout: Duration,
    response_timeout: Option<Duration>,
    resp3: bool,
}

type Pushes = Option<mpsc::UnboundedReceiver<PushInfo>>;

impl Template {
    /// Opens a connection authenticated with `credentials` (redis-rs sends AUTH, then SELECT).
    async fn open(
        &self,
        credentials: &Credentials,
    ) -> RedisResult<(MultiplexedConnection, Pushes)> {
        let e = &self.endpoint;
        let addr = if e.tls {
            ConnectionAddr::TcpTls {
                host: e.tls_server_name.clone().unwrap_or_else(|| e.host.clone()),
                port: e.port,
                insecure: false,
                tls_params: None,
            }
        } else {
            ConnectionAddr::Tcp(e.host.clone(), e.port)
        };
        let mut settings = RedisConnectionInfo::default()
            .set_password(credentials.password.expose_secret())
            .set_db(e.database)
            .set_protocol(if self.resp3 {
                ProtocolVersion::RESP3
            } else {
                ProtocolVersion::RESP2
            });
        if let Some(user) = &credentials.username {
            settings = settings.set_username(user);
        }
        let info = addr.into_connection_info()?.set_redis_settings(settings);
        let client = match &self.root_ca_pem {
            Some(pem) if e.tls => Client::build_with_tls(
                info,
                TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.clone()),
                },
            )?,
            _ => Client::open(info)?,
        };
        let mut config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(self.response_timeout);
        let mut pushes = None;
        if self.resp3 {
            let (tx, rx) = mpsc::unbounded_channel();
            config = config.set_push_sender(tx);
            pushes = Some(rx);
        }
        let conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        Ok((conn, pushes))
    }
}

#[derive(Clone)]
struct Live {
    conn: MultiplexedConnection,
    id: u64,
    auth_generation: u64,
}

struct Inner {
    template: Template,
    provider: TokenProvider,
    live: watch::Sender<Option<Live>>,
    broken: Notify,
    broken_id: AtomicU64,
    user_push: Option<mpsc::UnboundedSender<PushInfo>>,
    auth_timeout: Duration,
    wait_for_connection: Duration,
    keepalive: Option<Duration>,
    reauths: AtomicU64,
    reauth_failures: AtomicU64,
    reconnects: AtomicU64,
    subscriptions: Mutex<Subscriptions>,
}

struct TaskGuard(JoinHandle<()>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
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
    _task: Arc<TaskGuard>,
}

impl fmt::Debug for AzureRedis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureRedis")
            .field("endpoint", &self.inner.template.endpoint.to_string())
            .field("status", &self.status())
            .finish()
    }
}

impl AzureRedis {
    /// A builder, for what the configuration cannot say.
    pub fn builder(endpoint: Endpoint, auth: Auth) -> Builder {
        Builder::new(endpoint, auth)
    }

    /// A builder from a derived configuration.
    pub fn builder_from(config: &impl AzureRedisConfig) -> Result<Builder, ConfigError> {
        let resolved = config.connection_config()?;
        Ok(Builder::new(resolved.endpoint, resolved.auth))
    }

    /// Connects with a derived configuration and the builder's defaults.
    pub async fn connect(config: &impl AzureRedisConfig) -> Result<AzureRedis, ConnectError> {
        Self::builder_from(config)?.connect().await
    }

    /// The token provider (for its events and status).
    pub fn token_provider(&self) -> &TokenProvider {
        &self.inner.provider
    }

    /// A snapshot of the connection and token state.
    pub fn status(&self) -> ConnectionStatus {
        ConnectionStatus {
            connected: self.inner.live.borrow().is_some(),
            token: self.inner.provider.status(),
            reauths: self.inner.reauths.load(Ordering::Relaxed),
            reauth_failures: self.inner.reauth_failures.load(Ordering::Relaxed),
            reconnects: self.inner.reconnects.load(Ordering::Relaxed),
        }
    }

    /// Subscribes to a channel; messages arrive on the builder's
    /// [`push_sender`](Builder::push_sender) (RESP3). The subscription is restored on every new
    /// connection; messages published while no connection is open are lost, as with any Redis
    /// pub/sub client.
    pub async fn subscribe(&self, channel: impl Into<String>) -> RedisResult<()> {
        let channel = channel.into();
        let mut live = self.live().await?;
        live.conn.subscribe(&channel).await?;
        self.subscriptions().channels.insert(channel);
        Ok(())
    }

    /// Unsubscribes from a channel.
    pub async fn unsubscribe(&self, channel: impl Into<String>) -> RedisResult<()> {
        let channel = channel.into();
        self.subscriptions().channels.remove(&channel);
        let mut live = self.live().await?;
        live.conn.unsubscribe(&channel).await
    }

    /// Subscribes to a pattern (`PSUBSCRIBE`); see [`subscribe`](Self::subscribe).
    pub async fn psubscribe(&self, pattern: impl Into<String>) -> RedisResult<()> {
        let pattern = pattern.into();
        let mut live = self.live().await?;
        live.conn.psubscribe(&pattern).await?;
        self.subscriptions().patterns.insert(pattern);
        Ok(())
    }

    /// Unsubscribes from a pattern.
    pub async fn punsubscribe(&self, pattern: impl Into<String>) -> RedisResult<()> {
        let pattern = pattern.into();
        self.subscriptions().patterns.remove(&pattern);
        let mut live = self.live().await?;
        live.conn.punsubscribe(&pattern).await
    }

    fn subscriptions(&self) -> std::sync::MutexGuard<'_, Subscriptions> {
        self.inner
            .subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    async fn live(&self) -> RedisResult<Live> {
        // The common case costs a clone of the connection handle, no timer.
        if let Some(live) = self.inner.live.borrow().as_ref() {
            return Ok(live.clone());
        }
        let mut rx = self.inner.live.subscribe();
        let ready = rx.wait_for(Option::is_some);
        match tokio::time::timeout(self.inner.wait_for_connection, ready).await {
            Ok(Ok(live)) => live.clone().ok_or_else(not_connected),
            _ => Err(not_connected()),
        }
    }

    fn check(&self, live: &Live, error: &RedisError) {
        if error.is_connection_dropped() || error.is_unrecoverable_error() {
            self.inner.report_broken(live.id);
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

impl Inner {
    fn report_broken(&self, id: u64) {
        self.broken_id.fetch_max(id, Ordering::SeqCst);
        self.broken.notify_one();
    }

    async fn reauth(&self, live: &mut Live, credentials: &Credentials) -> bool {
        for attempt in 1..=3u32 {
            let mut cmd = redis::cmd("AUTH");
            if let Some(user) = &credentials.username {
                cmd.arg(user);
            }
            cmd.arg(credentials.password.expose_secret());
            let sent =
                tokio::time::timeout(self.auth_timeout, cmd.exec_async(&mut live.conn)).await;
            match sent {
                Ok(Ok(())) => {
                    self.reauths.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(
                        connection = live.id,
                        generation = credentials.generation,
                        "re-authenticated"
                    );
                    return true;
                }
                Ok(Err(error)) => {
                    self.reauth_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(connection = live.id, attempt, error = %error, "re-AUTH failed");
                    if error.is_connection_dropped() || error.is_unrecoverable_error() {
                        return false;
                    }
                }
                Err(_) => {
                    self.reauth_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(connection = live.id, attempt, "re-AUTH timed out");
                }
            }
            tokio::time::sleep(Duration::from_millis(50) * attempt).await;
        }
        false
    }

    /// Keeps an idle connection open, and finds a dropped one. A `PING` that times out is no
    /// sign of a dropped connection: it waits behind any blocking command on the connection.
    async fn ping(&self, live: &mut Live) {
        let ping = redis::cmd("PING");
        match tokio::time::timeout(self.auth_timeout, ping.exec_async(&mut live.conn)).await {
            Ok(Ok(())) => tracing::trace!(connection = live.id, "keepalive PING"),
            Ok(Err(error)) if error.is_connection_dropped() || error.is_unrecoverable_error() => {
                tracing::info!(connection = live.id, error = %error, "keepalive PING found the connection dropped");
                self.live.send_replace(None);
            }
            Ok(Err(error)) => {
                tracing::warn!(connection = live.id, error = %error, "keepalive PING failed")
            }
            Err(_) => tracing::debug!(connection = live.id, "keepalive PING unanswered yet"),
        }
    }

    /// Opens a new connection with the current credentials, retrying with backoff until it
    /// succeeds.
    async fn reconnect(&self, id: u64) -> (Live, Pushes) {
        let mut tokens = self.provider.subscribe();
        let mut failures = 0u32;
        loop {
            let credentials = Arc::clone(&tokens.borrow_and_update());
            match self.open_resubscribed(&credentials).await {
                Ok((conn, pushes)) => {
                    self.reconnects.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(
                        connection = id,
                        generation = credentials.generation,
                        "reconnected"
                    );
                    let live = Live {
                        conn,
                        id,
                        auth_generation: credentials.generation,
                    };
                    return (live, pushes);
                }
                Err(error) => {
                    failures += 1;
                    let wait =
                        RefreshPolicy::default().backoff(failures, Some(Duration::from_secs(8)));
                    tracing::warn!(connection = id, error = %error, retry_in_ms = wait.as_millis() as u64, "reconnect failed");
                    // A new token (after an identity outage, say) is worth trying at once.
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        _ = tokens.changed() => {}
                    }
                }
            }
        }
    }

    /// Opens a connection and restores the handle's subscriptions on it.
    async fn open_resubscribed(
        &self,
        credentials: &Credentials,
    ) -> RedisResult<(MultiplexedConnection, Pushes)> {
        let (mut conn, pushes) = self.template.open(credentials).await?;
        let (channels, patterns) = {
            let subs = self
                .subscriptions
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            (subs.channels.clone(), subs.patterns.clone())
        };
        for channel in channels {
            conn.subscribe(channel).await?;
        }
        for pattern in patterns {
            conn.psubscribe(pattern).await?;
        }
        Ok((conn, pushes))
    }
}

/// The channels and patterns a handle is subscribed to, restored on every new connection.
#[derive(Default)]
pub(crate) struct Subscriptions {
    pub(crate) channels: BTreeSet<String>,
    pub(crate) patterns: BTreeSet<String>,
    /// Sharded channels (`SSUBSCRIBE`; cluster handles only).
    pub(crate) shard_channels: BTreeSet<String>,
}

/// Re-AUTHs on every new token, forwards pushes, keeps the connection from going idle, and
/// replaces a dropped connection.
async fn supervise(inner: Arc<Inner>, mut pushes: Pushes) {
    let mut tokens = inner.provider.subscribe();
    let mut keepalive = keepalive_ticks(inner.keepalive);
    let mut next_id = 2;
    loop {
        let Some(mut live) = inner.live.borrow().clone() else {
            let (live, new_pushes) = inner.reconnect(next_id).await;
            next_id += 1;
            pushes = new_pushes;
            inner.live.send_replace(Some(live));
            continue;
        };
        let disconnected = async {
            match pushes.as_mut() {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = tokens.changed() => {
                if changed.is_err() {
                    return;
                }
                let credentials = tokens.borrow_and_update().clone();
                if credentials.generation <= live.auth_generation {
                    continue;
                }
                if inner.reauth(&mut live, &credentials).await {
                    live.auth_generation = credentials.generation;
                    inner.live.send_modify(|l| if let Some(l) = l.as_mut() && l.id == live.id { l.auth_generation = credentials.generation });
                } else {
                    // The connection is replaced by one authenticated with the current token.
                    inner.live.send_replace(None);
                }
            }
            push = disconnected => match push {
                Some(push) if push.kind != PushKind::Disconnection => {
                    if let Some(user) = &inner.user_push {
                        let _ = user.send(push);
                    }
                }
                _ => {
                    tracing::info!(connection = live.id, "connection closed by the server");
                    inner.live.send_replace(None);
                }
            },
            () = inner.broken.notified() => {
                if inner.broken_id.load(Ordering::SeqCst) >= live.id {
                    tracing::info!(connection = live.id, "connection broken");
                    inner.live.send_replace(None);
                }
            }
            () = tick(&mut keepalive) => {
                inner.ping(&mut live).await;
            }
        }
    }
}

impl ConnectionLike for AzureRedis {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        async move {
            let mut live = self.live().await?;
            let result = live.conn.req_packed_command(cmd).await;
            if let Err(error) = &result {
                self.check(&live, error);
            }
            result
        }
        .boxed()
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        async move {
            let mut live = self.live().await?;
            let result = live.conn.req_packed_commands(pipeline, offset, count).await;
            if let Err(error) = &result {
                self.check(&live, error);
            }
            result
        }
        .boxed()
    }

    fn get_db(&self) -> i64 {
        self.inner.template.endpoint.database
    }
}
