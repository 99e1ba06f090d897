//! The emulator's settings, with their defaults.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

use super::Emulator;
use crate::env::ServiceConnectorAuth;
use crate::error::EmulatorError;

/// Default lifetime of minted access tokens.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
/// Default largest bulk argument, as redis-server's `proto-max-bulk-len`.
pub const DEFAULT_MAX_BULK_LEN: u64 = 512 * 1024 * 1024;

/// Configures and starts an [`Emulator`].
#[derive(Clone)]
pub struct EmulatorBuilder {
    pub(super) token_lifetime: Duration,
    pub(super) plain_listener: bool,
    pub(super) access_key: Option<SecretString>,
    pub(super) access_keys_enabled: bool,
    pub(super) tenant_id: Option<String>,
    pub(super) redis_server: PathBuf,
    pub(super) max_bulk_len: u64,
    pub(super) max_intercepted_len: usize,
    pub(super) auth_delay: Option<Duration>,
    pub(super) idle_timeout: Option<Duration>,
    pub(super) bind: IpAddr,
    pub(super) gate_port: u16,
    pub(super) plain_port: u16,
    pub(super) identity_port: u16,
    pub(super) token_endpoint_port: u16,
    pub(super) cert_hosts: Vec<String>,
    pub(super) env_file: Option<(PathBuf, ServiceConnectorAuth)>,
}

impl std::fmt::Debug for EmulatorBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmulatorBuilder")
            .field("token_lifetime", &self.token_lifetime)
            .field("plain_listener", &self.plain_listener)
            .field("access_keys_enabled", &self.access_keys_enabled)
            .field("tenant_id", &self.tenant_id)
            .field("redis_server", &self.redis_server)
            .field("max_bulk_len", &self.max_bulk_len)
            .field("auth_delay", &self.auth_delay)
            .field("idle_timeout", &self.idle_timeout)
            .field("bind", &self.bind)
            .field("gate_port", &self.gate_port)
            .field("plain_port", &self.plain_port)
            .field("identity_port", &self.identity_port)
            .field("token_endpoint_port", &self.token_endpoint_port)
            .field("cert_hosts", &self.cert_hosts)
            .field("env_file", &self.env_file)
            .finish_non_exhaustive()
    }
}

impl Default for EmulatorBuilder {
    fn default() -> Self {
        Self {
            token_lifetime: DEFAULT_TOKEN_LIFETIME,
            plain_listener: false,
            access_key: None,
            access_keys_enabled: true,
            tenant_id: None,
            redis_server: PathBuf::from("redis-server"),
            max_bulk_len: DEFAULT_MAX_BULK_LEN,
            max_intercepted_len: 1024 * 1024,
            auth_delay: None,
            idle_timeout: None,
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            gate_port: 0,
            plain_port: 0,
            identity_port: 0,
            token_endpoint_port: 0,
            cert_hosts: Vec::new(),
            env_file: None,
        }
    }
}

impl EmulatorBuilder {
    /// Lifetime of the access tokens the identity endpoints mint (default 1 hour; at least
    /// 1 second). Changeable later with [`Emulator::set_token_lifetime`].
    pub fn token_lifetime(mut self, lifetime: Duration) -> Self {
        self.token_lifetime = lifetime;
        self
    }

    /// Also open a plain (non-TLS) gate listener (default: off).
    pub fn plain_listener(mut self, enabled: bool) -> Self {
        self.plain_listener = enabled;
        self
    }

    /// The access key (default: a random base64 key containing `+`, `/` and `=`).
    pub fn access_key(mut self, key: impl Into<SecretString>) -> Self {
        self.access_key = Some(key.into());
        self
    }

    /// Accept the access key as `AUTH <key>` / `AUTH default <key>` (default: on, like a new
    /// Azure cache).
    pub fn access_keys_enabled(mut self, enabled: bool) -> Self {
        self.access_keys_enabled = enabled;
        self
    }

    /// Tenant id of the emulated directory (default: a random UUID).
    pub fn tenant_id(mut self, tenant_id: impl Into<String>) -> Self {
        self.tenant_id = Some(tenant_id.into());
        self
    }

    /// The redis-server executable: a name looked up on `PATH` or a path (default
    /// `redis-server`).
    pub fn redis_server(mut self, path: impl Into<PathBuf>) -> Self {
        self.redis_server = path.into();
        self
    }

    /// Largest bulk argument the gate accepts before answering
    /// `-ERR Protocol error: invalid bulk length` and closing (default 512 MiB).
    pub fn max_bulk_len(mut self, bytes: u64) -> Self {
        self.max_bulk_len = bytes;
        self
    }

    /// Makes the gate wait this long before checking each AUTH (Azure can take seconds).
    pub fn auth_delay(mut self, delay: Duration) -> Self {
        self.auth_delay = Some(delay);
        self
    }

