//! Clustered caches: Azure Managed Redis (OSS cluster policy) and clustered Azure Cache for Redis.
//!
//! [`AzureRedisCluster`] is a `Clone` handle over redis-rs's async cluster client
//! ([`redis::cluster_async::ClusterConnection`]) that keeps every node connection authenticated
//! with the current Microsoft Entra ID token:
//!
//! - **New node connections** (at start, after `MOVED`, a failover, a restart or resharding)
//!   take the token current at that moment, through redis-rs's `StreamingCredentialsProvider`
//!   hook fed from the [`TokenProvider`]'s watch channel.
//! - **Live node connections** are re-authenticated on every new token by one supervisor task
//!   per handle: `AUTH <oid> <token>` routed to all nodes, each failed node retried by address,
//!   and the whole cluster connection rebuilt with the current token if a node keeps refusing.
//!   (redis-rs's own per-connection re-AUTH stops for good after one failed AUTH, so it is not
//!   relied on.)
//! - **Announced addresses** are mapped back to the public host name by an [`AddressMapping`]
//!   (Azure Managed Redis announces internal addresses); an address announced later than the
//!   map was built is noticed at its first connection attempt, and the handle rebuilds its
//!   connection with the address mapped.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use azure_redis_connect::cluster::AzureRedisCluster;
//! use azure_redis_connect::{Auth, Endpoint};
//! use redis::AsyncCommands;
//!
//! let endpoint = Endpoint::new("shop.westeurope.redis.azure.net");
//! let mut cache = AzureRedisCluster::builder(endpoint, Auth::SystemIdentity)
//!     .connect()
//!     .await?;
//! let _: () = cache.set("greeting", "hello").await?;
//! let greeting: String = cache.get("greeting").await?;
//! # Ok(()) }
//! ```

mod credentials;
mod mapping;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use futures_util::FutureExt as _;
use redis::aio::ConnectionLike;
use redis::cluster::{ClusterClientBuilder, NodeAddress};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo, SingleNodeRoutingInfo};
use redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionAddr, ConnectionInfo, ErrorKind,
    IntoConnectionInfo, Pipeline, ProtocolVersion, PushInfo, RedisConnectionInfo, RedisError,
    RedisFuture, RedisResult, ServerErrorKind, TlsCertificates, Value,
};
use secrecy::ExposeSecret;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use crate::Auth;
use crate::config::{AzureRedisConfig, ConfigError, Endpoint, Service};
use crate::conn::{ConnectError, Options, Subscriptions, keepalive_ticks, option_setters, tick};
use crate::token::{Credentials, RefreshPolicy, TokenProvider, TokenStatus};

pub use mapping::AddressMapping;

use credentials::NodeCredentials;
use mapping::{Mapper, NodeResolver, display_addr, is_unmapped};

/// Counters and state of a cluster handle, for health checks.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterStatus {
    /// The token provider's state.
    pub token: TokenStatus,
    /// Successful re-AUTHs of node connections.
    pub reauths: u64,
    /// Failed re-AUTH attempts of node connections.
    pub reauth_failures: u64,
    /// Times the cluster connection was rebuilt (a node kept refusing the token, or a node
    /// announced an address that had to be mapped first).
    pub rebuilds: u64,
    /// Announced node addresses the mapping sends elsewhere.
    pub mapped_nodes: usize,
}

impl ClusterStatus {
    /// Whether the token in use has not expired.
    pub fn is_healthy(&self) -> bool {
        !self.token.is_expired()
    }
}

/// Sets up an [`AzureRedisCluster`] with what the configuration cannot say; the options of
/// [`conn::Builder`](crate::conn::Builder), plus the [`AddressMapping`].
#[must_use]
pub struct ClusterBuilder {
    endpoint: Endpoint,
    auth: Auth,
    options: Options,
    mapping: Option<AddressMapping>,
    retries: Option<u32>,
    failover_wait: Duration,
    push_sender: Option<mpsc::UnboundedSender<PushInfo>>,
}

/// How long a request is held by default while no reachable node serves its slot.
pub const DEFAULT_FAILOVER_WAIT: Duration = Duration::from_secs(15);

impl fmt::Debug for ClusterBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterBuilder")
            .field("endpoint", &self.endpoint)
            .field("auth", &self.auth)
            .field("mapping", &self.mapping)
            .finish_non_exhaustive()
    }
}

