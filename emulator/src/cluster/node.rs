//! One cluster node: a cluster-mode redis-server with its internal TLS, and the gate in front
//! of it.

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{Announce, ClusterEmulator, cluster_error};
use crate::error::EmulatorError;
use crate::faults::{CounterCells, FaultState};
use crate::gate;
use crate::identity::Registry;
use crate::net::free_port;
use crate::redis_server::{RedisConfig, RedisServer};
use crate::shared::{Shared, random_hex};

/// One node: its redis-server (inside its gate's shared state) and its gate.
pub(super) struct Node {
    pub(super) shared: Arc<Shared>,
    pub(super) gate_addr: SocketAddr,
    pub(super) bus_port: u16,
    /// redis-server's own TLS port: the node's port on the cluster bus and for replicas.
    pub(super) tls_port: u16,
    pub(super) announced_host: String,
    pub(super) id: String,
}

/// redis-server's own TLS files (bus and replication links), in the cluster's directory.
const INTERNAL_CA: &str = "internal-ca.pem";
const INTERNAL_CERT: &str = "internal.pem";
const INTERNAL_KEY: &str = "internal.key";

impl ClusterEmulator {
    /// Writes the PEM files of the TLS between the redis-servers (cluster bus and replication).
    pub(super) fn write_internal_tls(&self) -> Result<(), EmulatorError> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let tls = crate::pki::InternalTls::generate()?;
        for (name, pem) in [
            (INTERNAL_CA, &tls.ca_pem),
            (INTERNAL_CERT, &tls.cert_pem),
            (INTERNAL_KEY, &tls.key_pem),
        ] {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(self.dir.path().join(name))
                .map_err(|e| EmulatorError::io("writing the internal TLS files", e))?;
            f.write_all(pem.as_bytes())
                .map_err(|e| EmulatorError::io("writing the internal TLS files", e))?;
        }
        Ok(())
    }

    /// Starts one more redis-server in cluster mode, not yet part of the cluster, and its gate.
    pub(super) async fn spawn_node(&mut self) -> Result<usize, EmulatorError> {
        let i = self.nodes.len();
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| EmulatorError::io("binding a node gate listener", e))?;
        let gate_addr = listener
            .local_addr()
            .map_err(|e| EmulatorError::io("reading a listener address", e))?;
        let node_dir = self.dir.path().join(format!("node-{i}"));
        std::fs::create_dir_all(&node_dir)
            .map_err(|e| EmulatorError::io("creating a node directory", e))?;
        let announced_host = match self.announce {
            Announce::Gates => "127.0.0.1".to_string(),
            Announce::InternalNames => format!("node-{i}.internal.invalid"),
        };
        let (server, config, bus_port, tls_port) = start_node(
            &self.binary,
            self.dir.path(),
            &node_dir,
            &self.password,
            gate_addr.port(),
            self.announce,
            &announced_host,
        )
        .await?;
        let base = self.identity.shared_state();
        let shared = Arc::new(node_shared(base, config, server, &self.shutdown));
        self.tasks.spawn(gate::run(
            listener,
            Some(self.identity.gate_acceptor()),
            shared.clone(),
        ));
        self.nodes.push(Node {
            shared,
            gate_addr,
            bus_port,
            tls_port,
            announced_host,
            id: String::new(),
        });
        Ok(i)
    }
}

/// Starts one cluster-mode redis-server; returns it, its configuration, its bus port and its
/// TLS port.
async fn start_node(
    binary: &std::path::Path,
    cluster_dir: &std::path::Path,
    dir: &std::path::Path,
    password: &SecretString,
    gate_port: u16,
    announce: Announce,
    announced_host: &str,
) -> Result<(RedisServer, RedisConfig, u16, u16), EmulatorError> {
    let mut last = None;
    for _ in 0..5 {
        let port = free_port()?;
        let bus_port = free_port()?;
        let tls_port = free_port()?;
        if bus_port == port || tls_port == port || tls_port == bus_port {
            continue;
        }
        // Clients reach the node through its gate, over a plain connection from the gate, so
        // the node tells them the plain-connection port it announces (`cluster-announce-port`:
        // the gate's). Its bus and replication links run over TLS between the redis-servers
        // themselves (`cluster-announce-tls-port`), as Azure's internal links do.
        let file = |name: &str| cluster_dir.join(name).display().to_string();
        let mut extra = format!(
            "cluster-enabled yes\ncluster-config-file nodes.conf\ncluster-node-timeout 2000\n\
             cluster-require-full-coverage no\ncluster-port {bus_port}\n\
             cluster-announce-ip 127.0.0.1\ncluster-announce-port {gate_port}\n\
             cluster-announce-tls-port {tls_port}\ncluster-announce-bus-port {bus_port}\n\
             tls-port {tls_port}\ntls-cert-file \"{}\"\ntls-key-file \"{}\"\n\
             tls-ca-cert-file \"{}\"\ntls-auth-clients no\ntls-cluster yes\n\
             tls-replication yes\n",
            file(INTERNAL_CERT),
            file(INTERNAL_KEY),
            file(INTERNAL_CA),
        );
        match announce {
            Announce::Gates => extra.push_str("cluster-preferred-endpoint-type ip\n"),
            Announce::InternalNames => extra.push_str(&format!(
                "cluster-announce-hostname {announced_host}\ncluster-preferred-endpoint-type hostname\n"
            )),
        }
        let config = RedisConfig {
            binary: binary.to_path_buf(),
            port,
            dir: dir.to_path_buf(),
            password: password.clone(),
            extra,
            replication: true,
        };
        match RedisServer::start(&config).await {
            Ok(server) => return Ok((server, config, bus_port, tls_port)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| cluster_error("a cluster node could not start")))
}

/// The gate state of one node: the identity emulator's signing key and access key, the node's
/// own redis-server, counters and faults.
fn node_shared(
    base: &Shared,
    redis_config: RedisConfig,
    server: RedisServer,
    shutdown: &CancellationToken,
) -> Shared {
    Shared {
        key: base.key.clone(),
        registry: Mutex::new(Registry::new(base.registry().tenant_id.clone())),
        token_lifetime_ms: AtomicU64::new(base.token_lifetime().as_millis() as u64),
        access_key: Arc::clone(&base.access_key),
        access_key_enabled: Arc::clone(&base.access_key_enabled),
        identity_header: base.identity_header.clone(),
        internal_password: redis_config.password.clone(),
        wrong_password: format!("wrong-{}", random_hex(8)),
        counters: CounterCells::default(),
        faults: FaultState::default(),
        shutdown: shutdown.child_token(),
        limits: base.limits,
        auth_delay: base.auth_delay,
        idle_timeout: base.idle_timeout,
        dir: redis_config.dir.clone(),
        redis_config,
        redis: Mutex::new(Some(server)),
        redis_restart: tokio::sync::Mutex::new(()),
        authority: base.authority().to_string(),
        federation_issuer: base.federation_issuer().to_string(),
    }
}
