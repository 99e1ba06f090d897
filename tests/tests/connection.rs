//! The authenticated connection against the emulator's gate in front of a real redis-server,
//! with real azure_identity credentials and short-lived tokens.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use azure_redis_connect::redis::AsyncCommands;
use azure_redis_connect::{AzureRedis, AzureRedisConfig, redis};
use azure_redis_emulator::ServiceConnectorAuth;

mod common;

use common::{
    AnyCache as Cache, bounded, builder, connect, drive, emulator, fast_policy, until_expiry,
};

const TEST_TIMEOUT: Duration = Duration::from_secs(90);

async fn client_id(redis: &mut AzureRedis) -> i64 {
    redis::cmd("CLIENT")
        .arg("ID")
        .query_async(redis)
        .await
        .expect("CLIENT ID")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_stays_authenticated_through_many_refreshes_under_load() {
    bounded(TEST_TIMEOUT, async {
        let emu = emulator(Duration::from_secs(2)).await;
        let mut redis = connect(&emu, ServiceConnectorAuth::ServicePrincipal).await;
        let first_id = client_id(&mut redis).await;
        let requests_before = emu.counters().token_endpoint_requests;

        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let workers: Vec<_> = (0..8)
            .map(|w| {
                let mut redis = redis.clone();
                let (ok, failed) = (Arc::clone(&ok), Arc::clone(&failed));
                tokio::spawn(async move {
                    let deadline = tokio::time::Instant::now() + Duration::from_secs(12);
                    while tokio::time::Instant::now() < deadline {
                        let result: redis::RedisResult<i64> =
                            redis.incr(format!("load:{w}"), 1).await;
                        match result {
                            Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                            Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                        };
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.await.expect("worker");
        }

        let status = redis.status();
        let counters = emu.counters();
        let requests = counters.token_endpoint_requests - requests_before;
        assert_eq!(
            failed.load(Ordering::Relaxed),
            0,
            "failed commands; {status:?}"
        );
        assert!(ok.load(Ordering::Relaxed) > 1000);
        assert_eq!(
            client_id(&mut redis).await,
            first_id,
            "the connection was replaced; {status:?}"
        );
        assert_eq!(counters.closed_at_expiry, 0, "{counters:?}");
        // 2 s tokens (whole seconds of expiry) refreshed at 75 %: 5 or more refreshes in 12 s,
        // one token request each.
        assert!(status.reauths >= 5, "{status:?}");
        assert!(
            requests <= status.reauths + 2,
            "{requests} token requests for {} re-AUTHs",
            status.reauths
        );
        assert_eq!(status.reconnects, 0, "{status:?}");
        let total: i64 = {
            let mut sum = 0;
            for w in 0..8 {
                let n: i64 = redis.get(format!("load:{w}")).await.expect("GET");
                sum += n;
            }
            sum
        };
        assert_eq!(
            total as u64,
            ok.load(Ordering::Relaxed),
            "every INCR landed once"
        );
        emu.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_keys_connect_in_every_syntax() {
    bounded(TEST_TIMEOUT, async {
        let emu = emulator(Duration::from_secs(60)).await;
        for kind in [
            ServiceConnectorAuth::AccessKey,
            ServiceConnectorAuth::ConnectionStringStackExchange,
            ServiceConnectorAuth::ConnectionStringUrl,
        ] {
            let mut redis = connect(&emu, kind).await;
            let key = format!("syntax:{kind:?}");
            let () = redis.set(&key, "ok").await.expect("SET");
            let value: String = redis.get(&key).await.expect("GET");
            assert_eq!(value, "ok", "{kind:?}");
            assert_eq!(redis.status().token.expires_at, None);
        }
        emu.shutdown().await;
    })
    .await;
}

async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not happen within 10 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_reauth_is_retried_then_the_connection_replaced() {
    bounded(TEST_TIMEOUT, async {
        // Long enough that three refused re-AUTHs and a reconnect fit before expiry.
        let emu = emulator(Duration::from_secs(4)).await;
        let mut redis = connect(&emu, ServiceConnectorAuth::ServicePrincipal).await;
        emu.faults().reject_next_auths(3);
        wait_until("a reconnect", || redis.status().reconnects >= 1).await;
        let status = redis.status();
        assert!(status.reauth_failures >= 3, "{status:?}");
        let () = redis
            .set("after-rejection", 1)
            .await
            .expect("works on the new connection");
        // And it keeps re-authenticating after that.
        let reauths = redis.status().reauths;
        wait_until("another re-AUTH", || redis.status().reauths > reauths).await;
        assert_eq!(emu.counters().closed_at_expiry, 0);
        emu.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_are_replaced_with_the_current_token() {
    bounded(TEST_TIMEOUT, async {
        let emu = emulator(Duration::from_secs(3)).await;
        let mut redis = connect(&emu, ServiceConnectorAuth::ServicePrincipal).await;
        let first_id = client_id(&mut redis).await;
        emu.faults().drop_all_connections();
        wait_until("a reconnect", || {
            redis.status().reconnects >= 1 && redis.status().connected
        })
        .await;
        assert_ne!(client_id(&mut redis).await, first_id);
        // After a token refresh too: the new connection authenticated with the current token.
        tokio::time::sleep(Duration::from_secs(4)).await;
        emu.faults().drop_all_connections();
        wait_until("a second reconnect", || {
            redis.status().reconnects >= 2 && redis.status().connected
        })
        .await;
        let () = redis
            .set("after-drop", 1)
            .await
            .expect("SET after reconnect");
        emu.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_handles_stay_connected_with_keepalive_and_reconnect_without() {
    bounded(TEST_TIMEOUT, async {
        // Azure closes a connection idle for 10 minutes; this gate after 1.5 s.
        let emu = azure_redis_emulator::Emulator::builder()
            .token_lifetime(Duration::from_secs(60))
            .idle_timeout(Duration::from_millis(1500))
            .start()
            .await
            .expect("the emulator starts");
        let mut kept = builder(&emu, ServiceConnectorAuth::ServicePrincipal)
            .keepalive(Some(Duration::from_millis(300)))
            .connect()
            .await
            .expect("connects");
        let mut unkept = builder(&emu, ServiceConnectorAuth::ServicePrincipal)
            .keepalive(None)
            .connect()
            .await
            .expect("connects");
        let kept_id = client_id(&mut kept).await;
        let unkept_id = client_id(&mut unkept).await;

        tokio::time::sleep(Duration::from_millis(3500)).await;
        let counters = emu.counters();
        assert!(counters.closed_idle >= 1, "{counters:?}");
        // The keepalive PINGs kept the first handle's connection open.
        assert_eq!(client_id(&mut kept).await, kept_id);
        assert_eq!(kept.status().reconnects, 0, "{:?}", kept.status());
        // Without, the gate closed the connection; the handle saw the close (RESP3) and
        // reconnected before any command needed it.
        wait_until("a reconnect after the idle close", || {
            unkept.status().reconnects >= 1 && unkept.status().connected
        })
        .await;
        assert_ne!(client_id(&mut unkept).await, unkept_id);
        emu.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identity_outage_over_the_refresh_point_costs_nothing() {
    use azure_redis_emulator::{IdentityEndpoint, IdentityFault};
    bounded(TEST_TIMEOUT, async {
        let emu = emulator(Duration::from_secs(10)).await;
        let redis = connect(&emu, ServiceConnectorAuth::ServicePrincipal).await;
        let mut events = redis.token_provider().events();
        let expiry = until_expiry(&redis.status().token);
        let load = tokio::spawn(drive(
            redis.clone(),
            "outage:short",
            1,
            expiry + Duration::from_secs(2),
        ));
        // Down from well before the refresh point (75 %) until shortly before expiry.
        tokio::time::sleep(expiry.mul_f64(0.5)).await;
        emu.faults().identity_outage(
            IdentityEndpoint::All,
            IdentityFault::Http500,
            Some(until_expiry(&redis.status().token).saturating_sub(Duration::from_millis(1500))),
        );
        let outcomes = load.await.expect("load");
        let failed = outcomes.iter().filter(|o| !o.ok()).count();
        assert_eq!(failed, 0, "failed commands out of {}", outcomes.len());
        assert_eq!(emu.counters().closed_at_expiry, 0);
        let status = redis.status();
        assert_eq!(status.token.consecutive_failures, 0, "{status:?}");
        assert!(status.reauths >= 1, "{status:?}");
        let mut refresh_failures = 0;
        while let Ok(event) = events.try_recv() {
            if matches!(event, azure_redis_connect::token::TokenEvent::Failed { .. }) {
                refresh_failures += 1;
            }
        }
        assert!(refresh_failures >= 1, "the outage did not hit a refresh");
        emu.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_identity_outage_past_expiry_the_handle_recovers_by_itself() {
    use azure_redis_emulator::{IdentityEndpoint, IdentityFault};
    bounded(TEST_TIMEOUT, async {
        let emu = emulator(Duration::from_secs(6)).await;
        let redis = connect(&emu, ServiceConnectorAuth::ServicePrincipal).await;
        // Down from before the first refresh until two seconds past expiry.
        tokio::time::sleep(Duration::from_millis(500)).await;
        emu.faults()
            .identity_outage(IdentityEndpoint::All, IdentityFault::Http500, None);
        let expires = tokio::time::Instant::now() + until_expiry(&redis.status().token);
        let load = tokio::spawn(drive(
            redis.clone(),
            "outage:long",
            1,
            until_expiry(&redis.status().token) + Duration::from_secs(7),
        ));
        tokio::time::sleep_until(expires + Duration::from_secs(2)).await;
        emu.faults().clear_identity_outage(IdentityEndpoint::All);
        let back = tokio::time::Instant::now();
        let outcomes = load.await.expect("load");

        let before_expiry: Vec<_> = outcomes
            .iter()
            .filter(|o| o.ended + Duration::from_millis(250) < expires)
            .collect();
        assert!(before_expiry.len() > 20);
        assert!(
            before_expiry.iter().all(|o| o.ok()),
            "a command failed before expiry"
        );
        // Azure closes the connection whose token expired; so does the gate.
        assert!(emu.counters().closed_at_expiry >= 1);
        let recovered = outcomes
            .iter()
            .find(|o| o.ended > back && o.ok())
            .expect("commands succeed again after the endpoint is back");
        let recovery = recovered.ended - back;
        println!("recovered {recovery:?} after the identity endpoint came back");
        assert!(
            recovery < Duration::from_secs(5),
            "recovery took {recovery:?}"
        );
        let after: Vec<_> = outcomes
            .iter()
            .filter(|o| o.ended > recovered.ended)
            .collect();
        assert!(
            after.len() > 10 && after.iter().all(|o| o.ok()),
            "failures after recovery"
        );
        let status = redis.status();
        assert!(status.is_healthy(), "{status:?}");
        emu.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_server_restart_is_survived() {
    bounded(TEST_TIMEOUT, async {
        let emu = emulator(Duration::from_secs(60)).await;
        let mut redis = connect(&emu, ServiceConnectorAuth::ServicePrincipal).await;
        let () = redis.set("before-restart", 1).await.expect("SET");
        emu.faults().restart_redis().await.expect("restart");
        wait_until("a reconnect", || {
            redis.status().reconnects >= 1 && redis.status().connected
        })
        .await;
        let () = redis
            .set("after-restart", 2)
            .await
            .expect("SET after restart");
        let value: i64 = redis.get("after-restart").await.expect("GET");
        assert_eq!(value, 2);
        emu.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resp3_subscriber_receives_every_message_through_refreshes() {
    bounded(TEST_TIMEOUT, async {
        let emu = emulator(Duration::from_secs(2)).await;
        let cache =
            Cache::from_vars(emu.env_for(ServiceConnectorAuth::ServicePrincipal)).expect("config");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let subscriber = AzureRedis::builder_from(&cache)
            .expect("config")
            .root_certificate_pem(emu.ca_pem())
            .authority_host(emu.token_endpoint_authority())
            .refresh_policy(fast_policy())
            .push_sender(tx)
            .connect()
            .await
            .expect("subscriber connects");
        subscriber.subscribe("news").await.expect("SUBSCRIBE");
        let mut publisher = connect(&emu, ServiceConnectorAuth::ServicePrincipal).await;

        let count = 80;
        for i in 0..count {
            let _: i64 = publisher.publish("news", i).await.expect("PUBLISH");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut received = Vec::new();
        while received.len() < count {
            let push = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .expect("a message within 5 s")
                .expect("push channel open");
            if let Some(msg) = redis::Msg::from_push_info(push) {
                received.push(msg.get_payload::<usize>().expect("payload"));
            }
        }
        assert_eq!(received, (0..count).collect::<Vec<_>>());
        let status = subscriber.status();
        assert!(status.reauths >= 3, "{status:?}");
        assert_eq!(status.reconnects, 0, "{status:?}");
        assert_eq!(emu.counters().closed_at_expiry, 0);
        emu.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn plaintext_is_refused_for_azure_and_needs_consent_elsewhere() {
    use azure_redis_connect::{Auth, ConnectError, Endpoint};
    let key = || Auth::AccessKey {
        username: None,
        password: "k".into(),
    };
    let mut azure = Endpoint::new("shop.redis.cache.windows.net");
    azure.tls = false;
    let error = AzureRedis::builder(azure, key())
        .allow_plaintext()
        .connect()
        .await
        .unwrap_err();
    assert!(
        matches!(error, ConnectError::PlaintextRefused { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("shop.redis.cache.windows.net"));

    let mut local = Endpoint::new("127.0.0.1");
    local.tls = false;
    local.port = 1;
    let error = AzureRedis::builder(local, key())
        .connect()
        .await
        .unwrap_err();
    assert!(
        matches!(error, ConnectError::PlaintextNotAllowed { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("allow_plaintext"));
}
