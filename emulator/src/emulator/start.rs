//! Bringing an emulator up: the RSA key is generated on a blocking thread while the CA, the
//! listeners and redis-server start; then the identity and gate states, the identities
//! registered at start and the servers.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use super::{DefaultIdentities, Emulator, EmulatorBuilder};
use crate::error::EmulatorError;
use crate::gate::{self, GateSettings, GateState};
use crate::identity::{self, IdentitySettings, IdentityState};
use crate::jwt::KeyMaterial;
use crate::net::{bind_loopback, free_port, local_addr};
use crate::random::{random_access_key, random_hex};
use crate::redis_server::{self, RedisConfig, RedisServer};
use crate::{http, pki, resp};

impl Emulator {
    pub(super) async fn start_with(b: EmulatorBuilder) -> Result<Self, EmulatorError> {
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

        let listeners = Listeners::bind(b.plain_listener).await?;
        let password = SecretString::from(random_hex(24));
        let (redis_config, server) = start_redis(binary, dir.path(), password).await?;

        let key = key_task
            .await
            .map_err(|e| EmulatorError::Key(e.to_string()))??;
        let tenant = b.tenant_id.clone().unwrap_or_else(identity::new_uuid);
        let identity = Arc::new(IdentityState::new(
            key,
            IdentitySettings {
                tenant_id: tenant.clone(),
                token_lifetime: b.token_lifetime,
                access_key: b
                    .access_key
                    .clone()
                    .unwrap_or_else(|| SecretString::from(random_access_key())),
                access_keys_enabled: b.access_keys_enabled,
                authority: format!("https://localhost:{}", listeners.entra_addr.port()),
                dir: dir.path().to_path_buf(),
            },
        ));
        // The gate stops with the emulator.
        let gate = Arc::new(GateState::new(
            identity.clone(),
            GateSettings {
                limits: resp::Limits {
                    max_bulk: b.max_bulk_len,
                    max_intercepted: b.max_intercepted_len,
                },
                auth_delay: b.auth_delay,
                idle_timeout: b.idle_timeout,
            },
            redis_config,
            server,
            identity.shutdown.child_token(),
        ));

        let defaults = DefaultIdentities::register(&identity, &tenant)?;
        let gate_tls = TlsAcceptor::from(pki.server_config.clone());
        let (tls_addr, plain_addr, mi_addr, entra_addr) = (
            listeners.tls_addr,
            listeners.plain_addr,
            listeners.mi_addr,
            listeners.entra_addr,
        );
        let tasks = listeners.serve(&gate_tls, &pki, &identity, &gate);

        let emu = Emulator {
            identity,
            gate,
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
            authority = %emu.identity.authority,
            "emulator started"
        );
        Ok(emu)
    }
}

/// The emulator's listeners, bound before anything serves on them so that their addresses
/// can go into the state (the token endpoint's port is in the authority).
struct Listeners {
    tls: TcpListener,
    plain: Option<TcpListener>,
    mi: TcpListener,
    entra: TcpListener,
    tls_addr: SocketAddr,
    plain_addr: Option<SocketAddr>,
    mi_addr: SocketAddr,
    entra_addr: SocketAddr,
}

impl Listeners {
    /// The gate's TLS listener, its plain one when `plain`, the managed identity endpoint's
    /// and the token endpoint's, each on a free loopback port.
    async fn bind(plain: bool) -> Result<Self, EmulatorError> {
        let tls = bind_loopback("gate TLS").await?;
        let plain = if plain {
            Some(bind_loopback("gate plain").await?)
        } else {
            None
        };
        let mi = bind_loopback("managed identity").await?;
        let entra = bind_loopback("token endpoint").await?;
        Ok(Self {
            tls_addr: local_addr(&tls)?,
            plain_addr: plain.as_ref().map(local_addr).transpose()?,
            mi_addr: local_addr(&mi)?,
            entra_addr: local_addr(&entra)?,
            tls,
            plain,
            mi,
            entra,
        })
    }

    /// Spawns the gates and the identity endpoints; the tasks end at shutdown.
    fn serve(
        self,
        gate_tls: &TlsAcceptor,
        pki: &pki::Pki,
        identity: &Arc<IdentityState>,
        gate: &Arc<GateState>,
    ) -> JoinSet<()> {
        let mut tasks = JoinSet::new();
        tasks.spawn(gate::run(self.tls, Some(gate_tls.clone()), gate.clone()));
        if let Some(l) = self.plain {
            tasks.spawn(gate::run(l, None, gate.clone()));
        }
        tasks.spawn(http::serve(
            self.mi,
            None,
            http::managed_identity_router(identity.clone()),
            identity.clone(),
        ));
        tasks.spawn(http::serve(
            self.entra,
            Some(TlsAcceptor::from(pki.http_server_config.clone())),
            http::entra_router(identity.clone()),
            identity.clone(),
        ));
        tasks
    }
}

/// Starts the child redis-server on a free port with `password`, in `dir`; tries five ports,
/// since another process can take a free port before redis-server binds it.
async fn start_redis(
    binary: PathBuf,
    dir: &Path,
    password: SecretString,
) -> Result<(RedisConfig, RedisServer), EmulatorError> {
    let mut redis_config = RedisConfig {
        binary,
        port: 0,
        dir: dir.to_path_buf(),
        password,
        extra: String::new(),
        replication: false,
    };
    let mut last_err = None;
    for _ in 0..5 {
        redis_config.port = free_port()?;
        match RedisServer::start(&redis_config).await {
            Ok(server) => return Ok((redis_config, server)),
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.unwrap_or_else(|| EmulatorError::RedisServer("could not start".into())))
}