option_setters!(ClusterBuilder);

impl ClusterBuilder {
    /// A builder for the cluster reached at `endpoint` (any node, or Azure's public endpoint)
    /// with defaults: TLS verified against the system roots, RESP3, 10 s connect and AUTH
    /// timeouts, no response timeout, [`RefreshPolicy::default`], and
    /// [`AddressMapping::public_host`] for Azure hosts ([`AddressMapping::none`] for others).
    pub fn new(endpoint: Endpoint, auth: Auth) -> ClusterBuilder {
        ClusterBuilder {
            endpoint,
            auth,
            options: Options::default(),
            mapping: None,
            retries: None,
            failover_wait: DEFAULT_FAILOVER_WAIT,
            push_sender: None,
        }
    }

    /// How announced node addresses map to the addresses connected to (default:
    /// [`AddressMapping::public_host`] for Azure hosts, [`AddressMapping::none`] for others).
    pub fn address_mapping(mut self, mapping: AddressMapping) -> ClusterBuilder {
        self.mapping = Some(mapping);
        self
    }

    /// How often redis-rs retries a command after a redirection or a connection error
    /// (redis-rs's default otherwise: 16). The waits between retries start at 50 ms and grow
    /// to at most 1 s, so that a command whose node stays unreachable fails within seconds.
    pub fn retries(mut self, retries: u32) -> ClusterBuilder {
        self.retries = Some(retries);
        self
    }

    /// How long a request is held and sent again while no reachable node serves its slot
    /// (default [`DEFAULT_FAILOVER_WAIT`], 15 s, about what an unplanned failover of an Azure
    /// cache takes; `Duration::ZERO` returns the error at once).
    ///
    /// When a primary dies, its slots are unserved until a replica takes over: the other nodes
    /// answer `MOVED` to the dead node, redis-rs cannot reach it, and ends its retries on that
    /// redirect. Such a request ran nowhere (a node answers `MOVED` instead of running it), so
    /// the handle sends it again, after waits from 50 ms growing to 1 s, until a node serves it
    /// or the time is up; then the `MOVED` is returned. A multi-key `DEL` or `UNLINK`, which
    /// redis-rs splits over nodes, is never sent again.
    pub fn failover_wait(mut self, wait: Duration) -> ClusterBuilder {
        self.failover_wait = wait;
        self
    }

    /// Receives the RESP3 pushes of every node connection: the messages of
    /// [`subscribe`](AzureRedisCluster::subscribe), [`psubscribe`](AzureRedisCluster::psubscribe)
    /// and [`ssubscribe`](AzureRedisCluster::ssubscribe).
    pub fn push_sender(mut self, sender: mpsc::UnboundedSender<PushInfo>) -> ClusterBuilder {
        self.push_sender = Some(sender);
        self
    }

    /// Gets the first token, reads the cluster's node addresses from the endpoint, then
    /// connects to the nodes and authenticates. A node address that does not resolve is an
    /// error naming it.
    pub async fn connect(mut self) -> Result<AzureRedisCluster, ConnectError> {
        let redis_error =
            |endpoint: String| move |source: RedisError| ConnectError::Redis { endpoint, source };
        if self.endpoint.database != 0 {
            return Err(redis_error(self.endpoint.to_string())(RedisError::from((
                ErrorKind::InvalidClientConfig,
                "Redis Cluster has only database 0",
            ))));
        }
        let provider = self
            .options
            .start_provider(&self.endpoint, &self.auth)
            .await?;
        let mapping = self
            .mapping
            .unwrap_or_else(|| match self.endpoint.service() {
                Service::Other => AddressMapping::none(),
                _ => AddressMapping::public_host(),
            });
        let public_host = self
            .endpoint
            .tls_server_name
            .clone()
            .unwrap_or_else(|| self.endpoint.host.clone());
        let template = Template {
            mapper: Arc::new(Mapper::new(public_host, mapping)),
            endpoint: self.endpoint,
            root_ca_pem: self.options.root_ca_pem,
            connect_timeout: self.options.connect_timeout,
            response_timeout: self.options.response_timeout,
            resp3: self.options.resp3,
            retries: self.retries,
            push_sender: self.push_sender,
        };
        let seed = template.endpoint.to_string();
        let announced = template
            .discover(&provider.current())
            .await
            .map_err(redis_error(seed.clone()))?;
        template.check_resolvable(&announced).await?;
        let conn = template
            .open(&announced, &provider)
            .await
            .map_err(redis_error(seed))?;
        let inner = Arc::new(Inner {
            template,
            provider,
            conn: RwLock::new((0, conn)),
            subscriptions: Mutex::new(Subscriptions::default()),
            epoch: AtomicU64::new(0),
            rebuilt: Notify::new(),
            auth_timeout: self.options.auth_timeout,
            failover_wait: self.failover_wait,
            keepalive: self.options.keepalive,
            reauths: AtomicU64::new(0),
            reauth_failures: AtomicU64::new(0),
            rebuilds: AtomicU64::new(0),
        });
        let task = tokio::spawn(supervise(Arc::clone(&inner)));
        Ok(AzureRedisCluster {
            inner,
            _task: Arc::new(TaskGuard(task)),
        })
    }
}

