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
//!   (redis-rs 1.8's own per-connection re-AUTH, `aio/multiplexed_connection.rs`, stops for
//!   good after one failed AUTH, so it is not relied on.)
//! - **Unresponsive connections**: redis-rs bounds each request, retries included, by the
//!   response timeout (5 s by default), but keeps using a node connection whose peer vanished.
//!   A request or keepalive `PING` without a reply in time has the handle rebuild the cluster
//!   connection, with fresh connections to every node.
//! - **An expired token** (an identity outage) is never sent: a rebuild waits for the next
//!   token, and a node connection redis-rs opens meanwhile fails before its AUTH.
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

mod connector;
mod mapping;
mod resend;
mod supervisor;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::RoutingInfo;
use redis::{Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, Value};
use tokio::sync::{Notify, mpsc};

use crate::config::Service;
use crate::conn::ConnectError;
use crate::dedicated::DedicatedClusterConnection;
use crate::handle::{self, Subscriptions, Topic};
use crate::health::HealthCache;
use crate::task::OwnerSlot;
use crate::telemetry::{self, HandleKind, RedisOperation};
use crate::token::{TokenProvider, TokenStatus};
use tracing::Instrument as _;

pub use mapping::AddressMapping;

use connector::Connector;
use mapping::Mapper;
use resend::resendable;

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
    /// Times the cluster connection was rebuilt (a node kept refusing the token, a node
    /// announced an address that had to be mapped first, or the connection stopped answering).
    pub rebuilds: u64,
    /// Rebuilds because a request or a keepalive `PING` got no reply within the response
    /// timeout.
    pub unresponsive_replaced: u64,
    /// Announced node addresses the mapping sends elsewhere.
    pub mapped_nodes: usize,
}

impl ClusterStatus {
    /// Whether the token in use has not expired.
    pub fn is_healthy(&self) -> bool {
        !self.token.is_expired()
    }
}

/// Sets up an [`AzureRedisCluster`] with what the configuration cannot say: the setters of
/// [`handle::Builder`], plus the [`AddressMapping`], retries and
/// failover wait.
pub type ClusterBuilder = handle::Builder<handle::Cluster>;

/// How long a request is held by default while no reachable node serves its slot.
pub const DEFAULT_FAILOVER_WAIT: Duration = Duration::from_secs(15);

/// The cluster's defaults: [`DEFAULT_FAILOVER_WAIT`], redis-rs's retries, and
/// [`AddressMapping::public_host`] for Azure hosts ([`AddressMapping::none`] for others).
impl Default for handle::Cluster {
    fn default() -> Self {
        handle::Cluster {
            mapping: None,
            retries: None,
            failover_wait: DEFAULT_FAILOVER_WAIT,
        }
    }
}

impl handle::Builder<handle::Cluster> {
    /// How announced node addresses map to the addresses connected to (default:
    /// [`AddressMapping::public_host`] for Azure hosts, [`AddressMapping::none`] for others).
    pub fn address_mapping(mut self, mapping: AddressMapping) -> Self {
        self.kind.mapping = Some(mapping);
        self
    }

    /// How often redis-rs retries a command after a redirection or a connection error
    /// (redis-rs's default otherwise: 16). The waits between retries start at 50 ms and grow
    /// to at most 1 s, so that a command whose node stays unreachable fails within seconds.
    pub fn retries(mut self, retries: u32) -> Self {
        self.kind.retries = Some(retries);
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
    pub fn failover_wait(mut self, wait: Duration) -> Self {
        self.kind.failover_wait = wait;
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
            .kind
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
        let options = self.options;
        let connector = Connector {
            mapper: Arc::new(Mapper::new(public_host, mapping)),
            endpoint: self.endpoint,
            root_ca_pem: options.root_ca_pem,
            connect_timeout: options.connect_timeout,
            response_timeout: options.response_timeout,
            resp3: options.resp3,
            retries: self.kind.retries,
            push_sender: options.push_sender,
        };
        let seed = connector.endpoint.to_string();
        let span = telemetry::redis_span(RedisOperation::Connect, &connector.endpoint);
        let opened = async {
            let announced = connector
                .discover(&provider.current())
                .await
                .map_err(redis_error(seed.clone()))?;
            connector.check_resolvable(&announced).await?;
            connector
                .open(&announced, &provider)
                .await
                .map_err(redis_error(seed))
        }
        .instrument(span.clone())
        .await;
        if let Err(ConnectError::Redis { source, .. }) = &opened {
            telemetry::record_redis_error(&span, source);
        }
        let conn = opened?;
        let (unresponsive, unresponsive_rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            connector,
            provider,
            conn: RwLock::new((0, conn)),
            subscriptions: Subscriptions::default(),
            epoch: AtomicU64::new(0),
            rebuilt: Notify::new(),
            unresponsive,
            suspect: AtomicU64::new(0),
            auth_timeout: options.auth_timeout,
            failover_wait: self.kind.failover_wait,
            counters: Counters::default(),
            health: HealthCache::new(options.health_cache),
            supervisor: OwnerSlot::default(),
        });
        let owner = supervisor::start(&inner, unresponsive_rx, options.keepalive);
        inner.supervisor.hold(owner);
        Ok(AzureRedisCluster { inner })
    }
}

