//! Every auth type end to end, configured only through the variables the emulator exports as
//! Service Connector (and the AKS webhook, and App Service) would: each parent test re-runs this
//! test binary as a child process with those variables, and the child does what an application
//! does, `Cache::from_env()?.connect().await`, then keeps writing through token refreshes. The
//! credentials read the process environment, which a test must not change while other tests
//! run, hence the child processes.

use std::time::{Duration, Instant};

use azure_redis_connect::AzureRedisConfig;
use azure_redis_connect::redis::AsyncCommands;
use azure_redis_emulator::{Emulator, ServiceConnectorAuth};

mod common;

use common::{AnyCache as Cache, bounded};

const MODE: &str = "IDENTITIES_TEST_CHILD";

/// Runs the child with the emulator's variables for `kind`; returns whether it passed, and its
/// output.
async fn run_child(emu: &Emulator, kind: ServiceConnectorAuth) -> (bool, String) {
    let out = bounded(
        Duration::from_secs(60),
        common::child_command(emu, kind, MODE).output(),
    )
    .await
    .expect("child ran");
    common::child_outcome(&out)
}

/// The child: an application configured by its environment alone.
#[tokio::test]
#[ignore = "run by the other tests in a child process"]
async fn child() {
    let Ok(kind) = std::env::var(MODE) else {
        return;
    };
    let cache = Cache::from_env().expect("the exported variables configure the cache");
    let config = cache.connection_config().expect("resolves");
    println!(
        "child {kind}: auth {} endpoint {}",
        config.auth, config.endpoint
    );
    let mut redis = cache
        .connect()
        .await
        .expect("connects with the default builder");
    let entra = config.auth.uses_entra_id();
    let run_for = if entra {
        Duration::from_secs(7)
    } else {
        Duration::from_millis(500)
    };
    let started = Instant::now();
    let mut ok = 0u64;
    while started.elapsed() < run_for {
        let n: i64 = redis
            .incr(format!("identities:{kind}"), 1)
            .await
            .expect("INCR succeeds");
        ok += 1;
        assert_eq!(n as u64, ok, "each INCR lands once");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let status = redis.status();
    println!("child {kind}: {ok} commands, {status:?}");
    if entra {
        // 3 s tokens over 7 s: at least two refreshes, each re-AUTHed on the same connection.
        assert!(status.reauths >= 2, "{status:?}");
        assert_eq!(status.reconnects, 0, "{status:?}");
    }
}

async fn check(kind: ServiceConnectorAuth) {
    bounded(Duration::from_secs(90), async {
        let emu = common::emulator(Duration::from_secs(3)).await;
        let (passed, output) = run_child(&emu, kind).await;
        let counters = emu.counters();
        assert!(
            passed,
            "child for {kind} failed; gate {counters:?}:\n{output}"
        );
        assert_eq!(counters.closed_at_expiry, 0, "{counters:?}");
        assert!(counters.auth_accepted >= 1, "{counters:?}");
        emu.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn system_assigned_managed_identity() {
    check(ServiceConnectorAuth::SystemIdentity).await;
}

#[tokio::test]
async fn user_assigned_managed_identity() {
    check(ServiceConnectorAuth::UserIdentity).await;
}

#[tokio::test]
async fn service_principal() {
    check(ServiceConnectorAuth::ServicePrincipal).await;
}

#[tokio::test]
async fn workload_identity() {
    check(ServiceConnectorAuth::WorkloadIdentity).await;
}

#[tokio::test]
async fn access_key_split_variables() {
    check(ServiceConnectorAuth::AccessKey).await;
}

#[tokio::test]
async fn connection_string_stackexchange_syntax() {
    check(ServiceConnectorAuth::ConnectionStringStackExchange).await;
}

#[tokio::test]
async fn connection_string_url_syntax() {
    check(ServiceConnectorAuth::ConnectionStringUrl).await;
}