/// What a cluster connection is built from.
struct Template {
    endpoint: Endpoint,
    mapper: Arc<Mapper>,
    root_ca_pem: Option<Vec<u8>>,
    connect_timeout: Duration,
    response_timeout: Option<Duration>,
    resp3: bool,
    retries: Option<u32>,
    push_sender: Option<mpsc::UnboundedSender<PushInfo>>,
}

impl Template {
    fn protocol(&self) -> ProtocolVersion {
        if self.resp3 {
            ProtocolVersion::RESP3
        } else {
            ProtocolVersion::RESP2
        }
    }

    /// The public endpoint, as redis-rs connects to it (the TLS server name is its host).
    fn seed(&self) -> RedisResult<ConnectionInfo> {
        let host = self.mapper.public_host.clone();
        let addr = if self.endpoint.tls {
            ConnectionAddr::TcpTls {
                host,
                port: self.endpoint.port,
                insecure: false,
                tls_params: None,
            }
        } else {
            ConnectionAddr::Tcp(host, self.endpoint.port)
        };
        Ok(addr
            .into_connection_info()?
            .set_redis_settings(RedisConnectionInfo::default().set_protocol(self.protocol())))
    }

    /// Asks the public endpoint for the node addresses the cluster announces (`CLUSTER SLOTS`,
    /// allowed to every Azure data access policy) over one connection of its own.
    async fn discover(&self, credentials: &Credentials) -> RedisResult<Vec<(String, u16)>> {
        let mut settings = RedisConnectionInfo::default()
            .set_password(credentials.password.expose_secret())
            .set_protocol(self.protocol());
        if let Some(user) = &credentials.username {
            settings = settings.set_username(user);
        }
        let info = self.seed()?.set_redis_settings(settings);
        let client = match &self.root_ca_pem {
            Some(pem) if self.endpoint.tls => Client::build_with_tls(
                info,
                TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.clone()),
                },
            )?,
            _ => Client::open(info)?,
        };
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.connect_timeout));
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let slots: Value = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async(&mut conn)
            .await?;
        let announced =
            mapping::announced_nodes(&slots, (&self.mapper.public_host, self.endpoint.port));
        if announced.is_empty() {
            return Err(RedisError::from((
                ErrorKind::UnexpectedReturnType,
                "CLUSTER SLOTS names no nodes",
            )));
        }
        tracing::debug!(nodes = announced.len(), "cluster nodes discovered");
        Ok(announced)
    }

    /// Fails with the first announced address that, mapped, does not resolve: before any
    /// connection to a node is attempted.
    async fn check_resolvable(&self, announced: &[(String, u16)]) -> Result<(), ConnectError> {
        for (host, port) in announced {
            let (to_host, to_port) = self
                .mapper
                .mapping
                .map(&self.mapper.public_host, host, *port)
                .unwrap_or_else(|| (host.clone(), *port));
            if let Err(error) = mapping::resolve(&to_host, to_port).await {
                let hint = if self.mapper.mapping.is_none() {
                    "; Azure Managed Redis announces internal node addresses: map them to the public host with `AddressMapping::public_host()`"
                } else {
                    ""
                };
                return Err(ConnectError::Redis {
                    endpoint: display_addr(host, *port),
                    source: RedisError::from((
                        ErrorKind::Io,
                        "the cluster announces a node address that cannot be reached",
                        format!("{error}{hint}"),
                    )),
                });
            }
        }
        Ok(())
    }

    /// Builds a cluster client with every announced address mapped and connects it.
    async fn open(
        &self,
        announced: &[(String, u16)],
        provider: &TokenProvider,
    ) -> RedisResult<ClusterConnection> {
        let map: std::collections::HashMap<NodeAddress, NodeAddress> =
            self.mapper.extend(announced.iter().cloned());
        let mut builder = ClusterClientBuilder::new(vec![self.seed()?])
            // Retries 50 ms apart at first, then at most 1 s: a request that cannot reach its
            // node fails within seconds (redis-rs's own waits grow to minutes), and one
            // redirected to a node the map does not have yet is soon sent again on the rebuilt
            // connection.
            .min_retry_wait(50)
            .max_retry_wait(1000)
            .retry_wait_formula(50, 2)
            .connection_timeout(self.connect_timeout)
            .use_protocol(self.protocol())
            .node_address_map(map)
            .async_dns_resolver(NodeResolver(Arc::clone(&self.mapper)))
            .set_credentials_provider(NodeCredentials {
                provider: provider.clone(),
                grace: self.connect_timeout,
            });
        if let Some(timeout) = self.response_timeout {
            builder = builder.response_timeout(timeout);
        }
        if let Some(retries) = self.retries {
            builder = builder.retries(retries);
        }
        if let Some(sender) = &self.push_sender {
            builder = builder.push_sender(sender.clone());
        }
        if self.endpoint.tls
            && let Some(pem) = &self.root_ca_pem
        {
            builder = builder.certs(TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.clone()),
            });
        }
        builder.build()?.get_async_connection().await
    }
}

