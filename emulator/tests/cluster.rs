//! The cluster emulator: nodes behind gates, announced addresses, slot migration, restarts.

mod common;

use std::time::Duration;

use azure_redis_emulator::{Announce, ClusterEmulator, Emulator};
use common::{RawConn, Reply, bounded, init};

async fn cluster(announce: Announce) -> ClusterEmulator {
    with_replicas(announce, 0).await
}

async fn with_replicas(announce: Announce, replicas: usize) -> ClusterEmulator {
    ClusterEmulator::builder()
        .emulator(Emulator::builder().token_lifetime(Duration::from_secs(60)))
        .announce(announce)
        .replicas(replicas)
        .start()
        .await
        .expect("the cluster starts (is redis-server installed?)")
}

async fn authed(cluster: &ClusterEmulator, node: usize) -> RawConn {
    let emu = cluster.identity();
    let token = emu.mint_token(&emu.system_identity(), Duration::from_secs(60));
    let mut conn = RawConn::tls_at(emu, cluster.gate_addrs()[node]).await;
    let reply = conn.cmd_str(&["AUTH", &token.oid, token.secret()]).await;
    assert_eq!(reply, Reply::Simple("OK".into()));
    conn
}

/// The `(host, port)` of each slot range's primary in a `CLUSTER SLOTS` reply.
fn slot_owners(reply: &Reply) -> Vec<(String, i64)> {
    let Reply::Array(Some(ranges)) = reply else {
        panic!("CLUSTER SLOTS answers an array: {reply:?}");
    };
    ranges
        .iter()
        .map(|range| match range {
            Reply::Array(Some(items)) => match &items[2] {
                Reply::Array(Some(node)) => (
                    node[0].bulk_str().expect("host"),
                    match node[1] {
                        Reply::Int(port) => port,
                        ref other => panic!("port {other:?}"),
                    },
                ),
                other => panic!("node {other:?}"),
            },
            other => panic!("range {other:?}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_announce_gates_or_internal_names_and_gates_check_tokens() {
    init();
    bounded(async {
        for announce in [Announce::Gates, Announce::InternalNames] {
            let cluster = cluster(announce).await;
            let mut unauthenticated =
                RawConn::tls_at(cluster.identity(), cluster.seed_addr()).await;
            let Reply::Error(e) = unauthenticated.cmd_str(&["CLUSTER", "SLOTS"]).await else {
                panic!("NOAUTH before AUTH");
            };
            assert!(e.starts_with("NOAUTH"), "{e}");
            for node in 0..3 {
                let mut conn = authed(&cluster, node).await;
                let mut owners = slot_owners(&conn.cmd_str(&["CLUSTER", "SLOTS"]).await);
                owners.sort();
                let mut announced: Vec<(String, i64)> = cluster
                    .announced_addrs()
                    .into_iter()
                    .map(|(h, p)| (h, i64::from(p)))
                    .collect();
                announced.sort();
                assert_eq!(owners, announced, "{announce:?}");
                // Each primary has a config epoch of its own from the start, so no epoch
                // collision is left to resolve by gossip when a test migrates a slot.
                let nodes = conn
                    .cmd_str(&["CLUSTER", "NODES"])
                    .await
                    .bulk_str()
                    .expect("nodes");
                let mut epochs: Vec<&str> = nodes
                    .lines()
                    .filter_map(|line| line.split(' ').nth(6))
                    .collect();
                epochs.sort_unstable();
                assert_eq!(epochs, ["1", "2", "3"], "node {node}: {nodes}");
            }
            cluster.shutdown().await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migrated_slot_answers_moved_and_a_restarted_node_rejoins() {
    init();
    bounded(async {
        let cluster = cluster(Announce::InternalNames).await;
        // "foo" hashes to slot 12182, served by the last of 3 nodes.
        assert_eq!(cluster.owner_of(12182).await.expect("owner"), 2);
        let mut conn = authed(&cluster, 2).await;
        assert_eq!(
            conn.cmd_str(&["SET", "foo", "bar"]).await,
            Reply::Simple("OK".into())
        );
        cluster.migrate_slot(12182, 0).await.expect("migrates");
        assert_eq!(cluster.owner_of(12182).await.expect("owner"), 0);
        let Reply::Error(moved) = conn.cmd_str(&["GET", "foo"]).await else {
            panic!("MOVED after the migration");
        };
        let port = cluster.gate_addrs()[0].port();
        assert_eq!(moved, format!("MOVED 12182 node-0.internal.invalid:{port}"));
        // The third node agrees as soon as the migration returns.
        let Reply::Error(moved) = authed(&cluster, 1).await.cmd_str(&["GET", "foo"]).await else {
            panic!("MOVED from the third node");
        };
        assert_eq!(moved, format!("MOVED 12182 node-0.internal.invalid:{port}"));
        let mut new_owner = authed(&cluster, 0).await;
        assert_eq!(
            new_owner.cmd_str(&["GET", "foo"]).await,
            Reply::Bulk(Some(b"bar".to_vec())),
            "the key moved with its slot"
        );

        cluster.restart_node(1).await.expect("restarts");
        let mut restarted = authed(&cluster, 1).await;
        let info = restarted
            .cmd_str(&["CLUSTER", "INFO"])
            .await
            .bulk_str()
            .expect("info");
        assert!(info.contains("cluster_state:ok"), "{info}");
        assert_eq!(cluster.owner_of(12182).await.expect("owner"), 0);
        assert!(cluster.counters().auth_accepted >= 3);
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_added_node_joins_behind_its_own_gate_and_takes_a_slot() {
    init();
    bounded(async {
        let mut cluster = cluster(Announce::InternalNames).await;
        let added = cluster.add_node().await.expect("a fourth primary joins");
        assert_eq!(added, 3);
        assert_eq!(cluster.gate_addrs().len(), 4);
        let port = cluster.gate_addrs()[3].port();
        assert_eq!(
            cluster.announced_addrs()[3],
            ("node-3.internal.invalid".to_string(), port)
        );
        // Every node knows the new one; it serves no slot yet.
        let mut conn = authed(&cluster, 3).await;
        let info = conn
            .cmd_str(&["CLUSTER", "INFO"])
            .await
            .bulk_str()
            .expect("info");
        assert!(info.contains("cluster_known_nodes:4\r"), "{info}");
        let owners = slot_owners(&conn.cmd_str(&["CLUSTER", "SLOTS"]).await);
        assert!(
            !owners.iter().any(|(_, p)| *p == i64::from(port)),
            "{owners:?}"
        );

        // "foo" (slot 12182) moves to it with its key; its gate checks tokens like the others.
        let mut old_owner = authed(&cluster, 2).await;
        assert_eq!(
            old_owner.cmd_str(&["SET", "foo", "bar"]).await,
            Reply::Simple("OK".into())
        );
        cluster.migrate_slot(12182, added).await.expect("migrates");
        assert_eq!(cluster.owner_of(12182).await.expect("owner"), added);
        assert_eq!(
            conn.cmd_str(&["GET", "foo"]).await,
            Reply::Bulk(Some(b"bar".to_vec()))
        );
        let mut anonymous = RawConn::tls_at(cluster.identity(), cluster.gate_addrs()[3]).await;
        let Reply::Error(noauth) = anonymous.cmd_str(&["GET", "foo"]).await else {
            panic!("NOAUTH before AUTH");
        };
        assert!(noauth.starts_with("NOAUTH"), "{noauth}");
        assert!(cluster.node_counters(3).expect("node 3").auth_accepted >= 1);
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_replicate_behind_their_gates_and_take_over_when_told_or_when_a_primary_dies() {
    init();
    bounded(async {
        let cluster = with_replicas(Announce::InternalNames, 1).await;
        assert_eq!(cluster.gate_addrs().len(), 6);
        for primary in 0..3 {
            assert_eq!(
                cluster.replicas_of(primary).await.expect("replicas"),
                [primary + 3]
            );
            assert_eq!(
                cluster.primary_of(primary + 3).await.expect("primary"),
                Some(primary)
            );
            assert_eq!(cluster.primary_of(primary).await.expect("primary"), None);
        }
        // Clients see each replica at its gate's port, after its primary.
        let mut primary = authed(&cluster, 2).await;
        let Reply::Array(Some(ranges)) = primary.cmd_str(&["CLUSTER", "SLOTS"]).await else {
            panic!("CLUSTER SLOTS answers an array");
        };
        let gates = cluster.gate_addrs();
        for range in &ranges {
            let Reply::Array(Some(items)) = range else {
                panic!("range {range:?}");
            };
            let ports: Vec<u16> = items[2..]
                .iter()
                .map(|node| match node {
                    Reply::Array(Some(node)) => match node[1] {
                        Reply::Int(port) => u16::try_from(port).expect("port"),
                        ref other => panic!("port {other:?}"),
                    },
                    other => panic!("node {other:?}"),
                })
                .collect();
            let owner = gates
                .iter()
                .position(|g| g.port() == ports[0])
                .expect("a primary's gate");
            assert_eq!(ports, [gates[owner].port(), gates[owner + 3].port()]);
        }
        // Replication runs between the redis-servers; a client cannot replicate through a gate.
        let Reply::Error(e) = primary.cmd_str(&["PSYNC", "?", "-1"]).await else {
            panic!("PSYNC refused");
        };
        assert!(e.starts_with("NOPERM"), "{e}");

        // "foo" (slot 12182) is node 2's; its replica, node 5, takes over with the key.
        assert_eq!(
            primary.cmd_str(&["SET", "foo", "bar"]).await,
            Reply::Simple("OK".into())
        );
        assert_eq!(primary.cmd_str(&["WAIT", "1", "5000"]).await, Reply::Int(1));
        let Err(not_a_replica) = cluster.failover(0).await else {
            panic!("node 0 is a primary");
        };
        assert!(
            not_a_replica
                .to_string()
                .contains("node 0 is not a replica"),
            "{not_a_replica}"
        );
        cluster.failover(5).await.expect("fails over");
        assert_eq!(cluster.primary_of(5).await.expect("primary"), None);
        assert_eq!(cluster.primary_of(2).await.expect("primary"), Some(5));
        assert_eq!(cluster.owner_of(12182).await.expect("owner"), 5);
        let Reply::Error(moved) = primary.cmd_str(&["GET", "foo"]).await else {
            panic!("MOVED from the old primary");
        };
        let port = gates[5].port();
        assert_eq!(moved, format!("MOVED 12182 node-5.internal.invalid:{port}"));
        let mut new_primary = authed(&cluster, 5).await;
        assert_eq!(
            new_primary.cmd_str(&["GET", "foo"]).await,
            Reply::Bulk(Some(b"bar".to_vec()))
        );

        // Node 5 dies; its replica, node 2 again, takes over by itself with the data it had
        // replicated, and node 5 rejoins as its replica.
        assert_eq!(
            new_primary.cmd_str(&["SET", "foo", "baz"]).await,
            Reply::Simple("OK".into())
        );
        assert_eq!(
            new_primary.cmd_str(&["WAIT", "1", "5000"]).await,
            Reply::Int(1)
        );
        assert_eq!(cluster.crash_primary(5).await.expect("crashes"), 2);
        assert_eq!(cluster.primary_of(5).await.expect("primary"), Some(2));
        assert_eq!(cluster.owner_of(12182).await.expect("owner"), 2);
        assert_eq!(
            authed(&cluster, 2).await.cmd_str(&["GET", "foo"]).await,
            Reply::Bulk(Some(b"baz".to_vec()))
        );
        cluster.shutdown().await;
    })
    .await;
}

/// An access key set on the cluster's identity emulator is the key of every node's gate (the
/// nodes share the identity state instead of copying it at start).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_access_key_reaches_every_node_gate() {
    init();
    bounded(async {
        let cluster = cluster(Announce::Gates).await;
        let emu = cluster.identity();
        let old = emu.access_key();
        emu.set_access_key("n3w+k3y/rotated==");
        for addr in cluster.gate_addrs() {
            let mut conn = RawConn::tls_at(emu, addr).await;
            let refused = conn
                .cmd_str(&["AUTH", secrecy::ExposeSecret::expose_secret(&old)])
                .await;
            assert!(
                matches!(refused, Reply::Error(ref e) if e.starts_with("WRONGPASS")),
                "{addr}: {refused:?}"
            );
            let accepted = conn.cmd_str(&["AUTH", "n3w+k3y/rotated=="]).await;
            assert_eq!(accepted, Reply::Simple("OK".into()), "{addr}");
        }
        emu.set_access_keys_enabled(false);
        let mut conn = RawConn::tls_at(emu, cluster.gate_addrs()[2]).await;
        let refused = conn.cmd_str(&["AUTH", "n3w+k3y/rotated=="]).await;
        assert!(matches!(refused, Reply::Error(_)), "{refused:?}");
        cluster.shutdown().await;
    })
    .await;
}
