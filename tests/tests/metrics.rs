//! The counters and gauges of the `metrics` feature, read from a recorder while a single-node
//! handle goes through token refreshes, a refused re-AUTH, failed token requests, a dropped
//! connection and a vanished peer on the emulator. One test in this binary: it installs the
//! process's global recorder, since the handle records on its own tasks.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use azure_redis_connect::metrics::{
    REAUTH_FAILURES, REAUTHS, RECONNECTS, TOKEN_EXPIRES_AT, TOKEN_FETCH_FAILURES, TOKEN_REFRESHES,
    UNRESPONSIVE_REPLACED,
};
use azure_redis_connect::redis::AsyncCommands;
use azure_redis_connect::token::TokenEvent;
use azure_redis_connect::{AzureRedisConfig, ConfigError};
use azure_redis_emulator::{IdentityEndpoint, IdentityFault, ServiceConnectorAuth};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tokio::sync::broadcast;

mod common;

use common::{AnyCache, bounded, builder, emulator};

/// One series of a snapshot: its labels and value.
#[derive(Debug)]
struct Series {
    labels: BTreeMap<String, String>,
    value: f64,
}

/// The series of `name`.
fn series<'a>(all: &'a BTreeMap<String, Vec<Series>>, name: &str) -> &'a [Series] {
    all.get(name).map(Vec::as_slice).unwrap_or_default()
}

/// The one series of `name` whose labels include `labels`, and its value.
fn value(all: &BTreeMap<String, Vec<Series>>, name: &str, labels: &[(&str, &str)]) -> f64 {
    let matching: Vec<_> = series(all, name)
        .iter()
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect();
    assert_eq!(matching.len(), 1, "{name} {labels:?}: {all:#?}");
    matching[0].value
}