struct Inner {
    template: Template,
    provider: TokenProvider,
    /// The cluster connection and its epoch (the number of rebuilds before it).
    conn: RwLock<(u64, ClusterConnection)>,
    /// Restored on every rebuilt connection.
    subscriptions: Mutex<Subscriptions>,
    epoch: AtomicU64,
    /// Woken when the connection is replaced.
    rebuilt: Notify,
    auth_timeout: Duration,
    failover_wait: Duration,
    keepalive: Option<Duration>,
    reauths: AtomicU64,
    reauth_failures: AtomicU64,
    rebuilds: AtomicU64,
}

struct TaskGuard(JoinHandle<()>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A `Clone` handle to a Redis Cluster whose node connections stay authenticated; use it with
/// [`redis::AsyncCommands`], pipelines of keys in one slot, and scripts, as any
/// `ConnectionLike`. Commands are routed by key slot and follow `MOVED` and `ASK`.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use azure_redis_connect::AzureRedisConfig;
/// use azure_redis_connect::cluster::AzureRedisCluster;
/// use redis::AsyncCommands;
///
/// #[derive(AzureRedisConfig)]
/// #[azure_redis(auth = "system_identity")]
/// struct Cache { host: String }
///
/// let mut cache = AzureRedisCluster::connect(&Cache::from_env()?).await?;
/// let _: () = cache.set("{user:42}:name", "Ada").await?;
/// println!("{:?}", cache.status());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct AzureRedisCluster {
    inner: Arc<Inner>,
    _task: Arc<TaskGuard>,
}

impl fmt::Debug for AzureRedisCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureRedisCluster")
            .field("endpoint", &self.inner.template.endpoint.to_string())
            .field("status", &self.status())
            .finish()
    }
}

impl AzureRedisCluster {
    /// A builder, for what the configuration cannot say.
    pub fn builder(endpoint: Endpoint, auth: Auth) -> ClusterBuilder {
        ClusterBuilder::new(endpoint, auth)
    }

    /// A builder from a derived configuration.
    pub fn builder_from(config: &impl AzureRedisConfig) -> Result<ClusterBuilder, ConfigError> {
        let resolved = config.connection_config()?;
        Ok(ClusterBuilder::new(resolved.endpoint, resolved.auth))
    }

    /// Connects with a derived configuration and the builder's defaults.
    pub async fn connect(
        config: &impl AzureRedisConfig,
    ) -> Result<AzureRedisCluster, ConnectError> {
        Self::builder_from(config)?.connect().await
    }

    /// The token provider (for its events and status).
    pub fn token_provider(&self) -> &TokenProvider {
        &self.inner.provider
    }