#[derive(Default)]
struct Counters {
    reauths: AtomicU64,
    reauth_failures: AtomicU64,
    rebuilds: AtomicU64,
    unresponsive_replaced: AtomicU64,
}

struct Inner {
    connector: Connector,
    provider: TokenProvider,
    /// The cluster connection and its epoch (the number of rebuilds before it).
    conn: RwLock<(u64, ClusterConnection)>,
    /// Restored on every rebuilt connection.
    subscriptions: Subscriptions,
    epoch: AtomicU64,
    /// Woken when the connection is replaced.
    rebuilt: Notify,
    /// Epochs of connections on which a request got no reply in time, for the supervisor.
    unresponsive: mpsc::UnboundedSender<u64>,
    /// `epoch + 1` of the connection last found unresponsive (0: none); requests wait for its
    /// rebuild instead of going to it.
    suspect: AtomicU64,
    auth_timeout: Duration,
    failover_wait: Duration,
    counters: Counters,
    health: HealthCache,
    /// The supervisor, which reaches this through a `Weak` and ends when it drops.
    supervisor: OwnerSlot,
}

impl Inner {
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
        self.counters.rebuilds.fetch_add(1, Ordering::Relaxed);
        telemetry::count_reconnect(HandleKind::Cluster, &self.connector.endpoint);
        self.rebuilt.notify_waiters();
        old
    }

    /// Sends a request with `send` on the usable connection; if it fails, reports the
    /// connection when it did not answer, and, when `resendable`, sends the request again where
    /// [`resend`](Self::resend) allows.
    async fn request<T, F, Fut>(&self, resendable: bool, mut send: F) -> RedisResult<T>
    where
        F: FnMut(ClusterConnection) -> Fut,
        Fut: std::future::Future<Output = RedisResult<T>>,
    {
        let (epoch, conn) = self.usable().await?;
        match send(conn).await {
            Err(error) => {
                self.note_failure(epoch, &error);
                if resendable {
                    self.resend(epoch, error, send).await
                } else {
                    Err(error)
                }
            }
            result => result,
        }
    }

    /// Tells the supervisor when a request on the connection of `epoch` got no reply within
    /// the response timeout.
    fn note_failure(&self, epoch: u64, error: &RedisError) {
        if error.is_timeout() {
            self.suspect.store(epoch + 1, Ordering::Release);
            let _ = self.unresponsive.send(epoch);
        }
    }

    /// The connection for a request: the current one, unless it was found unresponsive, in
    /// which case the request waits for its rebuild (as a single-node request waits for the
    /// new connection) rather than time out on it too.
    async fn usable(&self) -> RedisResult<(u64, ClusterConnection)> {
        let (epoch, conn) = self.current();
        if self.suspect.load(Ordering::Acquire) != epoch + 1 {
            return Ok((epoch, conn));
        }
        drop(conn);
        let error = RedisError::from((
            ErrorKind::Io,
            "the cluster connection stopped answering and is being rebuilt",
        ));
        self.rebuilt_since(epoch, error).await?;
        Ok(self.current())
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
}

handle::handle_surface!(AzureRedisCluster, handle::Cluster);

