//! A Redis Cluster of real redis-server processes, each node (primary or replica) behind a gate
//! of its own, like Azure Managed Redis with the OSS cluster policy.
//!
//! The nodes run in cluster mode on loopback with an internal password; slots are spread evenly
//! with `CLUSTER ADDSLOTSRANGE`, the nodes introduced with `CLUSTER MEET` and replicas attached
//! with `CLUSTER REPLICATE`, all from Rust. The links between the servers (bus, `MIGRATE`,
//! replication) run over TLS among the servers themselves, bypassing the gates. Each
//! node announces either its gate's address (`127.0.0.1:<gate port>`) or, like Azure Managed
//! Redis, a name clients cannot reach (`node-<i>.internal.invalid:<gate port>`: it never
//! resolves, so a client that does not map it back to the public host fails before any packet
//! leaves). Every gate checks tokens exactly as the single-node gate does.
//!
//! This module holds the handle; the rest is split by concern: `builder` (settings and
//! start), `node` (one redis-server and its gate), `topology` (forming the cluster and
//! reading its state), `operations` (failover, resharding, restarts, a crash) and `direct`
//! (commands sent straight to a node, bypassing its gate).

mod builder;
mod direct;
mod node;
mod operations;
mod topology;

use std::net::SocketAddr;
use std::time::Duration;

use secrecy::SecretString;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::Emulator;
use crate::counters::Counters;
use crate::error::EmulatorError;
use crate::redis_server::RedisServer;

pub use builder::ClusterEmulatorBuilder;
use node::Node;

/// Number of hash slots of a Redis Cluster.
pub const CLUSTER_SLOTS: u16 = 16384;

/// What the nodes announce to clients (in `CLUSTER SLOTS`, `CLUSTER NODES` and `MOVED`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Announce {
    /// The gates' own addresses, `127.0.0.1:<gate port>`: clients connect as told.
    Gates,
    /// Names that do not resolve, `node-<i>.internal.invalid:<gate port>`, as Azure Managed
    /// Redis announces internal addresses: clients must map them to the public host name,
    /// keeping the port.
    InternalNames,
}

/// A running cluster. Dropping it stops every gate and kills every redis-server.
///
/// ```no_run
/// # async fn demo() -> Result<(), azure_redis_emulator::EmulatorError> {
/// use std::time::Duration;
/// use azure_redis_emulator::{Announce, ClusterEmulator, Emulator};
///
/// let cluster = ClusterEmulator::builder()
///     .emulator(Emulator::builder().token_lifetime(Duration::from_secs(3)))
///     .announce(Announce::InternalNames)
///     .start()
///     .await?;
/// // Connect to `localhost:{cluster.seed_addr().port()}` with TLS (CA: cluster.identity().ca_pem())
/// // and map `node-<i>.internal.invalid:<port>` back to `localhost:<port>`.
/// println!("{:?}", cluster.announced_addrs());
/// cluster.shutdown().await;
/// # Ok(()) }
/// ```
pub struct ClusterEmulator {
    identity: Emulator,
    nodes: Vec<Node>,
    tasks: JoinSet<()>,
    shutdown: CancellationToken,
    password: SecretString,
    announce: Announce,
    /// Replica nodes started with the cluster (their number stays when roles swap; nodes
    /// added later are primaries).
    replica_nodes: usize,
    binary: std::path::PathBuf,
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for ClusterEmulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterEmulator")
            .field("gates", &self.gate_addrs())
            .field("announced", &self.announced_addrs())
            .finish_non_exhaustive()
    }
}

fn cluster_error(message: impl Into<String>) -> EmulatorError {
    EmulatorError::RedisServer(message.into())
}

fn no_node(i: usize) -> EmulatorError {
    EmulatorError::InvalidArgument(format!("no node {i}"))
}

impl ClusterEmulator {
    /// The single-node emulator that serves the identity endpoints and mints tokens; its CA
    /// ([`Emulator::ca_pem`]) also signs every node gate's certificate (for `localhost` and
    /// `127.0.0.1`).
    pub fn identity(&self) -> &Emulator {
        &self.identity
    }

    /// The gate of node 0: the address to start from (the "public endpoint").
    pub fn seed_addr(&self) -> SocketAddr {
        self.nodes[0].gate_addr
    }

    /// Every node's gate address, by node index.
    pub fn gate_addrs(&self) -> Vec<SocketAddr> {
        self.nodes.iter().map(|n| n.gate_addr).collect()
    }

    /// What the nodes announce, `(host, port)` by node index.
    pub fn announced_addrs(&self) -> Vec<(String, u16)> {
        self.nodes
            .iter()
            .map(|n| (n.announced_host.clone(), n.gate_addr.port()))
            .collect()
    }

    /// What the nodes announce.
    pub fn announce(&self) -> Announce {
        self.announce
    }

    /// Every node's redis-server address (behind its gate; the password is
    /// [`ClusterEmulator::redis_password`]).
    pub fn redis_addrs(&self) -> Vec<SocketAddr> {
        self.nodes
            .iter()
            .map(|n| SocketAddr::from(([127, 0, 0, 1], n.gate.redis_config.port)))
            .collect()
    }

    /// The nodes' internal password, for direct access that bypasses the gates.
    pub fn redis_password(&self) -> &SecretString {
        &self.password
    }

    /// The cluster node id of node `i`.
    pub fn node_id(&self, i: usize) -> Option<&str> {
        self.nodes.get(i).map(|n| n.id.as_str())
    }

    /// Closes every client connection of every node gate now (no reply).
    pub fn drop_all_connections(&self) {
        for node in &self.nodes {
            crate::Faults {
                gate: node.gate.clone(),
                identity: None,
            }
            .drop_all_connections();
        }
    }

    /// Fault injection on node `i`'s gate alone (refused AUTHs, dropped connections, stalls;
    /// prefer [`ClusterEmulator::restart_node`] to [`Faults::restart_redis`](crate::Faults::restart_redis),
    /// as it waits for the cluster to be stable again).
    pub fn node_faults(&self, i: usize) -> Option<crate::Faults> {
        self.nodes.get(i).map(|n| crate::Faults {
            gate: n.gate.clone(),
            identity: None,
        })
    }

    /// Counters of node `i`'s gate.
    pub fn node_counters(&self, i: usize) -> Option<Counters> {
        self.nodes.get(i).map(|n| n.gate.counters.snapshot())
    }

    /// The node gates' counters summed, plus the identity endpoints' (tokens minted, token
    /// requests).
    pub fn counters(&self) -> Counters {
        let mut sum = self.identity.counters();
        for node in &self.nodes {
            node.gate.counters.add_to(&mut sum);
        }
        sum
    }

    /// Stops every gate, kills every redis-server and the identity emulator, waiting for all
    /// of it.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        let mut tasks = std::mem::take(&mut self.tasks);
        if tokio::time::timeout(Duration::from_secs(5), async {
            while tasks.join_next().await.is_some() {}
        })
        .await
        .is_err()
        {
            tasks.abort_all();
        }
        let servers: Vec<RedisServer> = self
            .nodes
            .iter()
            .filter_map(|n| n.gate.take_redis())
            .collect();
        let _ = tokio::task::spawn_blocking(move || {
            for mut server in servers {
                server.stop();
            }
        })
        .await;
        tracing::info!("cluster stopped");
    }
}

impl Drop for ClusterEmulator {
    fn drop(&mut self) {
        self.shutdown.cancel();
        self.tasks.abort_all();
        for node in &self.nodes {
            node.gate.shutdown.cancel();
            if let Some(mut server) = node.gate.take_redis() {
                server.stop();
            }
        }
    }
}
