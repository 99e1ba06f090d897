//! The builder both handles are made with, its options and their defaults.

use std::fmt;
use std::time::Duration;

use redis::PushInfo;
use tokio::sync::mpsc;

use crate::cluster::AddressMapping;
use crate::config::{Auth, AzureRedisConfig, ConfigError, Endpoint, Service};
use crate::conn::ConnectError;
use crate::handle;
use crate::telemetry;
use crate::token::{self, RefreshPolicy, TokenProvider, TokenSource};

/// Default [`Builder::connect_timeout`]: TCP, TLS and the first AUTH of a connection. Azure can
/// take seconds to validate a token (a `HELLO` times out server-side after 10 s).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default [`Builder::response_timeout`]: a command whose reply has not come within it fails
/// with a timeout error and its connection is replaced, so that a peer that vanished (no FIN,
/// no RST: a failed node, a dropped NAT entry) costs seconds, not the 15 minutes TCP takes to
/// give up. StackExchange.Redis's default is the same 5 s.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Default [`Builder::auth_timeout`]: re-AUTH of a live connection.
pub const DEFAULT_AUTH_TIMEOUT: Duration = Duration::from_secs(10);
/// Default [`Builder::keepalive`]: well under the 10 minutes after which Azure closes an idle
/// connection.
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(60);
/// Default [`Builder::wait_for_connection`].
pub const DEFAULT_WAIT_FOR_CONNECTION: Duration = Duration::from_secs(5);
/// Default [`Builder::health_cache`].
pub const DEFAULT_HEALTH_CACHE: Duration = Duration::from_secs(1);

/// What both builders take besides the endpoint and the auth type.
pub(crate) struct Options {
    pub(crate) root_ca_pem: Option<Vec<u8>>,
    pub(crate) authority_host: Option<String>,
    pub(crate) connect_timeout: Duration,
    pub(crate) response_timeout: Option<Duration>,
    pub(crate) auth_timeout: Duration,
    pub(crate) resp3: bool,
    pub(crate) username: Option<String>,
    pub(crate) policy: RefreshPolicy,
    pub(crate) allow_plaintext: bool,
    pub(crate) keepalive: Option<Duration>,
    pub(crate) token_source: Option<Box<dyn TokenSource>>,
    pub(crate) push_sender: Option<mpsc::UnboundedSender<PushInfo>>,
    pub(crate) health_cache: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            root_ca_pem: None,
            authority_host: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            response_timeout: Some(DEFAULT_RESPONSE_TIMEOUT),
            auth_timeout: DEFAULT_AUTH_TIMEOUT,
            resp3: true,
            username: None,
            policy: RefreshPolicy::default(),
            allow_plaintext: false,
            keepalive: Some(DEFAULT_KEEPALIVE),
            token_source: None,
            push_sender: None,
            health_cache: DEFAULT_HEALTH_CACHE,
        }
    }
}

impl Options {
    /// Refuses a plaintext endpoint unless allowed, builds the token source for `auth` (unless
    /// one was given) and gets the first token, with a timeout of its own, before any TCP
    /// connect.
    pub(crate) async fn start_provider(
        &mut self,
        endpoint: &Endpoint,
        auth: &Auth,
    ) -> Result<TokenProvider, ConnectError> {
        check_plaintext(endpoint, self.allow_plaintext)?;
        token::install_crypto_provider();
        let source = match self.token_source.take() {
            Some(source) => source,
            None => {
                let options = token::CredentialOptions {
                    extra_root_ca: self.root_ca_pem.clone(),
                    authority_host: self.authority_host.clone(),
                };
                token::source_for(auth, &options)?
            }
        };
        let meter = telemetry::TokenMeter::for_endpoint(endpoint);
        let provider =
            TokenProvider::start_metered(source, self.policy.clone(), self.username.clone(), meter);
        Ok(provider.await?)
    }
}

/// Refuses TLS off for Azure hosts, and elsewhere unless `allow_plaintext` is set.
fn check_plaintext(endpoint: &Endpoint, allow_plaintext: bool) -> Result<(), ConnectError> {
    if endpoint.tls {
        return Ok(());
    }
    if endpoint.service() != Service::Other {
        return Err(ConnectError::PlaintextRefused {
            host: endpoint.host.clone(),
        });
    }
    if !allow_plaintext {
        return Err(ConnectError::PlaintextNotAllowed {
            endpoint: endpoint.to_string(),
        });
    }
    Ok(())
}

/// What only the single-node handle takes.
#[derive(Debug)]
#[non_exhaustive]
pub struct Single {
    pub(crate) wait_for_connection: Duration,
}

