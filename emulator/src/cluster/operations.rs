//! What happens to a running cluster: planned failover, slot migration, a node restart and a
//! primary that dies.

use std::time::Duration;

use secrecy::ExposeSecret as _;

use super::{ClusterEmulator, cluster_error, no_node};
use crate::error::EmulatorError;
use crate::redis_server;

impl ClusterEmulator {
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
        self.node_cmd::<()>(replica, &["CLUSTER", "FAILOVER"])
            .await?;
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
        self.node_cmd::<()>(to, &["CLUSTER", "SETSLOT", &s, "IMPORTING", &from_id])
            .await?;
        self.node_cmd::<()>(from, &["CLUSTER", "SETSLOT", &s, "MIGRATING", &to_id])
            .await?;
        // MIGRATE connects over TLS, like the bus, since `tls-cluster` is on.
        let to_port = to_node.tls_port.to_string();
        loop {
            // Keys are bytes: passed to MIGRATE as they came, UTF-8 or not.
            let keys = self
                .node_cmd::<Vec<Vec<u8>>>(from, &["CLUSTER", "GETKEYSINSLOT", &s, "100"])
                .await?;
            if keys.is_empty() {
                break;
            }
            let password = self.password.expose_secret();
            let mut args: Vec<&[u8]> = [
                "MIGRATE",
                "127.0.0.1",
                &to_port,
                "",
                "0",
                "5000",
                "AUTH",
                password,
                "KEYS",
            ]
            .map(str::as_bytes)
            .to_vec();
            args.extend(keys.iter().map(Vec::as_slice));
            self.node_cmd::<()>(from, &args).await?;
        }
        // The new owner first, then the old one, then the rest, as the cluster tutorial says.
        let order: Vec<usize> = [to, from]
            .into_iter()
            .chain((0..self.nodes.len()).filter(|&i| i != to && i != from))
            .collect();
        for &i in &order {
            self.node_cmd::<()>(i, &["CLUSTER", "SETSLOT", &s, "NODE", &to_id])
                .await?;
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
                    self.node_cmd::<()>(i, &["CLUSTER", "SETSLOT", &s, "NODE", &to_id])
                        .await?;
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
        redis_server::restart(&node.gate).await?;
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
        redis_server::stop(&node.gate).await?;
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
                let _ = redis_server::start(&node.gate).await;
                return Err(cluster_error(format!(
                    "no replica of node {primary} took over within 30 s"
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        tracing::warn!(node = promoted, "a replica took over");
        redis_server::start(&node.gate).await?;
        self.wait_until_stable(Duration::from_secs(30)).await?;
        Ok(promoted)
    }
}