    /// A snapshot of the token and re-authentication state.
    pub fn status(&self) -> ClusterStatus {
        ClusterStatus {
            token: self.inner.provider.status(),
            reauths: self.inner.reauths.load(Ordering::Relaxed),
            reauth_failures: self.inner.reauth_failures.load(Ordering::Relaxed),
            rebuilds: self.inner.rebuilds.load(Ordering::Relaxed),
            mapped_nodes: self.inner.template.mapper.mapped_nodes(),
        }
    }

    /// Sends `cmd` to the node(s) `routing` names, as
    /// [`ClusterConnection::route_command`](redis::cluster_async::ClusterConnection::route_command).
    pub async fn route_command(&mut self, cmd: Cmd, routing: RoutingInfo) -> RedisResult<Value> {
        let (_, mut conn) = self.inner.current();
        conn.route_command(cmd, routing).await
    }

    /// Subscribes to `channel`; its messages arrive at the builder's
    /// [`push_sender`](ClusterBuilder::push_sender) (RESP3). redis-rs restores the subscription
    /// when a node connection is replaced, and the handle when it rebuilds the cluster
    /// connection; messages published while no connection is subscribed are lost, as with any
    /// Redis pub/sub client.
    pub async fn subscribe(&self, channel: impl Into<String>) -> RedisResult<()> {
        let channel = channel.into();
        let (_, mut conn) = self.inner.current();
        conn.subscribe(&channel).await?;
        self.inner.subscriptions().channels.insert(channel);
        Ok(())
    }

    /// Unsubscribes from a channel.
    pub async fn unsubscribe(&self, channel: impl Into<String>) -> RedisResult<()> {
        let channel = channel.into();
        self.inner.subscriptions().channels.remove(&channel);
        let (_, mut conn) = self.inner.current();
        conn.unsubscribe(&channel).await
    }

    /// Subscribes to a pattern (`PSUBSCRIBE`); see [`subscribe`](Self::subscribe).
    pub async fn psubscribe(&self, pattern: impl Into<String>) -> RedisResult<()> {
        let pattern = pattern.into();
        let (_, mut conn) = self.inner.current();
        conn.psubscribe(&pattern).await?;
        self.inner.subscriptions().patterns.insert(pattern);
        Ok(())
    }

    /// Unsubscribes from a pattern.
    pub async fn punsubscribe(&self, pattern: impl Into<String>) -> RedisResult<()> {
        let pattern = pattern.into();
        self.inner.subscriptions().patterns.remove(&pattern);
        let (_, mut conn) = self.inner.current();
        conn.punsubscribe(&pattern).await
    }

    /// Subscribes to a sharded channel (`SSUBSCRIBE`, on the node of the channel's slot); see
    /// [`subscribe`](Self::subscribe).
    pub async fn ssubscribe(&self, channel: impl Into<String>) -> RedisResult<()> {
        let channel = channel.into();
        let (_, mut conn) = self.inner.current();
        conn.ssubscribe(&channel).await?;
        self.inner.subscriptions().shard_channels.insert(channel);
        Ok(())
    }

    /// Unsubscribes from a sharded channel.
    pub async fn sunsubscribe(&self, channel: impl Into<String>) -> RedisResult<()> {
        let channel = channel.into();
        self.inner.subscriptions().shard_channels.remove(&channel);
        let (_, mut conn) = self.inner.current();
        conn.sunsubscribe(&channel).await
    }

