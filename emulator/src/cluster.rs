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

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::error::EmulatorError;
use crate::faults::{CounterCells, Counters, FaultState};
use crate::identity::Registry;
use crate::redis_server::{self, RedisConfig, RedisServer};
use crate::shared::{Shared, random_hex};
use crate::{Emulator, EmulatorBuilder, gate, resp};

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
    /// binary, ...), as for a single-node [`Emulator`].
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

/// One node: its redis-server (inside its gate's shared state) and its gate.
struct Node {
    shared: Arc<Shared>,
    gate_addr: SocketAddr,
    bus_port: u16,
    /// redis-server's own TLS port: the node's port on the cluster bus and for replicas.
    tls_port: u16,
    announced_host: String,
    id: String,
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

fn free_port() -> Result<u16, EmulatorError> {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0))
        .map_err(|e| EmulatorError::io("finding a free port", e))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| EmulatorError::io("finding a free port", e))
}

fn cluster_error(message: impl Into<String>) -> EmulatorError {
    EmulatorError::RedisServer(message.into())
}

fn no_node(i: usize) -> EmulatorError {
    EmulatorError::InvalidArgument(format!("no node {i}"))
}

/// For each node id, the id of its primary (`None` for a primary).
type Roles = std::collections::BTreeMap<String, Option<String>>;

