//! The emulator: its builder, its lifecycle and its public handle.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::env::AuthKind;
use crate::error::EmulatorError;
use crate::faults::{CounterCells, Counters, FaultState, Faults, inc};
use crate::identity::{self, Registry, ServicePrincipal, UserIdentity, WorkloadIdentity};
use crate::jwt::{self, KeyMaterial, REDIS_AUDIENCE};
use crate::net::{bind_loopback, free_port, local_addr};
use crate::redis_server::{self, RedisConfig, RedisServer};
use crate::shared::{Shared, random_access_key, random_hex};
use crate::{gate, http, pki, resp};

/// Default lifetime of minted access tokens.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
/// Default largest bulk argument, as redis-server's `proto-max-bulk-len`.
pub const DEFAULT_MAX_BULK_LEN: u64 = 512 * 1024 * 1024;

/// An access token minted by [`Emulator::mint_token`]. `Debug` does not show the token.
#[derive(Clone)]
pub struct MintedToken {
    /// The `oid` claim (the Redis username), or the oid it was minted for when the token
    /// deliberately lacks the claim.
    pub oid: String,
    /// The `exp` claim, in Unix seconds.
    pub expires_on: i64,
    token: SecretString,
}

impl MintedToken {
    /// The compact JWT.
    pub fn secret(&self) -> &str {
        self.token.expose_secret()
    }
}

impl std::fmt::Debug for MintedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MintedToken")
            .field("oid", &self.oid)
            .field("expires_on", &self.expires_on)
            .field("token", &"[REDACTED]")
            .finish()
    }
}

/// A deliberate defect of a minted token, for negative tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenFlaw {
    /// The signature does not match (one signature byte altered).
    BadSignature,
    /// `exp` lies in the past.
    Expired,
    /// `nbf` lies in the future.
    NotYetValid,
    /// The audience is another resource (`https://vault.azure.net`).
    WrongAudience,
    /// No `oid` claim.
    NoOid,
    /// Signed by a key the emulator does not trust (header `alg` is `none`, no signature).
    Unsigned,
}

/// Configures and starts an [`Emulator`].
#[derive(Clone)]
pub struct EmulatorBuilder {
    token_lifetime: Duration,
    plain_listener: bool,
    access_key: Option<SecretString>,
    access_keys_enabled: bool,
    tenant_id: Option<String>,
    redis_server: PathBuf,
    max_bulk_len: u64,
    max_intercepted_len: usize,
    auth_delay: Option<Duration>,
    idle_timeout: Option<Duration>,
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

    /// The redis-server executable named by [`EmulatorBuilder::redis_server`].
    pub(crate) fn redis_server_path(&self) -> PathBuf {
        self.redis_server.clone()
    }

    /// Starts every server and the child redis-server.
    pub async fn start(self) -> Result<Emulator, EmulatorError> {
        Emulator::start_with(self).await
    }
}

/// The defaults registered at start, used by [`Emulator::env_for`].
#[derive(Clone)]
struct Defaults {
    user: UserIdentity,
    service_principal: ServicePrincipal,
    service_principal_secret: SecretString,
    workload: WorkloadIdentity,
}

/// A running emulator. Dropping it stops every task and kills the child redis-server;
/// [`Emulator::shutdown`] does the same and waits for it.
pub struct Emulator {
    shared: Arc<Shared>,
    tasks: JoinSet<()>,
    tls_addr: SocketAddr,
    plain_addr: Option<SocketAddr>,
    mi_addr: SocketAddr,
    entra_addr: SocketAddr,
    ca_pem: String,
    ca_file: PathBuf,
    defaults: Defaults,
    dir: Option<tempfile::TempDir>,
    gate_tls: TlsAcceptor,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("tls_addr", &self.tls_addr)
            .field("plain_addr", &self.plain_addr)
            .field("redis_addr", &self.redis_addr())
            .field("identity_endpoint", &self.identity_endpoint())
            .field("authority", &self.shared.authority)
            .finish_non_exhaustive()
    }
}

impl Emulator {
    /// A builder with default settings.
    pub fn builder() -> EmulatorBuilder {
        EmulatorBuilder::default()
    }

    /// Starts an emulator with default settings.
    pub async fn start() -> Result<Self, EmulatorError> {
        EmulatorBuilder::default().start().await
    }

