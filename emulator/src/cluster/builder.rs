//! The cluster's settings and its start: the identity emulator, the nodes, then the cluster.

use secrecy::SecretString;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{Announce, ClusterEmulator};
use crate::EmulatorBuilder;
use crate::error::EmulatorError;
use crate::random::random_hex;
use crate::redis_server;

/// Configures and starts a [`ClusterEmulator`].
#[derive(Clone, Debug)]
pub struct ClusterEmulatorBuilder {
    base: EmulatorBuilder,
    primaries: usize,
    replicas: usize,
    announce: Announce,
}

impl ClusterEmulatorBuilder {
    /// Settings of the identity endpoints and gates (token lifetime, access key, redis-server
    /// binary, ...), as for a single-node [`Emulator`](crate::Emulator).
    pub fn emulator(mut self, base: EmulatorBuilder) -> Self {
        self.base = base;
        self
    }

    /// Number of primaries (default 3, at least 1, at most 16).
    pub fn primaries(mut self, n: usize) -> Self {
        self.primaries = n;
        self
    }

    /// Replicas per primary (default 0, at most 2). Each replica is a node of its own behind a
    /// gate of its own, announced like the primaries; it replicates from its primary over a
    /// TLS link between the redis-servers that bypasses the gates, as Azure's internal links
    /// do, and [`ClusterEmulator::failover`] promotes it.
    pub fn replicas(mut self, n: usize) -> Self {
        self.replicas = n;
        self
    }

    /// What the nodes announce (default [`Announce::Gates`]).
    pub fn announce(mut self, announce: Announce) -> Self {
        self.announce = announce;
        self
    }

    /// Starts the identity endpoints, the nodes and their gates, and forms the cluster.
    pub async fn start(self) -> Result<ClusterEmulator, EmulatorError> {
        ClusterEmulator::start_with(self).await
    }
}

impl ClusterEmulator {
    /// A builder: 3 primaries announcing their gates' addresses.
    pub fn builder() -> ClusterEmulatorBuilder {
        ClusterEmulatorBuilder {
            base: EmulatorBuilder::default(),
            primaries: 3,
            replicas: 0,
            announce: Announce::Gates,
        }
    }

    async fn start_with(b: ClusterEmulatorBuilder) -> Result<Self, EmulatorError> {
        if !(1..=16).contains(&b.primaries) {
            return Err(EmulatorError::InvalidArgument(
                "a cluster has from 1 to 16 primaries".into(),
            ));
        }
        if b.replicas > 2 {
            return Err(EmulatorError::InvalidArgument(
                "a cluster has at most 2 replicas per primary".into(),
            ));
        }
        let redis_binary = b.base.redis_server_path();
        let identity = b.base.start().await?;
        let binary =
            redis_server::find_binary(&redis_binary).ok_or(EmulatorError::RedisServerNotFound)?;
        let dir = tempfile::Builder::new()
            .prefix("azure-redis-cluster-")
            .tempdir()
            .map_err(|e| EmulatorError::io("creating a temporary directory", e))?;
        let mut cluster = ClusterEmulator {
            identity,
            nodes: Vec::with_capacity(b.primaries),
            tasks: JoinSet::new(),
            shutdown: CancellationToken::new(),
            password: SecretString::from(random_hex(24)),
            replica_nodes: b.primaries * b.replicas,
            announce: b.announce,
            binary,
            dir,
        };
        cluster.write_internal_tls()?;
        for _ in 0..b.primaries * (1 + b.replicas) {
            cluster.spawn_node().await?;
        }
        cluster.form(b.primaries).await?;
        tracing::info!(gates = ?cluster.gate_addrs(), announced = ?cluster.announced_addrs(), "cluster started");
        Ok(cluster)
    }
}