    /// After a request failed with `error` on the connection of `epoch`, sends it again with
    /// `send` if it ran on no node: once on the rebuilt connection when its node was not mapped
    /// yet ([`Self::unreached`]), and, while redis-rs ends on a `MOVED` to a node it cannot
    /// reach (a failover under way), after growing waits until `failover_wait` is up. Kept off
    /// the path of requests that succeed.
    async fn resend<T, F, Fut>(
        &self,
        mut epoch: u64,
        mut error: RedisError,
        mut send: F,
    ) -> RedisResult<T>
    where
        F: FnMut(ClusterConnection) -> Fut,
        Fut: std::future::Future<Output = RedisResult<T>>,
    {
        let mut started = None;
        let mut wait = Duration::from_millis(50);
        let mut rebuilt = false;
        loop {
            if !rebuilt && self.unreached(&error, epoch) {
                rebuilt = true;
                self.inner.rebuilt_since(epoch, error).await?;
            } else {
                let started = *started.get_or_insert_with(tokio::time::Instant::now);
                // `MOVED`, not `ASK`: the node serves none of the slot, so nothing of the request
                // (all of a pipeline's commands are in one slot) ran there. During a migration,
                // part of a pipeline may have run before an `ASK`.
                if error.kind() != ErrorKind::Server(ServerErrorKind::Moved)
                    || started.elapsed() + wait > self.inner.failover_wait
                {
                    return Err(error);
                }
                tracing::debug!(error = %error, retry_in_ms = wait.as_millis() as u64, "no reachable node serves the slot yet");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(1));
            }
            let (current, conn) = self.inner.current();
            epoch = current;
            error = match send(conn).await {
                Err(error) => error,
                result => return result,
            };
        }
    }

    /// Whether a request that failed with `error` on the connection of `epoch` was sent to no
    /// node, and a rebuilt connection may reach its node: the node's address was not mapped
    /// yet, or the connection was replaced meanwhile (by one that maps it) and redis-rs's last
    /// attempt ended in a redirect or without a connection to the node.
    fn unreached(&self, error: &RedisError, epoch: u64) -> bool {
        if is_unmapped(error) {
            return true;
        }
        let replaced = self.inner.epoch.load(Ordering::Acquire) != epoch;
        replaced
            && (error.redirect_node().is_some()
                || error.kind() == ErrorKind::ClusterConnectionNotFound)
    }
}

impl Inner {
    fn subscriptions(&self) -> std::sync::MutexGuard<'_, Subscriptions> {
        self.subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The current cluster connection and its epoch. Requests take it afresh each time (a
    /// clone of two `Arc`s), so that no clone of the handle keeps a replaced one alive.
    fn current(&self) -> (u64, ClusterConnection) {
        self.conn
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Puts `conn` in place of the current connection; returns the one it replaces.
    fn replace(&self, conn: ClusterConnection) -> ClusterConnection {
        let old = {
            let mut current = self.conn.write().unwrap_or_else(PoisonError::into_inner);
            let epoch = current.0 + 1;
            let (_, old) = std::mem::replace(&mut *current, (epoch, conn));
            self.epoch.store(epoch, Ordering::Release);
            old
        };
        self.rebuilds.fetch_add(1, Ordering::Relaxed);
        self.rebuilt.notify_waiters();
        old
    }

    /// Waits until the connection of `epoch` has been replaced, for at most the time a rebuild
    /// takes (discovery, then the node connections); `error` otherwise.
    async fn rebuilt_since(&self, epoch: u64, error: RedisError) -> RedisResult<()> {
        let rebuilt = async {
            loop {
                let notified = self.rebuilt.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if self.epoch.load(Ordering::Acquire) != epoch {
                    return;
                }
                notified.await;
            }
        };
        let limit = self.template.connect_timeout * 2 + Duration::from_millis(500);
        tokio::time::timeout(limit, rebuilt)
            .await
            .map_err(|_| error)
    }

    /// Keeps idle node connections open. redis-rs repairs a node connection that a `PING`
    /// finds dropped.
    async fn ping_all(&self) {
        let (_, mut conn) = self.current();
        let all_nodes = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllNodes, None));
        let ping = conn.route_command(redis::cmd("PING"), all_nodes);
        match tokio::time::timeout(self.auth_timeout, ping).await {
            Ok(Ok(_)) => tracing::trace!("keepalive PING"),
            Ok(Err(error)) => tracing::debug!(error = %error, "keepalive PING failed"),
            Err(_) => tracing::debug!("keepalive PING unanswered yet"),
        }
    }

