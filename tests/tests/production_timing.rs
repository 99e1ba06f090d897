//! The single-node handle at production-shaped timing, with its default settings: the default
//! [`RefreshPolicy`] on tokens of tens of seconds (ratios as for 1-hour tokens), a peer that
//! vanishes (half-open connections), and a health endpoint under many concurrent callers.
//!
//! Each test prints what it measured; the bounds asserted are the ones the README states.

use std::time::Duration;

use azure_redis_connect::ExposeSecret;
use azure_redis_connect::health::HealthReport;
use azure_redis_connect::redis;
use azure_redis_connect::token::RefreshPolicy;
use azure_redis_emulator::{Emulator, IdentityEndpoint, IdentityFault, ServiceConnectorAuth};
use tokio::time::Instant;

mod common;

use common::{bounded, builder, drive, emulator, recovery_after, until_expiry};

const TEST_TIMEOUT: Duration = Duration::from_secs(150);

/// An identity outage from before the refresh point until 5 s past expiry, with the default
/// policy on 40-second tokens: the token requests after expiry come about every second, no
/// connection is attempted with the expired token, and commands succeed again within 2 s of
/// the endpoint's return.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_outage_past_expiry_commands_recover_within_2_s_with_the_default_policy() {
    bounded(TEST_TIMEOUT, async {
        let emu = emulator(Duration::from_secs(40)).await;
        let redis = builder(&emu, ServiceConnectorAuth::ServicePrincipal)
            .refresh_policy(RefreshPolicy::default())
            .connect()
            .await
            .expect("connects");
        tokio::time::sleep(Duration::from_secs(2)).await;
        emu.faults()
            .identity_outage(IdentityEndpoint::All, IdentityFault::Http500, None);
        let expiry = Instant::now() + until_expiry(&redis.status().token);
        let back_at = expiry + Duration::from_secs(5);
        let load = {
            let redis = redis.clone();
            let run_for = back_at + Duration::from_secs(6) - Instant::now();
            tokio::spawn(async move { drive(redis, "timing:outage", 2, run_for).await })
        };

        // Once the gate has closed the expired connection (at the token's `exp`, up to a second
        // after the client's rounded-down expiry), nothing reaches it until the endpoint is
        // back: no AUTH with the expired token, no connection at all.
        tokio::time::sleep_until(expiry + Duration::from_millis(1500)).await;
        let during = emu.counters();
        let requests_at_expiry = redis.status().token.requests;
        tokio::time::sleep_until(back_at).await;
        let before_return = emu.counters();
        let requests_before_return = redis.status().token.requests;
        emu.faults().clear_identity_outage(IdentityEndpoint::All);
        let back = Instant::now();
        let outcomes = load.await.expect("load");

        assert!(during.closed_at_expiry >= 1, "{during:?}");
        assert_eq!(
            (
                before_return.auth_rejected,
                before_return.auth_accepted,
                before_return.connections_accepted
            ),
            (
                during.auth_rejected,
                during.auth_accepted,
                during.connections_accepted
            ),
            "connections or AUTHs while the token was expired: {during:?} -> {before_return:?}"
        );
        let retries = requests_before_return - requests_at_expiry;
        println!("token requests in the 3.5 s from expiry + 1.5 s: {retries}");
        assert!(
            (3..=8).contains(&retries),
            "{retries} token requests in 3.5 s"
        );

        let before_expiry = outcomes
            .iter()
            .filter(|o| o.ended + Duration::from_millis(250) < expiry);
        assert!(before_expiry.clone().count() > 20);
        assert!(
            before_expiry.clone().all(|o| o.error.is_none()),
            "a command failed before expiry"
        );
        let recovered = outcomes
            .iter()
            .find(|o| o.ended > back && o.error.is_none())
            .expect("commands succeed again after the endpoint is back");
        let recovery = recovered.ended - back;
        println!("first command succeeded {recovery:?} after the identity endpoint came back");
        assert!(
            recovery < Duration::from_secs(2),
            "recovery took {recovery:?}"
        );
        let after: Vec<_> = outcomes
            .iter()
            .filter(|o| o.started > recovered.ended)
            .collect();
        assert!(
            after.len() > 10 && after.iter().all(|o| o.error.is_none()),
            "failures after recovery"
        );
        assert!(redis.status().is_healthy(), "{:?}", redis.status());
        emu.shutdown().await;
    })
    .await;
}

