//! The cluster emulator: nodes behind gates, announced addresses, slot migration, restarts.
//! Commands go through the gates with the `redis` crate (none here needs raw RESP).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use azure_redis_emulator::{Announce, ClusterEmulator, Emulator};
use common::{
    bounded, error_line, init, query, redis_client_at, redis_connection,
    unauthenticated_redis_client_at,
};
use redis::aio::MultiplexedConnection;
use redis::{FromRedisValue as _, Value};

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

/// A connection to node `node`'s gate, authenticated as the system identity (the connection
/// fails unless `AUTH <oid> <token>` is accepted).
async fn authed(cluster: &ClusterEmulator, node: usize) -> MultiplexedConnection {
    let emu = cluster.identity();
    let token = emu.mint_token(&emu.system_identity(), Duration::from_secs(60));
    let port = cluster.gate_addrs()[node].port();
    let client = redis_client_at(port, ca_pem(cluster), &token.oid, token.secret());
    redis_connection(&client).await
}

/// A connection to the gate at `addr` that has not authenticated.
async fn unauthenticated(cluster: &ClusterEmulator, addr: SocketAddr) -> MultiplexedConnection {
    redis_connection(&unauthenticated_redis_client_at(
        addr.port(),
        ca_pem(cluster),
    ))
    .await
}

fn ca_pem(cluster: &ClusterEmulator) -> Vec<u8> {
    cluster.identity().ca_pem().as_bytes().to_vec()
}

/// The `(host, port)` of each slot range's primary in a `CLUSTER SLOTS` reply.
fn slot_owners(reply: &Value) -> Vec<(String, i64)> {
    let Value::Array(ranges) = reply else {
        panic!("CLUSTER SLOTS answers an array: {reply:?}");
    };
    ranges
        .iter()
        .map(|range| match range {
            Value::Array(items) => match &items[2] {
                Value::Array(node) => (
                    String::from_redis_value_ref(&node[0]).expect("host"),
                    match node[1] {
                        Value::Int(port) => port,
                        ref other => panic!("port {other:?}"),
                    },
                ),
                other => panic!("node {other:?}"),
            },
            other => panic!("range {other:?}"),
        })
        .collect()
}

/// `CLUSTER SLOTS` on `conn`.
async fn cluster_slots(conn: &mut MultiplexedConnection) -> Value {
    query(conn, &["CLUSTER", "SLOTS"])
        .await
        .expect("CLUSTER SLOTS")
}