    /// Asks a node for `CLUSTER SLOTS` and has every announced address that needs mapping
    /// mapped by a rebuild, before a request is redirected there: primaries and replicas added
    /// since the connection was built.
    async fn watch_topology(&self) {
        let (_, mut conn) = self.current();
        let random = RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random);
        let slots = conn.route_command(redis::cmd("CLUSTER").arg("SLOTS").clone(), random);
        let Ok(Ok(slots)) = tokio::time::timeout(self.auth_timeout, slots).await else {
            return;
        };
        let seed = (
            self.template.mapper.public_host.as_str(),
            self.template.endpoint.port,
        );
        for (host, port) in mapping::announced_nodes(&slots, seed) {
            if self.template.mapper.needs_mapping(&host, port) {
                tracing::info!(node = %display_addr(&host, port), "new cluster node announced");
                self.template.mapper.note_missing(&host, port);
            }
        }
    }

    /// Re-AUTHs every node connection with `credentials`, retrying the round while a node
    /// refuses or does not answer. Returns whether every node accepted.
    ///
    /// Retries go to all nodes again (AUTH is idempotent): redis-rs answers a refused AUTH
    /// routed to a single node by replacing that node's connection, whereas a multi-node route
    /// hands each node's reply back as it is.
    async fn reauth_all(&self, credentials: &Credentials) -> bool {
        let (_, mut conn) = self.current();
        let all_nodes = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllNodes, None));
        for attempt in 1..=3u32 {
            let sent = tokio::time::timeout(
                self.auth_timeout,
                conn.route_command(auth_cmd(credentials), all_nodes.clone()),
            )
            .await;
            let mut failed = false;
            match sent {
                Ok(Ok(Value::Map(replies))) => {
                    for (node, reply) in replies {
                        if let Value::ServerError(error) = reply {
                            let node = match node {
                                Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
                                other => format!("{other:?}"),
                            };
                            self.reauth_failures.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(%node, attempt, error = %RedisError::from(error), "re-AUTH refused");
                            failed = true;
                        } else {
                            self.reauths.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                Ok(Ok(_)) => {
                    self.reauths.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Err(error)) => {
                    self.reauth_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(attempt, error = %error, "re-AUTH failed");
                    failed = true;
                }
                Err(_) => {
                    self.reauth_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(attempt, "re-AUTH timed out");
                    failed = true;
                }
            }
            if !failed {
                tracing::debug!(
                    generation = credentials.generation,
                    "nodes re-authenticated"
                );
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50) * attempt).await;
        }
        false
    }

    /// Rebuilds the cluster connection with the current token and every announced address
    /// mapped.
    async fn rebuild(&self) -> RedisResult<()> {
        let credentials = self.provider.current();
        let announced = match self.template.discover(&credentials).await {
            Ok(announced) => announced,
            Err(error) => {
                tracing::warn!(error = %error, "cluster discovery failed; rebuilding with the addresses known");
                Vec::new()
            }
        };
        let mut conn = self.template.open(&announced, &self.provider).await?;
        let (channels, patterns, shard_channels) = {
            let subs = self.subscriptions();
            (
                subs.channels.clone(),
                subs.patterns.clone(),
                subs.shard_channels.clone(),
            )
        };
        let subscribed = !(channels.is_empty() && patterns.is_empty() && shard_channels.is_empty());
        for channel in channels {
            conn.subscribe(channel).await?;
        }
        for pattern in patterns {
            conn.psubscribe(pattern).await?;
        }
        for channel in shard_channels {
            conn.ssubscribe(channel).await?;
        }
        let mut old = self.replace(conn);
        if subscribed {
            // Messages the server sent on the old connection before the new one's subscriptions
            // took effect may not have been read yet. A PING to every node is answered after
            // them, so once it is, they have reached the push sender and the old connection
            // can close.
            let all_nodes = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllNodes, None));
            let drained = old.route_command(redis::cmd("PING"), all_nodes);
            if tokio::time::timeout(self.auth_timeout, drained)
                .await
                .is_err()
            {
                tracing::debug!("the replaced connection did not answer PING in time");
            }
        }
        drop(old);
        tracing::info!(
            mapped_nodes = self.template.mapper.mapped_nodes(),
            "cluster connection rebuilt"
        );
        Ok(())
    }
}

fn auth_cmd(credentials: &Credentials) -> Cmd {
    let mut cmd = redis::cmd("AUTH");
    if let Some(user) = &credentials.username {
        cmd.arg(user);
    }
    cmd.arg(credentials.password.expose_secret());
    cmd
}