    async fn start_with(b: EmulatorBuilder) -> Result<Self, EmulatorError> {
        if b.token_lifetime < Duration::from_secs(1) {
            return Err(EmulatorError::InvalidArgument(
                "token lifetime must be at least 1 s".into(),
            ));
        }
        let binary =
            redis_server::find_binary(&b.redis_server).ok_or(EmulatorError::RedisServerNotFound)?;
        // RSA key generation can take seconds in unoptimised builds: overlap it with the rest.
        let key_task = tokio::task::spawn_blocking(KeyMaterial::process_key);

        let dir = tempfile::Builder::new()
            .prefix("azure-redis-emulator-")
            .tempdir()
            .map_err(|e| EmulatorError::io("creating a temporary directory", e))?;
        let pki = pki::Pki::generate()?;
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, &pki.ca_pem)
            .map_err(|e| EmulatorError::io("writing the CA file", e))?;

        let tls_listener = bind_loopback("gate TLS").await?;
        let plain_listener = if b.plain_listener {
            Some(bind_loopback("gate plain").await?)
        } else {
            None
        };
        let mi_listener = bind_loopback("managed identity").await?;
        let entra_listener = bind_loopback("token endpoint").await?;
        let tls_addr = local_addr(&tls_listener)?;
        let plain_addr = plain_listener.as_ref().map(local_addr).transpose()?;
        let mi_addr = local_addr(&mi_listener)?;
        let entra_addr = local_addr(&entra_listener)?;

        let password = SecretString::from(random_hex(24));
        let mut redis_config = RedisConfig {
            binary,
            port: 0,
            dir: dir.path().to_path_buf(),
            password: password.clone(),
            extra: String::new(),
            replication: false,
        };
        let mut server = None;
        let mut last_err = None;
        for _ in 0..5 {
            redis_config.port = free_port()?;
            match RedisServer::start(&redis_config).await {
                Ok(s) => {
                    server = Some(s);
                    break;
                }
                Err(e) => last_err = Some(e),
            }
        }
        let server = match server {
            Some(s) => s,
            None => {
                return Err(last_err
                    .unwrap_or_else(|| EmulatorError::RedisServer("could not start".into())));
            }
        };

        let key = key_task
            .await
            .map_err(|e| EmulatorError::Key(e.to_string()))??;
        let tenant = b.tenant_id.clone().unwrap_or_else(identity::new_uuid);
        let authority = format!("https://localhost:{}", entra_addr.port());
        let shared = Arc::new(Shared {
            key,
            registry: Mutex::new(Registry::new(tenant.clone())),
            token_lifetime_ms: AtomicU64::new(b.token_lifetime.as_millis() as u64),
            access_key: Arc::new(RwLock::new(
                b.access_key
                    .clone()
                    .unwrap_or_else(|| SecretString::from(random_access_key())),
            )),
            access_key_enabled: Arc::new(AtomicBool::new(b.access_keys_enabled)),
            identity_header: SecretString::from(random_hex(16)),
            internal_password: password,
            wrong_password: format!("wrong-{}", random_hex(8)),
            counters: CounterCells::default(),
            faults: FaultState::default(),
            shutdown: CancellationToken::new(),
            limits: resp::Limits {
                max_bulk: b.max_bulk_len,
                max_intercepted: b.max_intercepted_len,
            },
            auth_delay: b.auth_delay,
            idle_timeout: b.idle_timeout,
            redis_config,
            redis: Mutex::new(Some(server)),
            redis_restart: tokio::sync::Mutex::new(()),
            federation_issuer: format!("{authority}/federation"),
            authority,
            dir: dir.path().to_path_buf(),
        });

        // Identities registered at start, used by `env_for`.
        let user = shared.registry().add_user(&identity::new_uuid());
        let sp_secret = SecretString::from(format!("{}~{}", random_hex(4), random_hex(16)));
        let service_principal =
            shared.add_service_principal(&tenant, &identity::new_uuid(), sp_secret.clone());
        let workload = shared.add_workload_identity(&tenant, &identity::new_uuid())?;
        let defaults = Defaults {
            user,
            service_principal,
            service_principal_secret: sp_secret,
            workload,
        };

        let mut tasks = JoinSet::new();
        let gate_tls = TlsAcceptor::from(pki.server_config.clone());
        tasks.spawn(gate::run(
            tls_listener,
            Some(gate_tls.clone()),
            shared.clone(),
        ));
        if let Some(l) = plain_listener {
            tasks.spawn(gate::run(l, None, shared.clone()));
        }
        tasks.spawn(http::serve(
            mi_listener,
            None,
            http::managed_identity_router(shared.clone()),
            shared.clone(),
        ));
        tasks.spawn(http::serve(
            entra_listener,
            Some(TlsAcceptor::from(pki.http_server_config.clone())),
            http::entra_router(shared.clone()),
            shared.clone(),
        ));

