//! Dedicated connections, pools and the token provider for redis-rs's own clients, through
//! at least five refreshes of short tokens with the default refresh ratios (tokens of 6-10 s
//! are refreshed at 75 % of their lifetime), against the emulator's gate in front of a real
//! redis-server.
//!
//! Each test prints its figures (`--nocapture`); the assertions are on counts, never on time,
//! apart from one: the shared handle's commands must not wait as long as a `BLPOP` on a
//! dedicated connection does, which is the point of the dedicated connection.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use azure_redis_connect::AzureRedis;
use azure_redis_connect::pool::{Bb8Manager, DeadpoolManager, PoolOptions};
use azure_redis_connect::redis::{self, AsyncCommands};
use azure_redis_emulator::{Emulator, IdentityEndpoint, IdentityFault, ServiceConnectorAuth};
use common::{bounded, builder, emulator};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::time::Instant;

const KIND: ServiceConnectorAuth = ServiceConnectorAuth::ServicePrincipal;

/// Waits until the handle's token provider has handed out `generation` credentials.
async fn until_generation(redis: &AzureRedis, generation: u64) {
    let mut rx = redis.token_provider().subscribe();
    rx.wait_for(|c| c.generation >= generation)
        .await
        .expect("the provider lives");
}

fn assert_no_expiry_closes(emu: &Emulator) {
    let counters = emu.counters();
    assert_eq!(
        counters.closed_at_expiry, 0,
        "no connection reached its token's expiry: {counters:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blpop_on_a_dedicated_connection_beside_shared_traffic() {
    bounded(Duration::from_secs(120), async {
        let emu = emulator(Duration::from_secs(8)).await;
        let block = Duration::from_millis(1000);
        // An auth timeout shorter than the BLPOP: a re-AUTH queued behind one must be waited
        // for, not counted as failed (after three such "failures" the connection would stop
        // re-authenticating and be closed at expiry).
        let redis = builder(&emu, KIND)
            .auth_timeout(block / 3)
            .connect()
            .await
            .expect("connects");

        let mut jobs = redis.dedicated().await.expect("a dedicated connection");
        jobs.set_response_timeout(Some(block * 3));
        let done = Arc::new(tokio::sync::Notify::new());
        let consumer = {
            let done = Arc::clone(&done);
            tokio::spawn(async move {
                let (mut popped, mut timeouts, mut failed) = (0u64, 0u64, 0u64);
                loop {
                    tokio::select! {
                        () = done.notified() => break,
                        result = jobs.blpop::<_, Option<(String, String)>>("dedicated:jobs", block.as_secs_f64()) => {
                            match result {
                                Ok(Some(_)) => popped += 1,
                                Ok(None) => timeouts += 1,
                                Err(error) => {
                                    eprintln!("BLPOP failed: {error}");
                                    failed += 1;
                                }
                            }
                        }
                    }
                }
                (popped, timeouts, failed, jobs.reauths(), jobs.is_expired())
            })
        };

        // Shared traffic: SET / GET every 20 ms, and a job pushed every 1.5 s (so the BLPOP
        // times out in between).
        let started = Instant::now();
        let mut latencies = Vec::new();
        let mut failed = 0u64;
        let mut shared = redis.clone();
        let mut pushed = 0u64;
        let traffic = async {
            let mut n = 0u64;
            loop {
                n += 1;
                let t = Instant::now();
                let set: redis::RedisResult<()> = shared.set("dedicated:shared", n).await;
                let get: redis::RedisResult<u64> = shared.get("dedicated:shared").await;
                latencies.push(t.elapsed());
                match (set, get) {
                    (Ok(()), Ok(v)) => assert_eq!(v, n),
                    (set, get) => {
                        eprintln!("shared command failed: {set:?} {get:?}");
                        failed += 1;
                    }
                }
                if n.is_multiple_of(75) {
                    let _: () = shared.rpush("dedicated:jobs", n).await.expect("RPUSH");
                    pushed += 1;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::select! {
            () = until_generation(&redis, 6) => {}
            () = traffic => unreachable!(),
        }
        // One more BLPOP round, so that the last re-AUTH is answered.
        tokio::time::sleep(block * 2).await;
        done.notify_one();
        let (popped, timeouts, blpop_failed, reauths, expired) =
            consumer.await.expect("the consumer");
        latencies.sort();
        let p95 = latencies[latencies.len() * 95 / 100];
        let max = *latencies.last().expect("commands ran");
        println!(
            "{:.1} s, 5 refreshes: BLPOP popped {popped} (of {pushed} pushed), timed out {timeouts}, failed {blpop_failed}; \
             dedicated re-AUTHs {reauths}; shared SET+GET pairs {} failed {failed}, p95 {p95:?}, max {max:?}; {:?}",
            started.elapsed().as_secs_f64(),
            latencies.len(),
            emu.counters(),
        );
        assert_eq!(blpop_failed, 0, "no BLPOP failed");
        assert_eq!(failed, 0, "no shared command failed");
        assert!(timeouts >= 5, "the BLPOPs blocked and timed out in between jobs");
        assert!(reauths >= 5, "the dedicated connection was re-AUTHed on every refresh");
        assert!(!expired, "the dedicated connection holds an unexpired token");
        assert_no_expiry_closes(&emu);
        assert!(
            p95 < block / 2,
            "the shared handle does not wait behind the BLPOP ({p95:?} at p95)"
        );
        emu.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_transactions_from_eight_tasks_keep_a_counter_exact() {
    bounded(Duration::from_secs(120), async {
        let emu = emulator(Duration::from_secs(6)).await;
        let redis = builder(&emu, KIND).connect().await.expect("connects");
        let key = "dedicated:counter";
        let _: () = redis.clone().set(key, 0).await.expect("SET");
        let stop = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let mut conn = redis.dedicated().await.expect("a dedicated connection");
            let stop = Arc::clone(&stop);
            tasks.push(tokio::spawn(async move {
                let (mut committed, mut aborted) = (0u64, 0u64);
                while stop.load(Ordering::Relaxed) == 0 {
                    let () = redis::cmd("WATCH").arg(key).query_async(&mut conn).await?;
                    let value: u64 = conn.get(key).await?;
                    // MULTI, the SET and EXEC as commands of their own, with time in between:
                    // a re-AUTH that comes meanwhile must wait for EXEC.
                    let () = redis::cmd("MULTI").query_async(&mut conn).await?;
                    let _: redis::Value = redis::cmd("SET")
                        .arg(key)
                        .arg(value + 1)
                        .query_async(&mut conn)
                        .await?;
                    tokio::time::sleep(Duration::from_millis(15)).await;
                    let exec: Option<Vec<redis::Value>> =
                        redis::cmd("EXEC").query_async(&mut conn).await?;
                    match exec {
                        Some(replies) => {
                            // An AUTH queued into the transaction would add a reply.
                            assert_eq!(replies.len(), 1, "EXEC ran only the SET: {replies:?}");
                            committed += 1;
                        }
                        None => aborted += 1,
                    }
                }
                Ok::<_, redis::RedisError>((committed, aborted, conn.reauths()))
            }));
        }
        until_generation(&redis, 6).await;
        stop.store(1, Ordering::Relaxed);
        let (mut committed, mut aborted, mut reauths) = (0, 0, 0);
        for task in tasks {
            let (c, a, r) = task
                .await
                .expect("a transaction task")
                .expect("no command failed");
            committed += c;
            aborted += a;
            reauths += r;
        }
        let value: u64 = redis.clone().get(key).await.expect("GET");
        println!(
            "8 tasks through 5 refreshes: {committed} committed, {aborted} aborted and retried, \
             counter {value}, dedicated re-AUTHs {reauths}; {:?}",
            emu.counters()
        );
        assert_eq!(value, committed, "every committed transaction counted once");
        assert!(
            aborted > 0,
            "the tasks contended (some transactions aborted)"
        );
        assert!(
            reauths >= 8 * 5,
            "each connection re-AUTHed on each refresh"
        );
        assert_no_expiry_closes(&emu);
        emu.shutdown().await;
    })
    .await;
}

/// What a pool's users saw.
#[derive(Debug, Default)]
struct PoolLoad {
    ok: AtomicU64,
    failed: AtomicU64,
    checked_out: AtomicU64,
    /// Checked-out connections whose token had expired.
    expired: AtomicU64,
}

/// `INCR`s from 16 tasks through `get`, a pool of 8, until the handle's 6th token; each
/// checked-out connection is held for 0-30 ms.
async fn pool_load<F, Fut, C>(redis: &AzureRedis, key: &str, get: F) -> Arc<PoolLoad>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Option<C>> + Send,
    C: std::ops::DerefMut<Target = azure_redis_connect::dedicated::DedicatedConnection> + Send,
{
    let load = Arc::new(PoolLoad::default());
    let stop = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for t in 0..16u64 {
        let (load, stop, get, key) = (
            Arc::clone(&load),
            Arc::clone(&stop),
            get.clone(),
            key.to_string(),
        );
        tasks.push(tokio::spawn(async move {
            while stop.load(Ordering::Relaxed) == 0 {
                let Some(mut conn) = get().await else {
                    load.failed.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                load.checked_out.fetch_add(1, Ordering::Relaxed);
                if conn.is_expired() {
                    load.expired.fetch_add(1, Ordering::Relaxed);
                }
                match conn.incr::<_, _, u64>(&key, 1).await {
                    Ok(_) => load.ok.fetch_add(1, Ordering::Relaxed),
                    Err(error) => {
                        eprintln!("pooled INCR failed: {error}");
                        load.failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
                tokio::time::sleep(Duration::from_millis((t * 7) % 31)).await;
            }
        }));
    }
    until_generation(redis, 6).await;
    stop.store(1, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("a pool task");
    }
    load
}

fn check_pool(name: &str, load: &PoolLoad, counted: u64, emu: &Emulator) {
    println!(
        "{name}, 8 connections, 16 tasks through 5 refreshes: {} INCRs ok, {} failed, {} check-outs, \
         {} with an expired token; counter {counted}; {:?}",
        load.ok.load(Ordering::Relaxed),
        load.failed.load(Ordering::Relaxed),
        load.checked_out.load(Ordering::Relaxed),
        load.expired.load(Ordering::Relaxed),
        emu.counters()
    );
    assert_eq!(load.failed.load(Ordering::Relaxed), 0, "{name}: no failure");
    assert_eq!(
        load.expired.load(Ordering::Relaxed),
        0,
        "{name}: no checked-out connection held an expired token"
    );
    assert_eq!(
        counted,
        load.ok.load(Ordering::Relaxed),
        "{name}: every INCR counted"
    );
    assert!(
        emu.counters().connections_accepted <= 8 + 1 + 2,
        "{name}: pooled connections were re-AUTHed, not reopened: {:?}",
        emu.counters()
    );
    assert_no_expiry_closes(emu);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadpool_pool_stays_authenticated_under_load() {
    bounded(Duration::from_secs(120), async {
        let emu = emulator(Duration::from_secs(6)).await;
        let redis = builder(&emu, KIND).connect().await.expect("connects");
        let pool = deadpool::managed::Pool::<DeadpoolManager>::builder(DeadpoolManager::new(
            redis.clone(),
            PoolOptions::default(),
        ))
        .max_size(8)
        .build()
        .expect("a pool");
        let get = move || {
            let pool = pool.clone();
            async move { pool.get().await.ok() }
        };
        let load = pool_load(&redis, "dedicated:deadpool", get).await;
        let counted: u64 = redis.clone().get("dedicated:deadpool").await.expect("GET");
        check_pool("deadpool", &load, counted, &emu);
        emu.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bb8_pool_stays_authenticated_under_load() {
    bounded(Duration::from_secs(120), async {
        let emu = emulator(Duration::from_secs(6)).await;
        let redis = builder(&emu, KIND).connect().await.expect("connects");
        let pool = bb8::Pool::builder()
            .max_size(8)
            .build(Bb8Manager::new(redis.clone(), PoolOptions::default()))
            .await
            .expect("a pool");
        let get = move || {
            let pool = pool.clone();
            async move { pool.get_owned().await.ok() }
        };
        let load = pool_load(&redis, "dedicated:bb8", get).await;
        let counted: u64 = redis.clone().get("dedicated:bb8").await.expect("GET");
        check_pool("bb8", &load, counted, &emu);
        emu.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooled_connection_past_its_maximum_lifetime_is_replaced() {
    bounded(Duration::from_secs(60), async {
        let emu = emulator(Duration::from_secs(3600)).await;
        let redis = builder(&emu, KIND).connect().await.expect("connects");
        let options = PoolOptions::default().max_lifetime(Duration::from_millis(300));
        let pool = deadpool::managed::Pool::<DeadpoolManager>::builder(DeadpoolManager::new(
            redis, options,
        ))
        .max_size(1)
        .build()
        .expect("a pool");
        let first = pool.get().await.expect("a connection");
        let first_age = first.age();
        drop(first);
        let again = pool.get().await.expect("the same connection");
        assert!(again.age() >= first_age, "reused while young");
        drop(again);
        tokio::time::sleep(Duration::from_millis(400)).await;
        let replaced = pool.get().await.expect("a new connection");
        assert!(
            replaced.age() < Duration::from_millis(300),
            "a connection past its maximum lifetime is not handed out"
        );
        drop(replaced);
        emu.shutdown().await;
    })
    .await;
}

/// `INCR` every 100 ms (each given at most 2 s) on `conn` until `done()`, as
/// (started, succeeded) pairs; with the end of the first success.
async fn incr_every_100ms(
    conn: &mut ConnectionManager,
    key: &str,
    done: impl Fn() -> bool,
) -> (Vec<(Instant, bool)>, Option<Instant>) {
    let mut outcomes = Vec::new();
    let mut first_success = None;
    while !done() {
        let started = Instant::now();
        let result =
            tokio::time::timeout(Duration::from_secs(2), conn.incr::<_, _, u64>(key, 1)).await;
        let ok = matches!(result, Ok(Ok(_)));
        if ok && first_success.is_none() {
            first_success = Some(Instant::now());
        }
        outcomes.push((started, ok));
        tokio::time::sleep_until(started + Duration::from_millis(100)).await;
    }
    (outcomes, first_success)
}

/// The scenario of `anchors/redis-rs-entra` (`outage-past-expiry --conn manager`) with the
/// provider of this crate: a plain `ConnectionManager` stays authenticated through refreshes
/// and through an identity outage past expiry, and recovers once the endpoint is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_manager_with_our_provider_outlives_an_outage_past_expiry() {
    bounded(Duration::from_secs(150), async {
        let lifetime = Duration::from_secs(8);
        let emu = emulator(lifetime).await;
        let (client, provider) = builder(&emu, KIND)
            .redis_client()
            .await
            .expect("a client and the first token");
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(10)))
            .set_response_timeout(Some(Duration::from_secs(5)))
            .set_credentials_provider(provider.redis_credentials());
        let mut manager = ConnectionManager::new_with_config(client, config)
            .await
            .expect("a connection manager");
        let key = "dedicated:manager";

        // Five refreshes.
        let (mut outcomes, _) =
            incr_every_100ms(&mut manager, key, || provider.current().generation >= 6).await;
        let before = emu.counters();
        // An outage from now until 3 s past the current token's expiry.
        let expires = common::until_expiry(&provider.status());
        emu.faults()
            .identity_outage(IdentityEndpoint::All, IdentityFault::Http500, None);
        let outage_start = Instant::now();
        let back_at = outage_start + expires + Duration::from_secs(3);
        outcomes.extend(incr_every_100ms(&mut manager, key, || Instant::now() >= back_at).await.0);
        emu.faults().clear_identity_outage(IdentityEndpoint::All);
        let back = Instant::now();
        let until = back + Duration::from_secs(12);
        let (after_back, first_success) =
            incr_every_100ms(&mut manager, key, || Instant::now() >= until).await;
        let recovered = first_success.map(|at| at.duration_since(back));
        let failed_after_expiry = outcomes
            .iter()
            .filter(|(at, ok)| *at > outage_start + expires + Duration::from_millis(500) && !ok)
            .count();
        let first_ok = after_back.iter().position(|(_, ok)| *ok);
        let failed_after_recovery = first_ok
            .map(|i| after_back[i..].iter().filter(|(_, ok)| !ok).count())
            .unwrap_or(0);
        let failed_before_outage = outcomes
            .iter()
            .filter(|(at, ok)| *at < outage_start && !ok)
            .count();
        let expired_at = outage_start + expires;
        let failed_in_outage_before_expiry = outcomes
            .iter()
            .filter(|(at, ok)| *at >= outage_start && *at + Duration::from_secs(2) < expired_at && !ok)
            .count();
        let counted: u64 = manager.get(key).await.expect("GET");
        println!(
            "ConnectionManager + RedisCredentials, {lifetime:?} tokens: through 5 refreshes {} commands, {failed_before_outage} failed; \
             outage of {:?} (expiry after {expires:?}); endpoint back -> first success {recovered:?}, \
             {failed_after_recovery} failures after it; {failed_after_expiry} failed while the token was expired; counters before the outage {before:?}, at the end {:?}",
            outcomes.iter().filter(|(at, _)| *at < outage_start).count(),
            back.duration_since(outage_start),
            emu.counters()
        );
        assert_eq!(failed_before_outage, 0, "no command failed through the refreshes");
        assert_eq!(before.closed_at_expiry, 0, "re-AUTHed on every refresh");
        assert_eq!(
            failed_in_outage_before_expiry, 0,
            "commands succeed during the outage until the token expires"
        );
        assert!(
            failed_after_expiry > 0 && emu.counters().closed_at_expiry == 1,
            "the outage outlasted the token: Azure closed the connection at expiry"
        );
        assert!(recovered.is_some(), "commands succeed again after the endpoint is back");
        assert_eq!(failed_after_recovery, 0, "and keep succeeding");
        let ok = outcomes.iter().chain(&after_back).filter(|(_, ok)| *ok).count() as u64;
        assert!(counted >= ok, "every successful INCR counted ({counted} < {ok})");
        emu.shutdown().await;
    })
    .await;
}