impl AzureRedisCluster {
    /// A snapshot of the token and re-authentication state.
    pub fn status(&self) -> ClusterStatus {
        let c = &self.inner.counters;
        ClusterStatus {
            token: self.inner.provider.status(),
            reauths: c.reauths.load(Ordering::Relaxed),
            reauth_failures: c.reauth_failures.load(Ordering::Relaxed),
            rebuilds: c.rebuilds.load(Ordering::Relaxed),
            unresponsive_replaced: c.unresponsive_replaced.load(Ordering::Relaxed),
            mapped_nodes: self.inner.connector.mapper.mapped_nodes(),
        }
    }

    /// Sends `cmd` to the node(s) `routing` names, as
    /// [`ClusterConnection::route_command`](redis::cluster_async::ClusterConnection::route_command).
    pub async fn route_command(&mut self, cmd: Cmd, routing: RoutingInfo) -> RedisResult<Value> {
        let (epoch, mut conn) = self.inner.usable().await?;
        let result = conn.route_command(cmd, routing).await;
        if let Err(error) = &result {
            self.inner.note_failure(epoch, error);
        }
        result
    }

    /// Subscribes to a sharded channel (`SSUBSCRIBE`, on the node of the channel's slot); see
    /// [`subscribe`](Self::subscribe).
    pub async fn ssubscribe(&self, channel: impl Into<String>) -> RedisResult<()> {
        self.pubsub(Topic::ShardChannel, channel.into(), true).await
    }

    /// Unsubscribes from a sharded channel.
    pub async fn sunsubscribe(&self, channel: impl Into<String>) -> RedisResult<()> {
        self.pubsub(Topic::ShardChannel, channel.into(), false)
            .await
    }

    /// Opens a cluster connection of its own for one task (its own connection to each node),
    /// authenticated with the current token; redis-rs re-AUTHs each of its node connections
    /// on every new token while it lives. For blocking commands, which would hold up the
    /// shared connection to their node; see [`dedicated`](crate::dedicated). (redis-rs's
    /// cluster client routes each command by its key, so a `MULTI` sent as a command of its
    /// own is not a transaction there: use atomic pipelines on one hash slot.)
    ///
    /// While the current token has expired (an identity outage), waits up to the connect
    /// timeout for the next one.
    pub async fn dedicated(&self) -> RedisResult<DedicatedClusterConnection> {
        let connector = &self.inner.connector;
        let credentials = handle::unexpired_within(
            self.inner.provider.subscribe(),
            connector.connect_timeout,
            Some(&connector.endpoint.to_string()),
        )
        .await?;
        let announced = connector.discover(&credentials).await?;
        let conn = connector
            .open_dedicated(&announced, &self.inner.provider)
            .await?;
        Ok(DedicatedClusterConnection::new(
            conn,
            &self.inner.provider,
            connector.response_timeout,
        ))
    }

    async fn pubsub_connection(&self) -> RedisResult<ClusterConnection> {
        Ok(self.inner.current().1)
    }
}

/// Requests redirected to a node announced after the connection was built fail with an
/// "unmapped" error before anything is sent to that node; they are sent once more on the
/// rebuilt connection. Requests moved to a node that cannot be reached are held while a
/// failover completes ([`ClusterBuilder::failover_wait`]). Pipelines go to one node, as
/// redis-rs routes them. A request without a reply within the response timeout fails with a
/// timeout error, and the cluster connection is rebuilt.
impl ConnectionLike for AzureRedisCluster {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        // redis-rs's routing (`RoutingInfo::for_routable`) is private to it, so the request goes
        // through its boxed `req_packed_command`: two boxes a request where raw has one.
        let send =
            move |mut conn: ClusterConnection| async move { conn.req_packed_command(cmd).await };
        let inner = &self.inner;
        handle::boxed_in_place(move || inner.request(resendable(cmd), send))
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let send = move |mut conn: ClusterConnection| async move {
            conn.req_packed_commands(pipeline, offset, count).await
        };
        let inner = &self.inner;
        handle::boxed_in_place(move || inner.request(true, send))
    }

    fn get_db(&self) -> i64 {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Auth, Endpoint};

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