/// Waits until `done` holds, checking every 20 ms.
async fn until(mut done: impl FnMut() -> bool) {
    while !done() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Counts the provider's failed refreshes until it is gone.
async fn count_failures(mut events: broadcast::Receiver<TokenEvent>) -> u64 {
    let mut failures = 0;
    loop {
        match events.recv().await {
            Ok(TokenEvent::Failed { .. }) => failures += 1,
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(n)) => panic!("{n} token events lost"),
            Err(broadcast::error::RecvError::Closed) => return failures,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_refreshes_failures_reauths_reconnects_and_the_expiry_are_recorded() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder of this binary");
    bounded(Duration::from_secs(90), async {
        let emu = emulator(Duration::from_secs(3)).await;
        let kind = ServiceConnectorAuth::ServicePrincipal;
        let endpoint = AnyCache::from_vars(emu.env_for(kind))
            .and_then(|cache| cache.endpoint())
            .unwrap_or_else(|e: ConfigError| panic!("{e}"));
        let address = endpoint.tls_server_name.unwrap_or(endpoint.host);
        let mut redis = builder(&emu, kind)
            .response_timeout(Some(Duration::from_secs(1)))
            .connect()
            .await
            .expect("connects");
        let provider = redis.token_provider().clone();
        let failed_refreshes = tokio::spawn(count_failures(provider.events()));

        // A refresh, re-AUTHed on the live connection.
        until(|| redis.status().reauths >= 1).await;
        // A refused re-AUTH, accepted on its retry.
        emu.faults().reject_next_auths(1);
        until(|| redis.status().reauths >= 2).await;
        assert_eq!(redis.status().reauth_failures, 1, "{:?}", redis.status());
        // Failed refreshes: the identity endpoint answers 500 until cleared.
        emu.faults()
            .identity_outage(IdentityEndpoint::All, IdentityFault::Http500, None);
        until(|| redis.status().token.consecutive_failures >= 1).await;
        emu.faults().clear_identity_outage(IdentityEndpoint::All);
        // A reconnect: the gate drops every connection.
        emu.faults().drop_all_connections();
        while redis.status().reconnects == 0 {
            let _ = redis.get::<_, Option<String>>("metrics:probe").await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // A vanished peer, found by a command that gets no reply within the response timeout;
        // right after a re-AUTH, so that no re-AUTH falls on the half-open connection.
        let after = redis.status().reauths;
        until(|| redis.status().reauths > after).await;
        emu.faults().half_open_existing();
        let error = redis
            .get::<_, Option<String>>("metrics:probe")
            .await
            .expect_err("no reply from a vanished peer");
        assert!(error.is_timeout(), "{error}");
        until(|| redis.status().unresponsive_replaced == 1 && redis.status().reconnects == 2).await;

        // Right after a refresh (the next is seconds away), with nothing changing: the state
        // the snapshot must show.
        let (status, generation) = loop {
            let after = redis.status().reauths;
            until(|| redis.status().reauths > after).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
            let status = redis.status();
            let generation = provider.current().generation;
            tokio::time::sleep(Duration::from_millis(100)).await;
            if redis.status() == status && provider.current().generation == generation {
                break (status, generation);
            }
        };
        // The snapshot resets what it reads, so it is taken once, with the handle gone.
        drop(redis);
        drop(provider);
        let failed_refreshes = failed_refreshes.await.expect("event counter");
        let mut all: BTreeMap<String, Vec<Series>> = BTreeMap::new();
        for (key, _, _, value) in snapshotter.snapshot().into_vec() {
            let value = match value {
                DebugValue::Counter(n) => n as f64,
                DebugValue::Gauge(g) => g.0,
                DebugValue::Histogram(h) => panic!("no histograms: {h:?}"),
            };
            let labels = key
                .key()
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            all.entry(key.key().name().to_owned())
                .or_default()
                .push(Series { labels, value });
        }
        println!("{all:#?}");

        // Every series names the server, and the Redis ones the handle.
        for (name, series) in &all {
            for s in series {
                assert_eq!(
                    s.labels.get("server.address"),
                    Some(&address),
                    "{name}: {s:?}"
                );
                if !name.starts_with("azure_redis_token_") {
                    let handle = s.labels.get("azure_redis.handle").map(String::as_str);
                    assert_eq!(handle, Some("single"), "{name}: {s:?}");
                }
            }
        }
        let server = [("server.address", address.as_str())];
        let refreshes = value(&all, TOKEN_REFRESHES, &server);
        assert_eq!(refreshes, generation as f64, "{status:?}");
        assert!(refreshes >= 4.0, "{status:?}");
        let failures = series(&all, TOKEN_FETCH_FAILURES);
        assert!(failed_refreshes >= 1);
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert_eq!(failures[0].labels.get("error.type").unwrap(), "refused");
        assert_eq!(failures[0].value, failed_refreshes as f64);

        let expires_at = status.token.expires_at.expect("an Entra ID token");
        let unix = expires_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let gauge = value(&all, TOKEN_EXPIRES_AT, &server);
        assert!((gauge - unix).abs() < 1e-6, "{gauge} {unix}");
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(gauge > now && gauge < now + 3.0, "{gauge} {now}");

        assert_eq!(value(&all, REAUTHS, &server), status.reauths as f64);
        assert!(status.reauths >= 4, "{status:?}");
        let wrongpass = [("error.type", "WRONGPASS")];
        assert_eq!(value(&all, REAUTH_FAILURES, &wrongpass), 1.0);
        let reauth_failures: f64 = series(&all, REAUTH_FAILURES).iter().map(|s| s.value).sum();
        assert_eq!(reauth_failures, status.reauth_failures as f64, "{status:?}");
        assert_eq!(value(&all, RECONNECTS, &server), 2.0);
        assert_eq!(status.reconnects, 2, "{status:?}");
        let command = [("azure_redis.reason", "command_timeout")];
        assert_eq!(value(&all, UNRESPONSIVE_REPLACED, &command), 1.0);
        assert_eq!(series(&all, UNRESPONSIVE_REPLACED).len(), 1);
        assert_eq!(status.unresponsive_replaced, 1, "{status:?}");
        emu.shutdown().await;
    })
    .await;
}
