//! One cluster node: a cluster-mode redis-server with its internal TLS, and the gate in front
//! of it.

use std::net::SocketAddr;
use std::sync::Arc;

use secrecy::SecretString;
use tokio::net::TcpListener;

use super::{Announce, ClusterEmulator, cluster_error};
use crate::error::EmulatorError;
use crate::gate::{self, GateState};
use crate::net::free_port;
use crate::redis_server::{RedisConfig, RedisServer};

/// One node: its redis-server (inside its gate's state) and its gate.
pub(super) struct Node {
    pub(super) gate: Arc<GateState>,
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
        let gate = Arc::new(GateState::new(
            self.identity.identity_state().clone(),
            self.identity.gate_settings(),
            config,
            server,
            self.shutdown.child_token(),
        ));
        self.tasks.spawn(gate::run(
            listener,
            Some(self.identity.gate_acceptor()),
            gate.clone(),
        ));
        self.nodes.push(Node {
            gate,
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