/// redis-server's own TLS files (bus and replication links), in the cluster's directory.
const INTERNAL_CA: &str = "internal-ca.pem";
const INTERNAL_CERT: &str = "internal.pem";
const INTERNAL_KEY: &str = "internal.key";

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

    /// Writes the PEM files of the TLS between the redis-servers (cluster bus and replication).
    fn write_internal_tls(&self) -> Result<(), EmulatorError> {
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
    async fn spawn_node(&mut self) -> Result<usize, EmulatorError> {
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

    /// Adds an empty primary (no slots yet) behind a gate of its own, as scaling out does, and
    /// waits until every node knows it; returns its index. Move slots to it with
    /// [`ClusterEmulator::migrate_slot`].
    pub async fn add_node(&mut self) -> Result<usize, EmulatorError> {
        if self.nodes.len() - self.replica_nodes >= 16 {
            return Err(EmulatorError::InvalidArgument(
                "a cluster has at most 16 primaries".into(),
            ));
        }
        let i = self.spawn_node().await?;
        self.nodes[i].id = self.node_cmd(i, &["CLUSTER", "MYID"]).await?.text()?;
        self.meet(i).await?;
        self.wait_until_stable(Duration::from_secs(30)).await?;
        tracing::info!(node = i, gate = %self.nodes[i].gate_addr, "cluster node added");
        Ok(i)
    }

    /// Introduces node `i` to node 0.
    async fn meet(&self, i: usize) -> Result<(), EmulatorError> {
        let port = self.nodes[i].tls_port.to_string();
        let bus = self.nodes[i].bus_port.to_string();
        self.node_cmd(0, &["CLUSTER", "MEET", "127.0.0.1", &port, &bus])
            .await?
            .ok()
    }

    /// Assigns the slots to the first `primaries` nodes, introduces the nodes to each other,
    /// makes the others replicas (in turn, `replicas` of each primary) and waits until all agree.
    async fn form(&mut self, primaries: usize) -> Result<(), EmulatorError> {
        let n = self.nodes.len();
        for i in 0..n {
            if i < primaries {
                let (first, last) = slot_range(i, primaries);
                self.node_cmd(
                    i,
                    &[
                        "CLUSTER",
                        "ADDSLOTSRANGE",
                        &first.to_string(),
                        &last.to_string(),
                    ],
                )
                .await?
                .ok()?;
            }
            let id = self.node_cmd(i, &["CLUSTER", "MYID"]).await?.text()?;
            self.nodes[i].id = id;
            // A distinct config epoch per primary before they meet, as `redis-cli --cluster
            // create` does. Left at 0, the nodes resolve their epoch collisions by gossip after
            // they report `cluster_state:ok`, and a slot migration that runs into an unresolved
            // collision can leave the old owner's claim winning on the new owner.
            self.node_cmd(i, &["CLUSTER", "SET-CONFIG-EPOCH", &(i + 1).to_string()])
                .await?
                .ok()?;
        }
        for i in 1..n {
            self.meet(i).await?;
        }
        self.wait_until_stable(Duration::from_secs(30)).await?;
        if n > primaries {
            for i in primaries..n {
                let primary = self.nodes[(i - primaries) % primaries].id.clone();
                self.node_cmd(i, &["CLUSTER", "REPLICATE", &primary])
                    .await?
                    .ok()?;
            }
            self.wait_until_stable(Duration::from_secs(30)).await?;
        }
        Ok(())
    }

    /// Waits until every node reports `cluster_state:ok`, knows every other node and sees every
    /// slot assigned, every replica's link to its primary is up, and all nodes agree on who
    /// replicates whom, with no node suspected of failure.
    pub async fn wait_until_stable(&self, timeout: Duration) -> Result<(), EmulatorError> {
        let n = self.nodes.len();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let mut unstable = None;
            let mut views = Vec::with_capacity(n);
            for i in 0..n {
                let info = match self.node_cmd(i, &["CLUSTER", "INFO"]).await {
                    Ok(reply) => reply.text().unwrap_or_default(),
                    Err(_) => String::new(),
                };
                let ok = info.contains("cluster_state:ok")
                    && info.contains(&format!("cluster_known_nodes:{n}\r"))
                    && info.contains(&format!("cluster_slots_ok:{CLUSTER_SLOTS}\r"));
                let replication = match self.node_cmd(i, &["INFO", "replication"]).await {
                    Ok(reply) => reply.text().unwrap_or_default(),
                    Err(_) => String::new(),
                };
                let linked = replication.contains("role:master")
                    || replication.contains("master_link_status:up");
                let view = match self.view_of(i).await {
                    Ok((roles, true)) => Some(roles),
                    _ => None,
                };
                // A replica is listed to clients once its primary has heard of its replication
                // offset.
                let listed = match &view {
                    Some(roles) => {
                        let listed = self.listed_in_slots(i).await.unwrap_or_default();
                        roles
                            .iter()
                            .filter(|(_, primary)| primary.is_some())
                            .all(|(id, _)| listed.contains(id))
                    }
                    None => false,
                };
                let why = if !ok {
                    Some("its cluster state, nodes or slots are not all ok")
                } else if !linked {
                    Some("its link to its primary is down")
                } else if view.is_none() {
                    Some("it suspects a node of failure")
                } else if !listed {
                    Some("its CLUSTER SLOTS does not list every replica yet")
                } else {
                    None
                };
                if let (None, Some(why)) = (&unstable, why) {
                    unstable = Some(format!("node {i}: {why}"));
                }
                views.push(view);
            }
            if unstable.is_none() && views.windows(2).any(|w| w[0] != w[1]) {
                unstable = Some("the nodes disagree on who replicates whom".to_string());
            }
            let Some(why) = unstable else {
                return Ok(());
            };
            if tokio::time::Instant::now() > deadline {
                return Err(cluster_error(format!(
                    "the cluster did not become stable within {timeout:?} ({why})"
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends one command straight to node `i`'s redis-server (bypassing its gate).
    async fn node_cmd(&self, i: usize, args: &[&str]) -> Result<Reply, EmulatorError> {
        let node = self.nodes.get(i).ok_or_else(|| no_node(i))?;
        direct_command(node.shared.redis_config.port, &self.password, args).await
    }

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
            .map(|n| SocketAddr::from(([127, 0, 0, 1], n.shared.redis_config.port)))
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

    /// The node that serves `slot` now, by index (asked of node 0).
    pub async fn owner_of(&self, slot: u16) -> Result<usize, EmulatorError> {
        self.owner_seen_by(0, slot).await
    }

    /// The node that serves `slot` in node `i`'s view, by index.
    async fn owner_seen_by(&self, i: usize, slot: u16) -> Result<usize, EmulatorError> {
        let nodes = self.node_cmd(i, &["CLUSTER", "NODES"]).await?.text()?;
        for line in nodes.lines() {
            let mut fields = line.split(' ');
            let id = fields.next().unwrap_or_default();
            let serves = fields.skip(7).any(|range| match range.split_once('-') {
                Some((a, b)) => match (a.parse::<u16>(), b.parse::<u16>()) {
                    (Ok(a), Ok(b)) => (a..=b).contains(&slot),
                    _ => false,
                },
                None => range.parse::<u16>() == Ok(slot),
            });
            if serves && let Some(i) = self.nodes.iter().position(|n| n.id == id) {
                return Ok(i);
            }
        }
        Err(cluster_error(format!("no node serves slot {slot}")))
    }

    /// Node `i`'s view of the roles (for each node id, the id of its primary, `None` for a
    /// primary), and whether it finds every node healthy (none suspected of failure, failed,
    /// or still in handshake).
    async fn view_of(&self, i: usize) -> Result<(Roles, bool), EmulatorError> {
        let nodes = self.node_cmd(i, &["CLUSTER", "NODES"]).await?.text()?;
        let mut roles = Roles::new();
        let mut healthy = true;
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            let [id, _addr, flags, primary, ..] = fields[..] else {
                continue;
            };
            healthy &= !flags
                .split(',')
                .any(|f| matches!(f, "fail" | "fail?" | "handshake" | "noaddr"));
            let primary = (primary != "-").then(|| primary.to_string());
            roles.insert(id.to_string(), primary);
        }
        Ok((roles, healthy))
    }

    /// The ids of the nodes that node `i` lists in `CLUSTER SLOTS`.
    async fn listed_in_slots(
        &self,
        i: usize,
    ) -> Result<std::collections::HashSet<String>, EmulatorError> {
        let Reply::Array(ranges) = self.node_cmd(i, &["CLUSTER", "SLOTS"]).await? else {
            return Err(cluster_error("CLUSTER SLOTS did not answer an array"));
        };
        let mut ids = std::collections::HashSet::new();
        for range in ranges {
            let Reply::Array(items) = range else { continue };
            for node in items.into_iter().skip(2) {
                if let Reply::Array(fields) = node
                    && let Some(id) = fields.into_iter().nth(2)
                {
                    ids.insert(id.text()?);
                }
            }
        }
        Ok(ids)
    }

    /// The primary node `i` replicates, by index; `None` when node `i` is a primary itself
    /// (asked of node `i`).
    pub async fn primary_of(&self, i: usize) -> Result<Option<usize>, EmulatorError> {
        let id = self.node_id(i).ok_or_else(|| no_node(i))?.to_string();
        let (roles, _) = self.view_of(i).await?;
        Ok(roles
            .get(&id)
            .cloned()
            .flatten()
            .and_then(|primary| self.nodes.iter().position(|n| n.id == primary)))
    }

    /// The replicas of node `primary`, by index (asked of node `primary`).
    pub async fn replicas_of(&self, primary: usize) -> Result<Vec<usize>, EmulatorError> {
        let id = self.node_id(primary).ok_or_else(|| no_node(primary))?;
        let (roles, _) = self.view_of(primary).await?;
        Ok(self
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| roles.get(&n.id).cloned().flatten().as_deref() == Some(id))
            .map(|(i, _)| i)
            .collect())
    }

    /// Promotes replica `replica` with `CLUSTER FAILOVER`, as a planned failover does (the old
    /// primary stops taking writes until the replica has caught up, then becomes its replica
    /// and answers `MOVED` for its slots), and waits until every node agrees.
    pub async fn failover(&self, replica: usize) -> Result<(), EmulatorError> {
        if self.primary_of(replica).await?.is_none() {
            return Err(EmulatorError::InvalidArgument(format!(
                "node {replica} is not a replica"
            )));
        }
        tracing::warn!(node = replica, "fault: failing over to a replica");
        self.node_cmd(replica, &["CLUSTER", "FAILOVER"])
            .await?
            .ok()?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while self.primary_of(replica).await.ok() != Some(None) {
            if tokio::time::Instant::now() > deadline {
                return Err(cluster_error(format!(
                    "node {replica} did not take over within 30 s"
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.wait_until_stable(Duration::from_secs(30)).await
    }

    /// Moves `slot` with its keys to node `to`, as resharding does: `CLUSTER SETSLOT
    /// IMPORTING/MIGRATING`, `MIGRATE` of every key, then `CLUSTER SETSLOT NODE` on every node,
    /// and returns once every node names `to` as the owner. Clients that still send the slot's
    /// keys to the old owner get `MOVED`.
    pub async fn migrate_slot(&self, slot: u16, to: usize) -> Result<(), EmulatorError> {
        let from = self.owner_of(slot).await?;
        if from == to {
            return Ok(());
        }
        let to_node = self
            .nodes
            .get(to)
            .ok_or_else(|| EmulatorError::InvalidArgument(format!("no node {to}")))?;
        let s = slot.to_string();
        let (from_id, to_id) = (self.nodes[from].id.clone(), to_node.id.clone());
        self.node_cmd(to, &["CLUSTER", "SETSLOT", &s, "IMPORTING", &from_id])
            .await?
            .ok()?;
        self.node_cmd(from, &["CLUSTER", "SETSLOT", &s, "MIGRATING", &to_id])
            .await?
            .ok()?;
        // MIGRATE connects over TLS, like the bus, since `tls-cluster` is on.
        let to_port = to_node.tls_port.to_string();
        loop {
            let keys = self
                .node_cmd(from, &["CLUSTER", "GETKEYSINSLOT", &s, "100"])
                .await?
                .strings()?;
            if keys.is_empty() {
                break;
            }
            let password = self.password.expose_secret().to_string();
            let mut args = vec![
                "MIGRATE",
                "127.0.0.1",
                &to_port,
                "",
                "0",
                "5000",
                "AUTH",
                &password,
                "KEYS",
            ];
            args.extend(keys.iter().map(String::as_str));
            self.node_cmd(from, &args).await?.ok()?;
        }
        // The new owner first, then the old one, then the rest, as the cluster tutorial says.
        let order: Vec<usize> = [to, from]
            .into_iter()
            .chain((0..self.nodes.len()).filter(|&i| i != to && i != from))
            .collect();
        for &i in &order {
            self.node_cmd(i, &["CLUSTER", "SETSLOT", &s, "NODE", &to_id])
                .await?
                .ok()?;
        }
        self.wait_until_owned(slot, to, &order).await?;
        tracing::info!(slot, from, to, "slot migrated");
        Ok(())
    }

    /// Waits until every node names `to` as the owner of `slot`, telling a node that still
    /// names another one again (`CLUSTER SETSLOT NODE` is what redis-cli repeats as well).
    async fn wait_until_owned(
        &self,
        slot: u16,
        to: usize,
        nodes: &[usize],
    ) -> Result<(), EmulatorError> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let (s, to_id) = (slot.to_string(), self.nodes[to].id.clone());
        loop {
            let mut agreed = true;
            for &i in nodes {
                if self.owner_seen_by(i, slot).await.ok() != Some(to) {
                    agreed = false;
                    self.node_cmd(i, &["CLUSTER", "SETSLOT", &s, "NODE", &to_id])
                        .await?
                        .ok()?;
                }
            }
            if agreed {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(cluster_error(format!(
                    "the nodes did not agree that node {to} serves slot {slot}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills node `i`'s redis-server and starts it again on the same port with the same
    /// cluster configuration (its data is lost; its gate connections close), then waits until
    /// the cluster is stable.
    pub async fn restart_node(&self, i: usize) -> Result<(), EmulatorError> {
        let node = self
            .nodes
            .get(i)
            .ok_or_else(|| EmulatorError::InvalidArgument(format!("no node {i}")))?;
        tracing::warn!(node = i, "fault: restarting a cluster node");
        redis_server::restart(&node.shared).await?;
        self.wait_until_stable(Duration::from_secs(30)).await
    }

    /// Kills primary `primary`'s redis-server, as when its host dies, and returns the index of
    /// the replica that takes over by itself once the other nodes have found the primary
    /// failing (the node timeout is 2 s). Then starts the old primary again, which rejoins as a
    /// replica of the new one, and waits until the cluster is stable. Writes the old primary
    /// acknowledged but had not replicated yet are lost, as in any Redis failover.
    pub async fn crash_primary(&self, primary: usize) -> Result<usize, EmulatorError> {
        let node = self.nodes.get(primary).ok_or_else(|| no_node(primary))?;
        let replicas = self.replicas_of(primary).await?;
        if replicas.is_empty() || self.primary_of(primary).await?.is_some() {
            return Err(EmulatorError::InvalidArgument(format!(
                "node {primary} is not a primary with a replica"
            )));
        }
        tracing::warn!(node = primary, "fault: a primary dies");
        redis_server::stop(&node.shared).await?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let promoted = loop {
            let mut promoted = None;
            for &r in &replicas {
                if self.primary_of(r).await.ok() == Some(None) {
                    promoted = Some(r);
                }
            }
            if let Some(r) = promoted {
                break r;
            }
            if tokio::time::Instant::now() > deadline {
                let _ = redis_server::start(&node.shared).await;
                return Err(cluster_error(format!(
                    "no replica of node {primary} took over within 30 s"
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        tracing::warn!(node = promoted, "a replica took over");
        redis_server::start(&node.shared).await?;
        self.wait_until_stable(Duration::from_secs(30)).await?;
        Ok(promoted)
    }

    /// Closes every client connection of every node gate now (no reply).
    pub fn drop_all_connections(&self) {
        for node in &self.nodes {
            crate::Faults {
                shared: node.shared.clone(),
            }
            .drop_all_connections();
        }
    }

    /// Fault injection on node `i`'s gate alone (refused AUTHs, dropped connections, stalls;
    /// prefer [`ClusterEmulator::restart_node`] to [`Faults::restart_redis`](crate::Faults::restart_redis),
    /// as it waits for the cluster to be stable again).
    pub fn node_faults(&self, i: usize) -> Option<crate::Faults> {
        self.nodes.get(i).map(|n| crate::Faults {
            shared: n.shared.clone(),
        })
    }

    /// Counters of node `i`'s gate.
    pub fn node_counters(&self, i: usize) -> Option<Counters> {
        self.nodes.get(i).map(|n| n.shared.counters.snapshot())
    }

    /// The node gates' counters summed, plus the identity endpoints' (tokens minted, token
    /// requests).
    pub fn counters(&self) -> Counters {
        let mut sum = self.identity.counters();
        for node in &self.nodes {
            let c = node.shared.counters.snapshot();
            sum.auth_accepted += c.auth_accepted;
            sum.auth_rejected += c.auth_rejected;
            sum.closed_at_expiry += c.closed_at_expiry;
            sum.closed_idle += c.closed_idle;
            sum.connections_accepted += c.connections_accepted;
            sum.connections_open += c.connections_open;
            sum.protocol_errors += c.protocol_errors;
            sum.closed_unauthenticated += c.closed_unauthenticated;
            sum.half_opened += c.half_opened;
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
            .filter_map(|n| n.shared.take_redis())
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
            node.shared.shutdown.cancel();
            if let Some(mut server) = node.shared.take_redis() {
                server.stop();
            }
        }
    }
}

/// The first and last slot of node `i` of `n`.
fn slot_range(i: usize, n: usize) -> (u16, u16) {
    let total = usize::from(CLUSTER_SLOTS);
    let first = total * i / n;
    let last = total * (i + 1) / n - 1;
    (first as u16, last as u16)
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

/// A reply from a direct connection.
#[derive(Debug)]
enum Reply {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Reply>),
}

impl Reply {
    fn ok(self) -> Result<(), EmulatorError> {
        match self {
            Reply::Error(e) => Err(cluster_error(e)),
            _ => Ok(()),
        }
    }

    fn text(self) -> Result<String, EmulatorError> {
        match self {
            Reply::Status(s) => Ok(s),
            Reply::Bulk(Some(b)) => Ok(String::from_utf8_lossy(&b).into_owned()),
            Reply::Int(i) => Ok(i.to_string()),
            Reply::Error(e) => Err(cluster_error(e)),
            other => Err(cluster_error(format!("unexpected reply {other:?}"))),
        }
    }

    fn strings(self) -> Result<Vec<String>, EmulatorError> {
        match self {
            Reply::Array(items) => items.into_iter().map(Reply::text).collect(),
            Reply::Error(e) => Err(cluster_error(e)),
            other => Err(cluster_error(format!("unexpected reply {other:?}"))),
        }
    }
}

/// Reads one reply from `buf[*pos..]`; `None` when incomplete.
fn parse_reply(buf: &[u8], pos: &mut usize) -> Option<Reply> {
    let line_end = buf.get(*pos..)?.windows(2).position(|w| w == b"\r\n")? + *pos;
    let kind = *buf.get(*pos)?;
    let line = String::from_utf8_lossy(&buf[*pos + 1..line_end]).into_owned();
    *pos = line_end + 2;
    match kind {
        b'+' => Some(Reply::Status(line)),
        b'-' => Some(Reply::Error(line)),
        b':' => Some(Reply::Int(line.parse().unwrap_or_default())),
        b'$' => {
            let len: i64 = line.parse().ok()?;
            if len < 0 {
                return Some(Reply::Bulk(None));
            }
            let len = usize::try_from(len).ok()?;
            let data = buf.get(*pos..*pos + len)?.to_vec();
            buf.get(*pos + len..*pos + len + 2)?;
            *pos += len + 2;
            Some(Reply::Bulk(Some(data)))
        }
        b'*' => {
            let len: i64 = line.parse().ok()?;
            let mut items = Vec::new();
            for _ in 0..len.max(0) {
                items.push(parse_reply(buf, pos)?);
            }
            Some(Reply::Array(items))
        }
        _ => Some(Reply::Error(format!("unknown reply type {kind}"))),
    }
}

/// Sends `AUTH` and one command to the redis-server on `port`; returns the command's reply.
async fn direct_command(
    port: u16,
    password: &SecretString,
    args: &[&str],
) -> Result<Reply, EmulatorError> {
    let exchange = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| EmulatorError::io("connecting to a cluster node", e))?;
        let mut out =
            resp::encode_command([b"AUTH".as_slice(), password.expose_secret().as_bytes()]);
        out.extend(resp::encode_command(args.iter().map(|a| a.as_bytes())));
        stream
            .write_all(&out)
            .await
            .map_err(|e| EmulatorError::io("writing to a cluster node", e))?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            let n = stream
                .read(&mut chunk)
                .await
                .map_err(|e| EmulatorError::io("reading from a cluster node", e))?;
            if n == 0 {
                return Err(cluster_error("a cluster node closed the connection"));
            }
            buf.extend_from_slice(&chunk[..n]);
            let mut pos = 0;
            if let Some(auth) = parse_reply(&buf, &mut pos) {
                auth.ok()?;
                if let Some(reply) = parse_reply(&buf, &mut pos) {
                    return Ok(reply);
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| cluster_error("a cluster node did not answer within 10 s"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_spread_without_gaps() {
        for n in 1..=16 {
            let mut next = 0u32;
            for i in 0..n {
                let (first, last) = slot_range(i, n);
                assert_eq!(u32::from(first), next);
                assert!(last >= first);
                next = u32::from(last) + 1;
            }
            assert_eq!(next, u32::from(CLUSTER_SLOTS));
        }
    }

    #[test]
    fn replies_parse_and_incomplete_input_waits() {
        let input = b"*2\r\n$3\r\nabc\r\n:5\r\n+OK\r\n";
        let mut pos = 0;
        let Some(Reply::Array(items)) = parse_reply(input, &mut pos) else {
            panic!("an array");
        };
        assert_eq!(items.len(), 2);
        assert!(matches!(parse_reply(input, &mut pos), Some(Reply::Status(s)) if s == "OK"));
        for cut in 0..input.len() - 5 {
            let mut pos = 0;
            assert!(parse_reply(&input[..cut], &mut pos).is_none(), "cut {cut}");
        }
        let mut pos = 0;
        assert!(parse_reply(b"$-1\r\n", &mut pos).is_some());
        let mut pos = 0;
        assert!(parse_reply(b"$99999999999999999999\r\n", &mut pos).is_none());
    }
}