/// The error reply `args` get on `conn`, as the server sent it.
async fn refused(conn: &mut MultiplexedConnection, args: &[&str]) -> String {
    match query::<Value>(conn, args).await {
        Ok(reply) => panic!("{args:?} answered {reply:?}"),
        Err(e) => error_line(&e),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_announce_gates_or_internal_names_and_gates_check_tokens() {
    init();
    bounded(async {
        for announce in [Announce::Gates, Announce::InternalNames] {
            let cluster = cluster(announce).await;
            let mut anonymous = unauthenticated(&cluster, cluster.seed_addr()).await;
            let e = refused(&mut anonymous, &["CLUSTER", "SLOTS"]).await;
            assert!(e.starts_with("NOAUTH"), "{e}");
            for node in 0..3 {
                let mut conn = authed(&cluster, node).await;
                let mut owners = slot_owners(&cluster_slots(&mut conn).await);
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
                let nodes: String = query(&mut conn, &["CLUSTER", "NODES"])
                    .await
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
            query(&mut conn, &["SET", "foo", "bar"]).await,
            Ok(Value::Okay)
        );
        cluster.migrate_slot(12182, 0).await.expect("migrates");
        assert_eq!(cluster.owner_of(12182).await.expect("owner"), 0);
        let moved = refused(&mut conn, &["GET", "foo"]).await;
        let port = cluster.gate_addrs()[0].port();
        assert_eq!(moved, format!("MOVED 12182 node-0.internal.invalid:{port}"));
        // The third node agrees as soon as the migration returns.
        let moved = refused(&mut authed(&cluster, 1).await, &["GET", "foo"]).await;
        assert_eq!(moved, format!("MOVED 12182 node-0.internal.invalid:{port}"));
        let mut new_owner = authed(&cluster, 0).await;
        assert_eq!(
            query(&mut new_owner, &["GET", "foo"]).await,
            Ok(Value::BulkString(b"bar".to_vec())),
            "the key moved with its slot"
        );

        cluster.restart_node(1).await.expect("restarts");
        let mut restarted = authed(&cluster, 1).await;
        let info: String = query(&mut restarted, &["CLUSTER", "INFO"])
            .await
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
        let info: String = query(&mut conn, &["CLUSTER", "INFO"]).await.expect("info");
        assert!(info.contains("cluster_known_nodes:4\r"), "{info}");
        let owners = slot_owners(&cluster_slots(&mut conn).await);
        assert!(
            !owners.iter().any(|(_, p)| *p == i64::from(port)),
            "{owners:?}"
        );

        // "foo" (slot 12182) moves to it with its key; its gate checks tokens like the others.
        let mut old_owner = authed(&cluster, 2).await;
        assert_eq!(
            query(&mut old_owner, &["SET", "foo", "bar"]).await,
            Ok(Value::Okay)
        );
        cluster.migrate_slot(12182, added).await.expect("migrates");
        assert_eq!(cluster.owner_of(12182).await.expect("owner"), added);
        assert_eq!(
            query(&mut conn, &["GET", "foo"]).await,
            Ok(Value::BulkString(b"bar".to_vec()))
        );
        let mut anonymous = unauthenticated(&cluster, cluster.gate_addrs()[3]).await;
        let noauth = refused(&mut anonymous, &["GET", "foo"]).await;
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
        let Value::Array(ranges) = cluster_slots(&mut primary).await else {
            panic!("CLUSTER SLOTS answers an array");
        };
        let gates = cluster.gate_addrs();
        for range in &ranges {
            let Value::Array(items) = range else {
                panic!("range {range:?}");
            };
            let ports: Vec<u16> = items[2..]
                .iter()
                .map(|node| match node {
                    Value::Array(node) => match node[1] {
                        Value::Int(port) => u16::try_from(port).expect("port"),
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
        let e = refused(&mut primary, &["PSYNC", "?", "-1"]).await;
        assert!(e.starts_with("NOPERM"), "{e}");

        // "foo" (slot 12182) is node 2's; its replica, node 5, takes over with the key.
        assert_eq!(
            query(&mut primary, &["SET", "foo", "bar"]).await,
            Ok(Value::Okay)
        );
        assert_eq!(
            query(&mut primary, &["WAIT", "1", "5000"]).await,
            Ok(Value::Int(1))
        );
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
        let moved = refused(&mut primary, &["GET", "foo"]).await;
        let port = gates[5].port();
        assert_eq!(moved, format!("MOVED 12182 node-5.internal.invalid:{port}"));
        let mut new_primary = authed(&cluster, 5).await;
        assert_eq!(
            query(&mut new_primary, &["GET", "foo"]).await,
            Ok(Value::BulkString(b"bar".to_vec()))
        );

        // Node 5 dies; its replica, node 2 again, takes over by itself with the data it had
        // replicated, and node 5 rejoins as its replica.
        assert_eq!(
            query(&mut new_primary, &["SET", "foo", "baz"]).await,
            Ok(Value::Okay)
        );
        assert_eq!(
            query(&mut new_primary, &["WAIT", "1", "5000"]).await,
            Ok(Value::Int(1))
        );
        assert_eq!(cluster.crash_primary(5).await.expect("crashes"), 2);
        assert_eq!(cluster.primary_of(5).await.expect("primary"), Some(2));
        assert_eq!(cluster.owner_of(12182).await.expect("owner"), 2);
        assert_eq!(
            query(&mut authed(&cluster, 2).await, &["GET", "foo"]).await,
            Ok(Value::BulkString(b"baz".to_vec()))
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
            let mut conn = unauthenticated(&cluster, addr).await;
            let old = refused(
                &mut conn,
                &["AUTH", secrecy::ExposeSecret::expose_secret(&old)],
            )
            .await;
            assert!(old.starts_with("WRONGPASS"), "{addr}: {old}");
            let accepted = query(&mut conn, &["AUTH", "n3w+k3y/rotated=="]).await;
            assert_eq!(accepted, Ok(Value::Okay), "{addr}");
        }
        emu.set_access_keys_enabled(false);
        let mut conn = unauthenticated(&cluster, cluster.gate_addrs()[2]).await;
        refused(&mut conn, &["AUTH", "n3w+k3y/rotated=="]).await;
        cluster.shutdown().await;
    })
    .await;
}