/// Re-AUTHs every node on each new token, and rebuilds the cluster connection when a node
/// keeps refusing or an unmapped address shows up.
async fn supervise(inner: Arc<Inner>) {
    let mut tokens = inner.provider.subscribe();
    let mut rebuild_wanted = false;
    let mut failures = 0u32;
    let mut keepalive = keepalive_ticks(inner.keepalive);
    loop {
        if rebuild_wanted {
            match inner.rebuild().await {
                Ok(()) => {
                    rebuild_wanted = false;
                    failures = 0;
                }
                Err(error) => {
                    failures += 1;
                    let wait =
                        RefreshPolicy::default().backoff(failures, Some(Duration::from_secs(8)));
                    tracing::warn!(error = %error, retry_in_ms = wait.as_millis() as u64, "cluster rebuild failed");
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        _ = tokens.changed() => {}
                    }
                    continue;
                }
            }
        }
        tokio::select! {
            changed = tokens.changed() => {
                if changed.is_err() {
                    return;
                }
                let credentials = Arc::clone(&tokens.borrow_and_update());
                if !inner.reauth_all(&credentials).await {
                    tracing::warn!("a node keeps refusing the new token; rebuilding the cluster connection");
                    rebuild_wanted = true;
                }
            }
            () = inner.template.mapper.remap.notified() => {
                // Let a burst of unmapped addresses (one per node) gather first. A wake-up for
                // addresses that the last rebuild mapped already wants nothing.
                tokio::time::sleep(Duration::from_millis(100)).await;
                rebuild_wanted = inner.template.mapper.has_missing();
            }
            () = tick(&mut keepalive) => {
                inner.ping_all().await;
                inner.watch_topology().await;
            }
        }
    }
}

/// Whether `cmd` may be sent again after it failed on an unmapped node. A command that goes to
/// one node was executed nowhere. redis-rs splits some commands over the nodes of their keys'
/// slots, so part of one may have been executed: of those, all but a multi-key `DEL` or
/// `UNLINK` give the same result when sent again (`MGET`, `EXISTS`, `TOUCH`, `MSET` of the
/// same values, and the commands sent to every node), whereas those would count fewer keys.
fn resendable(cmd: &Cmd) -> bool {
    let mut args = cmd.args_iter();
    let name = match args.next() {
        Some(redis::Arg::Simple(name)) => name,
        _ => return true,
    };
    let deletes = name.eq_ignore_ascii_case(b"DEL") || name.eq_ignore_ascii_case(b"UNLINK");
    !(deletes && args.count() > 1)
}

/// Requests redirected to a node announced after the connection was built fail with an
/// "unmapped" error before anything is sent to that node; they are sent once more on the
/// rebuilt connection. Requests moved to a node that cannot be reached are held while a
/// failover completes ([`ClusterBuilder::failover_wait`]). Pipelines go to one node, as
/// redis-rs routes them.
impl ConnectionLike for AzureRedisCluster {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        async move {
            let (epoch, mut conn) = self.inner.current();
            match conn.req_packed_command(cmd).await {
                Err(error) if resendable(cmd) => {
                    drop(conn);
                    self.resend(epoch, error, |mut conn| async move {
                        conn.req_packed_command(cmd).await
                    })
                    .await
                }
                result => result,
            }
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
            let (epoch, mut conn) = self.inner.current();
            match conn.req_packed_commands(pipeline, offset, count).await {
                Err(error) => {
                    drop(conn);
                    self.resend(epoch, error, |mut conn| async move {
                        conn.req_packed_commands(pipeline, offset, count).await
                    })
                    .await
                }
                result => result,
            }
        }
        .boxed()
    }

    fn get_db(&self) -> i64 {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_key_deletes_are_not_sent_twice() {
        assert!(resendable(redis::cmd("GET").arg("k")));
        assert!(resendable(redis::cmd("DEL").arg("k")));
        assert!(resendable(redis::cmd("MGET").arg("a").arg("b")));
        assert!(resendable(
            redis::cmd("MSET").arg("a").arg(1).arg("b").arg(2)
        ));
        assert!(!resendable(redis::cmd("DEL").arg("a").arg("b")));
        assert!(!resendable(redis::cmd("unlink").arg("a").arg("b")));
    }

    #[test]
    fn public_types_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<AzureRedisCluster>();
        check::<ClusterBuilder>();
        check::<AddressMapping>();
    }

    #[tokio::test]
    async fn plaintext_to_azure_and_databases_other_than_0_are_refused() {
        let mut amr = Endpoint::new("shop.westeurope.redis.azure.net");
        amr.tls = false;
        let err = AzureRedisCluster::builder(amr, Auth::SystemIdentity)
            .connect()
            .await
            .unwrap_err();
        assert!(
            matches!(err, ConnectError::PlaintextRefused { .. }),
            "{err}"
        );
        let mut db1 = Endpoint::new("localhost");
        db1.database = 1;
        let err = AzureRedisCluster::builder(db1, Auth::SystemIdentity)
            .connect()
            .await
            .unwrap_err();
        assert!(err.to_string().contains("only database 0"), "{err}");
    }
}
