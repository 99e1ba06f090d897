//! Forming the cluster (slots, `CLUSTER MEET`, replicas), growing it, and reading what the
//! nodes think of it: who serves a slot, who replicates whom, whether it is stable.

use std::time::Duration;

use redis::{FromRedisValue as _, Value};

use super::{CLUSTER_SLOTS, ClusterEmulator, cluster_error, no_node};
use crate::error::EmulatorError;

/// For each node id, the id of its primary (`None` for a primary).
type Roles = std::collections::BTreeMap<String, Option<String>>;

impl ClusterEmulator {
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
        self.nodes[i].id = self.node_cmd::<String>(i, &["CLUSTER", "MYID"]).await?;
        self.meet(i).await?;
        self.wait_until_stable(Duration::from_secs(30)).await?;
        tracing::info!(node = i, gate = %self.nodes[i].gate_addr, "cluster node added");
        Ok(i)
    }

    /// Introduces node `i` to node 0.
    async fn meet(&self, i: usize) -> Result<(), EmulatorError> {
        let port = self.nodes[i].tls_port.to_string();
        let bus = self.nodes[i].bus_port.to_string();
        self.node_cmd::<()>(0, &["CLUSTER", "MEET", "127.0.0.1", &port, &bus])
            .await
    }

    /// Assigns the slots to the first `primaries` nodes, introduces the nodes to each other,
    /// makes the others replicas (in turn, `replicas` of each primary) and waits until all agree.
    pub(super) async fn form(&mut self, primaries: usize) -> Result<(), EmulatorError> {
        let n = self.nodes.len();
        for i in 0..n {
            if i < primaries {
                let (first, last) = slot_range(i, primaries);
                self.node_cmd::<()>(
                    i,
                    &[
                        "CLUSTER",
                        "ADDSLOTSRANGE",
                        &first.to_string(),
                        &last.to_string(),
                    ],
                )
                .await?;
            }
            let id = self.node_cmd::<String>(i, &["CLUSTER", "MYID"]).await?;
            self.nodes[i].id = id;
            // A distinct config epoch per primary before they meet, as `redis-cli --cluster
            // create` does. Left at 0, the nodes resolve their epoch collisions by gossip after
            // they report `cluster_state:ok`, and a slot migration that runs into an unresolved
            // collision can leave the old owner's claim winning on the new owner.
            self.node_cmd::<()>(i, &["CLUSTER", "SET-CONFIG-EPOCH", &(i + 1).to_string()])
                .await?;
        }
        for i in 1..n {
            self.meet(i).await?;
        }
        self.wait_until_stable(Duration::from_secs(30)).await?;
        if n > primaries {
            for i in primaries..n {
                let primary = self.nodes[(i - primaries) % primaries].id.clone();
                self.node_cmd::<()>(i, &["CLUSTER", "REPLICATE", &primary])
                    .await?;
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
                let info = self
                    .node_cmd::<String>(i, &["CLUSTER", "INFO"])
                    .await
                    .unwrap_or_default();
                let ok = info.contains("cluster_state:ok")
                    && info.contains(&format!("cluster_known_nodes:{n}\r"))
                    && info.contains(&format!("cluster_slots_ok:{CLUSTER_SLOTS}\r"));
                let replication = self
                    .node_cmd::<String>(i, &["INFO", "replication"])
                    .await
                    .unwrap_or_default();
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

    /// The node that serves `slot` now, by index (asked of node 0).
    pub async fn owner_of(&self, slot: u16) -> Result<usize, EmulatorError> {
        self.owner_seen_by(0, slot).await
    }

    /// The node that serves `slot` in node `i`'s view, by index.
    pub(super) async fn owner_seen_by(&self, i: usize, slot: u16) -> Result<usize, EmulatorError> {
        let nodes = self.node_cmd::<String>(i, &["CLUSTER", "NODES"]).await?;
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
        let nodes = self.node_cmd::<String>(i, &["CLUSTER", "NODES"]).await?;
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
        let Value::Array(ranges) = self.node_cmd(i, &["CLUSTER", "SLOTS"]).await? else {
            return Err(cluster_error("CLUSTER SLOTS did not answer an array"));
        };
        let mut ids = std::collections::HashSet::new();
        for range in ranges {
            let Value::Array(items) = range else { continue };
            for node in items.into_iter().skip(2) {
                if let Value::Array(fields) = node
                    && let Some(id) = fields.into_iter().nth(2)
                {
                    let id = String::from_redis_value(id)
                        .map_err(|e| cluster_error(format!("a node id in CLUSTER SLOTS: {e}")))?;
                    ids.insert(id);
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
}

/// The first and last slot of node `i` of `n`.
fn slot_range(i: usize, n: usize) -> (u16, u16) {
    let total = usize::from(CLUSTER_SLOTS);
    let first = total * i / n;
    let last = total * (i + 1) / n - 1;
    (first as u16, last as u16)
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
}