/// What only the cluster handle takes.
#[derive(Debug)]
#[non_exhaustive]
pub struct Cluster {
    pub(crate) mapping: Option<AddressMapping>,
    pub(crate) retries: Option<u32>,
    pub(crate) failover_wait: Duration,
}

/// Sets up a handle with what the configuration cannot say: `Builder<Single>`
/// ([`conn::Builder`](crate::conn::Builder)) makes an [`AzureRedis`](crate::AzureRedis),
/// `Builder<Cluster>` ([`cluster::ClusterBuilder`](crate::cluster::ClusterBuilder)) an
/// [`AzureRedisCluster`](crate::cluster::AzureRedisCluster). The setters here apply to both;
/// the [module docs](crate::handle) list the defaults.
#[must_use]
pub struct Builder<K> {
    pub(crate) endpoint: Endpoint,
    pub(crate) auth: Auth,
    pub(crate) options: Options,
    pub(crate) kind: K,
}

impl<K: fmt::Debug> fmt::Debug for Builder<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("endpoint", &self.endpoint)
            .field("auth", &self.auth)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl<K> Builder<K> {
    pub(crate) fn with_kind(endpoint: Endpoint, auth: Auth, kind: K) -> Self {
        Builder {
            endpoint,
            auth,
            options: Options::default(),
            kind,
        }
    }

    /// For a redis-rs client of your own (a `ConnectionManager`, a pool of your own, a
    /// cluster client): gets the first token and starts the refresh as [`connect`] would, and
    /// returns a [`redis::Client`] for the endpoint (TLS and the root certificate as set here,
    /// the database, RESP3 unless [`resp2`](Self::resp2)) that holds no password. Give the
    /// provider's [`redis_credentials`](TokenProvider::redis_credentials) to the
    /// configuration you connect with, and keep the provider's refresh running as long as
    /// the client is used (the credentials hold a clone of it).
    ///
    /// [`connect`]: crate::conn::Builder::connect
    ///
    /// With redis-rs's `connection-manager` feature enabled in your `Cargo.toml`, a
    /// `ConnectionManager` takes them the same way, through
    /// `ConnectionManagerConfig::set_credentials_provider`.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use azure_redis_connect::redis::{AsyncCommands, AsyncConnectionConfig};
    /// use azure_redis_connect::{AzureRedis, AzureRedisConfig};
    ///
    /// #[derive(AzureRedisConfig)]
    /// #[azure_redis(auth = "system_identity")]
    /// struct Cache { host: String }
    ///
    /// let (client, provider) = AzureRedis::builder_from(&Cache::from_env()?)?.redis_client().await?;
    /// let config = AsyncConnectionConfig::new().set_credentials_provider(provider.redis_credentials());
    /// let mut conn = client.get_multiplexed_async_connection_with_config(&config).await?;
    /// let () = conn.set("greeting", "hello").await?;
    /// # Ok(()) }
    /// ```
    pub async fn redis_client(mut self) -> Result<(redis::Client, TokenProvider), ConnectError> {
        let provider = self
            .options
            .start_provider(&self.endpoint, &self.auth)
            .await?;
        let redis_error = |source| ConnectError::Redis {
            endpoint: self.endpoint.to_string(),
            source,
        };
        let info =
            handle::endpoint_info(&self.endpoint, self.options.resp3, None).map_err(redis_error)?;
        let client =
            handle::client(info, self.options.root_ca_pem.as_deref()).map_err(redis_error)?;
        Ok((client, provider))
    }

    /// Gets tokens from `source` instead of the credential the [`Auth`] names: a credential of
    /// your own, or tokens minted for tests.
    pub fn token_source(mut self, source: impl TokenSource) -> Self {
        self.options.token_source = Some(Box::new(source));
        self
    }

    /// Trusts this CA (PEM) for the Redis TLS connections, *instead of* the system roots, and
    /// for the identity endpoints, *in addition to* the system roots: for a local emulator or a
    /// private CA. Without it both trust the system's roots only, read by rustls-native-certs
    /// and rustls-platform-verifier, which take `SSL_CERT_FILE` (a PEM bundle that replaces
    /// the system's bundle) when it is set.
    pub fn root_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.options.root_ca_pem = Some(pem.into());
        self
    }

    /// The Microsoft Entra ID authority host for service principal and workload identity
    /// credentials (a sovereign cloud, or a local emulator).
    pub fn authority_host(mut self, url: impl Into<String>) -> Self {
        self.options.authority_host = Some(url.into());
        self
    }

    /// Timeout of TCP, TLS and the initial AUTH of a connection (default
    /// [`DEFAULT_CONNECT_TIMEOUT`], 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.options.connect_timeout = timeout;
        self
    }

    /// Timeout of each command's reply (default [`DEFAULT_RESPONSE_TIMEOUT`], 5 s). A command
    /// that gets no reply in time fails with a timeout error, and the connection it was sent on
    /// is replaced (its subscriptions restored on the new one): a peer that vanished sends
    /// nothing, not even a FIN. Blocking commands (`BLPOP`, `XREAD BLOCK`, `WAIT`) that may wait
    /// longer than this belong on connections of their own; `None` waits forever.
    pub fn response_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.options.response_timeout = timeout.filter(|t| !t.is_zero());
        self
    }

    /// Timeout of re-AUTH on the live connections (default [`DEFAULT_AUTH_TIMEOUT`], 10 s).
    pub fn auth_timeout(mut self, timeout: Duration) -> Self {
        self.options.auth_timeout = timeout;
        self
    }

    /// Speaks RESP2 instead of RESP3. Without RESP3 a connection the server closes is noticed
    /// only when it is next used, and pub/sub messages cannot be received.
    pub fn resp2(mut self) -> Self {
        self.options.resp3 = false;
        self
    }

    /// AUTHs with this user name instead of the token's `oid` claim.
    pub fn username(mut self, username: impl Into<String>) -> Self {
        self.options.username = Some(username.into());
        self
    }

    /// When to refresh tokens and how to retry (default [`RefreshPolicy::default`]).
    pub fn refresh_policy(mut self, policy: RefreshPolicy) -> Self {
        self.options.policy = policy;
        self
    }

    /// Sends a `PING` on every connection at this interval (default [`DEFAULT_KEEPALIVE`],
    /// 60 s; `None` for never).
    ///
    /// Azure closes a connection on which nothing moved for 10 minutes, so that a handle idle
    /// for longer would otherwise reconnect (RESP3, on the server's close) or fail its next
    /// command (RESP2). A `PING` that finds a connection dropped, or that gets no answer within
    /// the response timeout, has it replaced at once.
    pub fn keepalive(mut self, interval: Option<Duration>) -> Self {
        self.options.keepalive = interval.filter(|i| !i.is_zero());
        self
    }

    /// Allows TLS off for hosts that are not Azure's (a local server). Azure hosts are always
    /// refused without TLS.
    pub fn allow_plaintext(mut self) -> Self {
        self.options.allow_plaintext = true;
        self
    }

    /// Receives the RESP3 pushes (pub/sub messages) of the handle's connections: the messages
    /// of its `subscribe`, `psubscribe` (and, on a cluster, `ssubscribe`) calls.
    pub fn push_sender(mut self, sender: mpsc::UnboundedSender<PushInfo>) -> Self {
        self.options.push_sender = Some(sender);
        self
    }

    /// How long the result of a health check ([`HealthReport::check`](crate::health::HealthReport::check))
    /// is shared by the checks that come after it (default [`DEFAULT_HEALTH_CACHE`], 1 s;
    /// `Duration::ZERO` shares a check only among the callers that wait for it). Concurrent
    /// callers always share one `PING`, so a health endpoint's cost stays bounded whatever its
    /// request rate.
    pub fn health_cache(mut self, max_age: Duration) -> Self {
        self.options.health_cache = max_age;
        self
    }
}

impl Default for Single {
    fn default() -> Self {
        Single {
            wait_for_connection: DEFAULT_WAIT_FOR_CONNECTION,
        }
    }
}

impl<K: Default> Builder<K> {
    /// A builder for `endpoint` and `auth` with the defaults of the [module docs](crate::handle)
    /// (and, for a cluster, of [`ClusterBuilder`](crate::cluster::ClusterBuilder)).
    pub fn new(endpoint: Endpoint, auth: Auth) -> Self {
        Builder::with_kind(endpoint, auth, K::default())
    }

    /// A builder from a derived configuration's endpoint and auth type.
    pub fn from_config(config: &impl AzureRedisConfig) -> Result<Self, ConfigError> {
        let resolved = config.connection_config()?;
        Ok(Builder::new(resolved.endpoint, resolved.auth))
    }
}

impl Builder<Single> {
    /// How long a command waits for a connection while one is being re-established (default
    /// [`DEFAULT_WAIT_FOR_CONNECTION`], 5 s); then it fails with a "not connected" error.
    pub fn wait_for_connection(mut self, wait: Duration) -> Self {
        self.kind.wait_for_connection = wait;
        self
    }
}