        let emu = Emulator {
            shared,
            tasks,
            tls_addr,
            plain_addr,
            mi_addr,
            entra_addr,
            ca_pem: pki.ca_pem,
            ca_file,
            defaults,
            dir: Some(dir),
            gate_tls,
        };
        tracing::info!(
            gate_tls = %emu.tls_addr,
            gate_plain = ?emu.plain_addr,
            redis = %emu.redis_addr(),
            identity_endpoint = %emu.identity_endpoint(),
            authority = %emu.shared.authority,
            "emulator started"
        );
        Ok(emu)
    }

    /// The state the emulator's servers share (for the cluster's node gates).
    pub(crate) fn shared_state(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The gate's TLS acceptor (certificate for `localhost` and `127.0.0.1`).
    pub(crate) fn gate_acceptor(&self) -> TlsAcceptor {
        self.gate_tls.clone()
    }

    /// Address of the gate's TLS listener (certificate for `localhost` and `127.0.0.1`).
    pub fn tls_addr(&self) -> SocketAddr {
        self.tls_addr
    }

    /// Address of the gate's plain listener, when enabled.
    pub fn plain_addr(&self) -> Option<SocketAddr> {
        self.plain_addr
    }

    /// Address of the child redis-server itself (behind the gate; it requires
    /// [`Emulator::redis_password`]).
    pub fn redis_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.shared.redis_config.port))
    }

    /// The internal password of the child redis-server, for direct access that bypasses the
    /// gate (benchmarks, inspection).
    pub fn redis_password(&self) -> &SecretString {
        &self.shared.internal_password
    }

    /// PEM of the emulator's CA certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Path of a PEM file holding the CA certificate (in a temporary directory the emulator
    /// owns; removed when it stops). Suitable for `SSL_CERT_FILE`.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// The managed identity endpoint (`IDENTITY_ENDPOINT`), `http://127.0.0.1:PORT/msi/token`.
    pub fn identity_endpoint(&self) -> String {
        format!("http://{}{}", self.mi_addr, http::MI_PATH)
    }

    /// The secret the managed identity endpoint expects in `x-identity-header`
    /// (`IDENTITY_HEADER`).
    pub fn identity_header(&self) -> &SecretString {
        &self.shared.identity_header
    }

    /// The Entra ID authority host (`AZURE_AUTHORITY_HOST`), `https://localhost:PORT`.
    pub fn token_endpoint_authority(&self) -> String {
        self.shared.authority.clone()
    }

    /// Address of the token endpoint's listener.
    pub fn token_endpoint_addr(&self) -> SocketAddr {
        self.entra_addr
    }

    /// Tenant id of the emulated directory.
    pub fn tenant_id(&self) -> String {
        self.shared.registry().tenant_id.clone()
    }

    /// Object id (`oid`) of the system-assigned managed identity.
    pub fn system_identity(&self) -> String {
        self.shared.registry().system_oid.clone()
    }

    /// Registers a user-assigned managed identity (idempotent per client id).
    pub fn add_user_identity(&self, client_id: &str) -> UserIdentity {
        self.shared.registry().add_user(client_id)
    }

    /// Registers a service principal with a client secret (replacing the secret of an existing
    /// one).
    pub fn add_service_principal(
        &self,
        tenant_id: &str,
        client_id: &str,
        secret: impl Into<SecretString>,
    ) -> ServicePrincipal {
        self.shared
            .add_service_principal(tenant_id, client_id, secret.into())
    }

    /// Registers a workload identity: an app with a federated credential, and writes its
    /// projected service account token (signed by the emulator, valid 24 h) to a file.
    pub fn add_workload_identity(
        &self,
        tenant_id: &str,
        client_id: &str,
    ) -> Result<WorkloadIdentity, EmulatorError> {
        self.shared.add_workload_identity(tenant_id, client_id)
    }

    /// Rewrites the federated token file of `wi` with a new token valid for `lifetime`
    /// (`Duration::ZERO` writes one that has already expired).
    pub fn write_federated_token(
        &self,
        wi: &WorkloadIdentity,
        lifetime: Duration,
    ) -> Result<(), EmulatorError> {
        self.shared.write_federated_token(wi, lifetime)
    }

    /// The user-assigned identity registered at start (used by [`Emulator::env_for`]).
    pub fn default_user_identity(&self) -> &UserIdentity {
        &self.defaults.user
    }

    /// The service principal registered at start, and its secret.
    pub fn default_service_principal(&self) -> (&ServicePrincipal, &SecretString) {
        (
            &self.defaults.service_principal,
            &self.defaults.service_principal_secret,
        )
    }

    /// The workload identity registered at start.
    pub fn default_workload_identity(&self) -> &WorkloadIdentity {
        &self.defaults.workload
    }

    /// The current access key.
    pub fn access_key(&self) -> SecretString {
        self.shared
            .access_key
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Sets the access key and enables access-key auth (`AUTH <key>` / `AUTH default <key>`).
    pub fn set_access_key(&self, key: impl Into<SecretString>) {
        *self
            .shared
            .access_key
            .write()
            .unwrap_or_else(|p| p.into_inner()) = key.into();
        self.shared.access_key_enabled.store(true, Ordering::SeqCst);
    }

    /// Enables or disables access-key auth (Entra-only caches disable it).
    pub fn set_access_keys_enabled(&self, enabled: bool) {
        self.shared
            .access_key_enabled
            .store(enabled, Ordering::SeqCst);
    }

    /// Lifetime of the tokens the identity endpoints mint from now on.
    pub fn token_lifetime(&self) -> Duration {
        self.shared.token_lifetime()
    }

    /// Changes the lifetime of tokens minted from now on (at least 1 s).
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        let ms = lifetime.max(Duration::from_secs(1)).as_millis() as u64;
        self.shared.token_lifetime_ms.store(ms, Ordering::SeqCst);
    }

    /// Mints a valid access token for `oid` (audience `https://redis.azure.com`).
    pub fn mint_token(&self, oid: &str, lifetime: Duration) -> MintedToken {
        let tenant = self.tenant_id();
        let (token, exp) = self
            .shared
            .mint(oid, &tenant, None, REDIS_AUDIENCE, lifetime);
        MintedToken {
            oid: oid.to_string(),
            expires_on: exp,
            token: SecretString::from(token),
        }
    }

    /// Mints a token for `oid` with a deliberate defect; the gate must refuse it.
    pub fn mint_flawed_token(&self, oid: &str, flaw: TokenFlaw) -> MintedToken {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let tenant = self.tenant_id();
        let now = jwt::now_unix() as i64;
        let mut claims = json!({
            "aud": REDIS_AUDIENCE,
            "iss": format!("https://sts.windows.net/{tenant}/"),
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "oid": oid,
            "sub": oid,
            "tid": tenant,
            "ver": "1.0",
        });
        match flaw {
            TokenFlaw::Expired => {
                claims["iat"] = json!(now - 7200);
                claims["nbf"] = json!(now - 7200);
                claims["exp"] = json!(now - 60);
            }
            TokenFlaw::NotYetValid => claims["nbf"] = json!(now + 1800),
            TokenFlaw::WrongAudience => claims["aud"] = json!("https://vault.azure.net"),
            TokenFlaw::NoOid => {
                if let Some(m) = claims.as_object_mut() {
                    m.remove("oid");
                }
            }
            TokenFlaw::BadSignature | TokenFlaw::Unsigned => {}
        }
        let expires_on = claims["exp"].as_i64().unwrap_or(now);
        let mut token = self.shared.key.sign(&claims);
        match flaw {
            TokenFlaw::BadSignature => {
                // Alter one full base64 character of the signature.
                let mut bytes = token.into_bytes();
                let i = bytes.len().saturating_sub(10);
                if let Some(b) = bytes.get_mut(i) {
                    *b = if *b == b'A' { b'B' } else { b'A' };
                }
                token = String::from_utf8_lossy(&bytes).into_owned();
            }
            TokenFlaw::Unsigned => {
                let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
                let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
                token = format!("{header}.{payload}.");
            }
            _ => {}
        }
        inc(&self.shared.counters.tokens_minted);
        tracing::info!(oid, exp = expires_on, ?flaw, "flawed token minted");
        MintedToken {
            oid: oid.to_string(),
            expires_on,
            token: SecretString::from(token),
        }
    }

    /// The environment Service Connector would inject for `kind`, pointed at this emulator,
    /// plus what azure_identity needs to reach it. Identity-based kinds use the identities
    /// registered at start ([`Emulator::default_user_identity`] and friends).
    ///
    /// Every kind gets `AZURE_REDIS_HOST=localhost` (or a connection string naming
    /// `localhost`), the gate's TLS port (`AZURE_REDIS_PORT`, since it is not Azure's 6380) and
    /// `SSL_CERT_FILE` naming the emulator's CA.
    pub fn env_for(&self, kind: AuthKind) -> Vec<(String, String)> {
        let port = self.tls_addr.port().to_string();
        let ca = self.ca_file.display().to_string();
        let authority = self.token_endpoint_authority();
        let key = self.access_key();
        let key = key.expose_secret();
        let mut v: Vec<(&str, String)> = Vec::new();
        let host_port = |v: &mut Vec<(&str, String)>| {
            v.push(("AZURE_REDIS_HOST", "localhost".to_string()));
            v.push(("AZURE_REDIS_PORT", port.clone()));
        };
        match kind {
            AuthKind::SystemIdentity | AuthKind::UserIdentity => {
                host_port(&mut v);
                if kind == AuthKind::UserIdentity {
                    v.push(("AZURE_REDIS_CLIENTID", self.defaults.user.client_id.clone()));
                }
                v.push(("IDENTITY_ENDPOINT", self.identity_endpoint()));
                v.push((
                    "IDENTITY_HEADER",
                    self.shared.identity_header.expose_secret().to_string(),
                ));
            }
            AuthKind::ServicePrincipal => {
                let sp = &self.defaults.service_principal;
                host_port(&mut v);
                v.push(("AZURE_REDIS_CLIENTID", sp.client_id.clone()));
                v.push((
                    "AZURE_REDIS_CLIENTSECRET",
                    self.defaults
                        .service_principal_secret
                        .expose_secret()
                        .to_string(),
                ));
                v.push(("AZURE_REDIS_TENANTID", sp.tenant_id.clone()));
                v.push(("AZURE_AUTHORITY_HOST", authority));
            }
            AuthKind::WorkloadIdentity => {
                let wi = &self.defaults.workload;
                host_port(&mut v);
                v.push(("AZURE_REDIS_CLIENTID", wi.client_id.clone()));
                v.push(("AZURE_CLIENT_ID", wi.client_id.clone()));
                v.push(("AZURE_TENANT_ID", wi.tenant_id.clone()));
                v.push((
                    "AZURE_FEDERATED_TOKEN_FILE",
                    wi.token_file.display().to_string(),
                ));
                v.push(("AZURE_AUTHORITY_HOST", authority));
            }
            AuthKind::AccessKey => {
                host_port(&mut v);
                v.push(("AZURE_REDIS_DATABASE", "0".to_string()));
                v.push(("AZURE_REDIS_PASSWORD", key.to_string()));
                v.push(("AZURE_REDIS_SSL", "true".to_string()));
            }
            AuthKind::ConnectionStringStackExchange => v.push((
                "AZURE_REDIS_CONNECTIONSTRING",
                format!("localhost:{port},password={key},ssl=True,defaultDatabase=0"),
            )),
            AuthKind::ConnectionStringUrl => v.push((
                "AZURE_REDIS_CONNECTIONSTRING",
                format!("rediss://:{key}@localhost:{port}/0"),
            )),
        }
        v.push(("SSL_CERT_FILE", ca));
        v.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    /// Fault injection.
    pub fn faults(&self) -> Faults {
        Faults {
            shared: self.shared.clone(),
        }
    }

    /// A snapshot of the counters.
    pub fn counters(&self) -> Counters {
        self.shared.counters.snapshot()
    }

    /// Stops every server and task, kills redis-server and removes the temporary directory,
    /// waiting for all of it.
    pub async fn shutdown(mut self) {
        self.shared.shutdown.cancel();
        let mut tasks = std::mem::take(&mut self.tasks);
        let joined = tokio::time::timeout(Duration::from_secs(5), async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if joined.is_err() {
            tasks.abort_all();
        }
        if let Some(mut server) = self.shared.take_redis() {
            let _ = tokio::task::spawn_blocking(move || server.stop()).await;
        }
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
        tracing::info!("emulator stopped");
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
        self.tasks.abort_all();
        if let Some(mut server) = self.shared.take_redis() {
            server.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn public_types_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<super::Emulator>();
        check::<super::Faults>();
        check::<super::MintedToken>();
        check::<super::EmulatorBuilder>();
    }
}