    /// Closes gate connections on which nothing moved for this long, without a reply (Azure
    /// does so after 10 minutes). Default: never.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = Some(timeout);
        self
    }

    /// The address the emulator's listeners bind: the gate (TLS and plain), the managed
    /// identity endpoint and the token endpoint (default `127.0.0.1`). The child redis-server
    /// stays on `127.0.0.1` whatever this is.
    ///
    /// The address clients are given follows from it: `127.0.0.1` and the unspecified
    /// addresses (`0.0.0.0`, `::`, every interface) give `localhost` / loopback, as before;
    /// any other address is given as itself (`AZURE_REDIS_HOST=127.0.0.2`, an authority host
    /// `https://127.0.0.2:PORT`) and is added to the certificate.
    ///
    /// The endpoints hand tokens and accept AUTH from anyone who reaches them: bind beyond
    /// loopback only on a network you trust, such as a CI job's container network.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), azure_redis_emulator::EmulatorError> {
    /// use azure_redis_emulator::Emulator;
    ///
    /// let emu = Emulator::builder()
    ///     .bind_address([127, 0, 0, 2].into())
    ///     .gate_port(16380)
    ///     .start()
    ///     .await?;
    /// assert_eq!(emu.tls_addr().to_string(), "127.0.0.2:16380");
    /// assert_eq!(emu.redis_host(), "127.0.0.2");
    /// # Ok(()) }
    /// ```
    pub fn bind_address(mut self, ip: IpAddr) -> Self {
        self.bind = ip;
        self
    }

    /// Port of the gate's TLS listener (default 0: a free port, see [`Emulator::tls_addr`]).
    /// When it is taken, [`EmulatorBuilder::start`] fails with [`EmulatorError::Bind`].
    pub fn gate_port(mut self, port: u16) -> Self {
        self.gate_port = port;
        self
    }

    /// Port of the gate's plain listener (0: a free port); also turns that listener on, as
    /// [`EmulatorBuilder::plain_listener`] does.
    pub fn plain_port(mut self, port: u16) -> Self {
        self.plain_port = port;
        self.plain_listener = true;
        self
    }

    /// Port of the managed identity endpoint, the one in `IDENTITY_ENDPOINT` (default 0: a
    /// free port).
    pub fn identity_port(mut self, port: u16) -> Self {
        self.identity_port = port;
        self
    }

    /// Port of the Entra ID token endpoint, the one in `AZURE_AUTHORITY_HOST` (default 0: a
    /// free port).
    pub fn token_endpoint_port(mut self, port: u16) -> Self {
        self.token_endpoint_port = port;
        self
    }

    /// Adds a host name or an IP address to the certificate that the gate and the token
    /// endpoint present (always valid for `localhost` and `127.0.0.1`), for clients that
    /// reach the emulator by another name: a CI service container's name, an `/etc/hosts`
    /// entry, the machine's address. Repeatable. [`EmulatorBuilder::start`] refuses a name
    /// [`EmulatorBuilder::check_cert_host`] refuses.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), azure_redis_emulator::EmulatorError> {
    /// use azure_redis_emulator::Emulator;
    ///
    /// let emu = Emulator::builder()
    ///     .bind_address([0, 0, 0, 0].into())
    ///     .cert_host("redis-emulator")
    ///     .cert_host("10.1.2.3")
    ///     .start()
    ///     .await?;
    /// // A client that connects to redis-emulator:PORT and trusts emu.ca_pem() accepts the gate.
    /// # drop(emu);
    /// # Ok(()) }
    /// ```
    pub fn cert_host(mut self, name: impl Into<String>) -> Self {
        self.cert_hosts.push(name.into());
        self
    }

    /// Whether `name` can go into the certificate with [`EmulatorBuilder::cert_host`]: a DNS
    /// name a TLS client can ask for (no wildcard, no spaces, no port) or an IP address.
    ///
    /// ```
    /// use azure_redis_emulator::EmulatorBuilder;
    ///
    /// assert!(EmulatorBuilder::check_cert_host("redis.ci.test").is_ok());
    /// assert!(EmulatorBuilder::check_cert_host("10.1.2.3").is_ok());
    /// assert!(EmulatorBuilder::check_cert_host("not a name").is_err());
    /// assert!(EmulatorBuilder::check_cert_host("host:6380").is_err());
    /// ```
    pub fn check_cert_host(name: &str) -> Result<(), EmulatorError> {
        match rustls::pki_types::ServerName::try_from(name) {
            Ok(_) => Ok(()),
            Err(_) => Err(EmulatorError::InvalidArgument(format!(
                "certificate host {name:?} is neither a DNS name nor an IP address"
            ))),
        }
    }

    /// Once every listener is up, writes the variables of [`Emulator::env_for`] for `kind` to
    /// `path` as a dotenv file (see [`Emulator::write_env_file`]: atomically, mode 0600); the
    /// file is removed when the emulator stops. A process that waits for the file to appear
    /// knows the emulator is ready.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), azure_redis_emulator::EmulatorError> {
    /// use azure_redis_emulator::{Emulator, ServiceConnectorAuth};
    ///
    /// let emu = Emulator::builder()
    ///     .env_file("/tmp/emulator.env", ServiceConnectorAuth::SystemIdentity)
    ///     .start()
    ///     .await?;
    /// // `set -a; . /tmp/emulator.env; set +a` in a shell, or any dotenv loader, now
    /// // configures an app for this emulator.
    /// emu.shutdown().await; // removes /tmp/emulator.env
    /// # Ok(()) }
    /// ```
    pub fn env_file(mut self, path: impl Into<PathBuf>, kind: ServiceConnectorAuth) -> Self {
        self.env_file = Some((path.into(), kind));
        self
    }

    /// The redis-server executable named by [`EmulatorBuilder::redis_server`].
    pub(crate) fn redis_server_path(&self) -> PathBuf {
        self.redis_server.clone()
    }

    /// Starts every server and the child redis-server.
    pub async fn start(self) -> Result<Emulator, EmulatorError> {
        Emulator::start_with(self).await
    }
}