/// Existing connections go half-open (the peer vanished: nothing answered, no FIN) while new
/// ones are served: with default settings the commands in flight fail with a timeout error, no
/// command waits longer than the response timeout, and commands succeed on a new connection
/// within 10 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_peer_costs_one_response_timeout_with_default_settings() {
    bounded(TEST_TIMEOUT, async {
        let emu = emulator(Duration::from_secs(300)).await;
        let redis = builder(&emu, ServiceConnectorAuth::ServicePrincipal)
            .refresh_policy(RefreshPolicy::default())
            .connect()
            .await
            .expect("connects");
        let load = {
            let redis = redis.clone();
            tokio::spawn(async move {
                drive(redis, "timing:half-open", 4, Duration::from_secs(16)).await
            })
        };
        tokio::time::sleep(Duration::from_secs(2)).await;
        emu.faults().half_open_existing();
        let vanished = Instant::now();
        let outcomes = load.await.expect("load");

        let response_timeout = azure_redis_connect::handle::DEFAULT_RESPONSE_TIMEOUT;
        let longest = outcomes.iter().map(|o| o.ended - o.started).max().unwrap();
        println!("longest command: {longest:?}");
        assert!(
            longest < response_timeout + Duration::from_millis(500),
            "a command waited {longest:?}"
        );
        let failed: Vec<_> = outcomes.iter().filter(|o| o.error.is_some()).collect();
        assert!(
            !failed.is_empty(),
            "no command was caught by the vanished peer"
        );
        for o in &failed {
            let error = o.error.as_ref().unwrap();
            assert!(error.is_timeout(), "not a timeout error: {error}");
            assert!(
                o.started >= vanished - Duration::from_millis(100),
                "failed before the fault: {error}"
            );
        }
        let recovery = recovery_after(&outcomes, vanished);
        println!(
            "{} commands failed; commands succeed again {recovery:?} after the peer vanished",
            failed.len()
        );
        assert!(
            recovery < Duration::from_secs(10),
            "recovery took {recovery:?}"
        );
        let status = redis.status();
        assert!(status.unresponsive_replaced >= 1, "{status:?}");
        assert_eq!(emu.counters().half_opened, 1, "{:?}", emu.counters());
        emu.shutdown().await;
    })
    .await;
}

/// `PING`s that reached redis-server, read from its own `INFO commandstats`.
async fn pings(emu: &Emulator) -> u64 {
    let url = format!(
        "redis://:{}@{}/",
        emu.redis_password().expose_secret(),
        emu.redis_addr()
    );
    let client = redis::Client::open(url).expect("redis-server URL");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("direct connection to redis-server");
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .expect("INFO");
    info.lines()
        .find_map(|line| line.strip_prefix("cmdstat_ping:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().expect("a count"))
}

/// Concurrent health checks share one `PING`, and a result is reused for the cache period;
/// during a stall every caller waits for the same `PING`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_cost_one_ping_whatever_their_number() {
    bounded(TEST_TIMEOUT, async {
        let emu = emulator(Duration::from_secs(300)).await;
        let redis = builder(&emu, ServiceConnectorAuth::ServicePrincipal)
            .health_cache(Duration::from_secs(30))
            .keepalive(None)
            .connect()
            .await
            .expect("connects");
        let check_many = |n: usize| {
            let redis = redis.clone();
            async move {
                let checks: Vec<_> = (0..n)
                    .map(|_| {
                        let redis = redis.clone();
                        tokio::spawn(async move { HealthReport::check(&redis).await })
                    })
                    .collect();
                let mut reports = Vec::new();
                for check in checks {
                    reports.push(check.await.expect("health check"));
                }
                reports
            }
        };
        let before = pings(&emu).await;
        let reports = check_many(64).await;
        assert!(reports.iter().all(|r| r.healthy), "{:?}", reports[0]);
        let reports = check_many(64).await;
        assert!(reports.iter().all(|r| r.healthy));
        assert_eq!(
            pings(&emu).await - before,
            1,
            "128 checks within the cache period"
        );

        // A handle without a cache period still shares one PING among concurrent callers.
        let uncached = builder(&emu, ServiceConnectorAuth::ServicePrincipal)
            .health_cache(Duration::ZERO)
            .keepalive(None)
            .connect()
            .await
            .expect("connects");
        emu.faults().stall_gate(Duration::from_secs(3));
        let before = pings(&emu).await;
        let started = Instant::now();
        let checks: Vec<_> = (0..200)
            .map(|_| {
                let uncached = uncached.clone();
                tokio::spawn(async move { HealthReport::check(&uncached).await })
            })
            .collect();
        for check in checks {
            let report = check.await.expect("health check");
            assert!(!report.healthy, "a stalled PING reported healthy");
        }
        let waited = started.elapsed();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let stalled_pings = pings(&emu).await - before;
        println!("200 concurrent checks during a stall: {waited:?}, {stalled_pings} PING(s)");
        assert_eq!(stalled_pings, 1, "PINGs that reached Redis after the stall");
        drop(uncached);
        emu.shutdown().await;
    })
    .await;
}

/// The refresh task and the supervisor end with the last handle: nothing asks the identity
/// endpoint any more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_last_handle_stops_its_tasks() {
    bounded(TEST_TIMEOUT, async {
        let emu = emulator(Duration::from_secs(2)).await;
        let redis = builder(&emu, ServiceConnectorAuth::ServicePrincipal)
            .keepalive(Some(Duration::from_millis(100)))
            .connect()
            .await
            .expect("connects");
        let clone = redis.clone();
        drop(redis);
        let mut rx = clone.token_provider().subscribe();
        tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|c| c.generation >= 2))
            .await
            .expect("a refresh")
            .expect("provider alive");
        drop(rx);
        drop(clone);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let counters = emu.counters();
        tokio::time::sleep(Duration::from_secs(4)).await;
        let later = emu.counters();
        assert_eq!(
            later.token_endpoint_requests,
            counters.token_endpoint_requests
        );
        assert_eq!(later.connections_open, 0, "{later:?}");
        emu.shutdown().await;
    })
    .await;
}
