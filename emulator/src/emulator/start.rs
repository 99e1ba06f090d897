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
use crate::net::{
    Listener, bind_listener, client_host, connect_ip, free_port, host_for_port, local_addr,
};
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
        for name in &b.cert_hosts {
            EmulatorBuilder::check_cert_host(name)?;
        }
        check_distinct_ports(&b)?;
        let binary =
            redis_server::find_binary(&b.redis_server).ok_or(EmulatorError::RedisServerNotFound)?;
        // RSA key generation can take seconds in unoptimised builds: overlap it with the rest.
        let key_task = tokio::task::spawn_blocking(KeyMaterial::process_key);

        let dir = tempfile::Builder::new()
            .prefix("azure-redis-emulator-")
            .tempdir()
            .map_err(|e| EmulatorError::io("creating a temporary directory", e))?;
        // Clients get the bind address itself when it is not 127.0.0.1 (`net::client_host`),
        // so the certificate must be valid for it too.
        let client_ip = connect_ip(b.bind);
        let host = client_host(client_ip);
        let mut cert_names = b.cert_hosts.clone();
        cert_names.push(client_ip.to_string());
        let pki = pki::Pki::generate(&cert_names)?;
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, &pki.ca_pem)
            .map_err(|e| EmulatorError::io("writing the CA file", e))?;

        let listeners = Listeners::bind(&b).await?;
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
                authority: format!(
                    "https://{}:{}",
                    host_for_port(&host),
                    listeners.entra_addr.port()
                ),
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

        let mut emu = Emulator {
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
            host,
            env_file: None,
        };
        tracing::info!(
            gate_tls = %emu.tls_addr,
            gate_plain = ?emu.plain_addr,
            redis = %emu.redis_addr(),
            identity_endpoint = %emu.identity_endpoint(),
            authority = %emu.identity.authority,
            "emulator started"
        );
        // Last: the file's appearance tells a waiting CI job that everything is up.
        if let Some((path, kind)) = &b.env_file {
            emu.write_env_file(*kind, path)?;
            emu.env_file = Some(path.clone());
        }
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
    /// The gate's TLS listener, its plain one when enabled, the managed identity endpoint's
    /// and the token endpoint's, on the bind address, each on its fixed port or a free one.
    /// The addresses kept are those clients connect to (loopback for an unspecified bind
    /// address).
    async fn bind(b: &EmulatorBuilder) -> Result<Self, EmulatorError> {
        let ip = b.bind;
        let tls = bind_listener(Listener::GateTls, ip, b.gate_port).await?;
        let plain = if b.plain_listener {
            Some(bind_listener(Listener::GatePlain, ip, b.plain_port).await?)
        } else {
            None
        };
        let mi = bind_listener(Listener::ManagedIdentity, ip, b.identity_port).await?;
        let entra = bind_listener(Listener::TokenEndpoint, ip, b.token_endpoint_port).await?;
        let client = |l: &TcpListener| -> Result<SocketAddr, EmulatorError> {
            Ok(SocketAddr::new(connect_ip(ip), local_addr(l)?.port()))
        };
        Ok(Self {
            tls_addr: client(&tls)?,
            plain_addr: plain.as_ref().map(client).transpose()?,
            mi_addr: client(&mi)?,
            entra_addr: client(&entra)?,
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

/// Refuses one fixed port given to two listeners, which would otherwise fail as "already in
/// use" as if another process held it.
fn check_distinct_ports(b: &EmulatorBuilder) -> Result<(), EmulatorError> {
    let mut fixed: Vec<(Listener, u16)> = vec![
        (Listener::GateTls, b.gate_port),
        (Listener::ManagedIdentity, b.identity_port),
        (Listener::TokenEndpoint, b.token_endpoint_port),
    ];
    if b.plain_listener {
        fixed.push((Listener::GatePlain, b.plain_port));
    }
    fixed.retain(|(_, port)| *port != 0);
    for (i, (first, port)) in fixed.iter().enumerate() {
        if let Some((second, _)) = fixed[i + 1..].iter().find(|(_, p)| p == port) {
            return Err(EmulatorError::InvalidArgument(format!(
                "the {first} and {second} listeners are both given port {port}"
            )));
        }
    }
    Ok(())
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
