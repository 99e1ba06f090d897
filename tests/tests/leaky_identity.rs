//! An identity endpoint that answers its errors with a body holding a valid token (a misbehaving
//! proxy, or an endpoint that caches answers) never gets that token into what the application
//! sees: logs at TRACE level, the `TokenError` of a failed connect, `status()`, and the health
//! report served on `/health`. Both endpoints are covered: the managed identity endpoint (App
//! Service protocol, whose errors azure_identity copies with their body) and the Entra token
//! endpoint (service principal).
//!
//! The credentials read the process environment, so the application runs as a child process of
//! this test binary, configured by the emulator's variables alone (as in `identities.rs`).

use std::time::Duration;

use azure_redis_connect::AzureRedisConfig;
use azure_redis_connect::health::HealthReport;
use azure_redis_emulator::{IdentityEndpoint, IdentityFault, ServiceConnectorAuth};

mod common;

use common::{AnyCache as Cache, bounded};

const MODE: &str = "LEAKY_IDENTITY_TEST_CHILD";

/// The child: connects, then (once the parent has started the outage) lets refreshes fail and
/// prints everything an application could show: logs, status, health JSON, a connect error.
#[tokio::test]
#[ignore = "run by the other tests in a child process"]
async fn child() {
    if std::env::var(MODE).is_err() {
        return;
    }
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(std::io::stdout)
        .try_init()
        .expect("the child's only subscriber");
    let cache = Cache::from_env().expect("configured");
    let redis = cache.connect().await.expect("connects before the outage");
    println!("CHILD connected");
    // The parent starts the outage 2.5 s after the child starts; the 6 s token is refreshed at
    // 4.5 s and retried while the outage lasts.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let status = redis.status();
    println!("CHILD status {status:?}");
    assert!(status.token.consecutive_failures >= 1, "{status:?}");
    println!("CHILD last_error {:?}", status.token.last_error);
    println!(
        "CHILD health {}",
        HealthReport::check(&redis).await.to_json()
    );
    let error = cache
        .connect()
        .await
        .expect_err("the outage refuses the first token");
    println!("CHILD connect error {error} / {error:?}");
}

async fn check(kind: ServiceConnectorAuth) {
    bounded(Duration::from_secs(90), async {
        let emu = common::emulator(Duration::from_secs(6)).await;
        let child = common::child_command(&emu, kind, MODE).output();
        let outage = async {
            tokio::time::sleep(Duration::from_millis(2500)).await;
            emu.faults().identity_outage(
                IdentityEndpoint::All,
                IdentityFault::Http500EchoingToken,
                None,
            );
        };
        let (out, ()) = tokio::join!(child, outage);
        let (passed, text) = common::child_outcome(&out.expect("child ran"));
        assert!(passed, "child failed:\n{text}");
        let echoed = emu.faults().echoed_tokens();
        assert!(echoed.len() >= 2, "{} tokens echoed", echoed.len());
        for token in &echoed {
            let parts: Vec<_> = token.split('.').collect();
            assert_eq!(parts.len(), 3, "a JWT");
            for part in [parts[1], parts[2]] {
                for window in [&part[..32], &part[part.len() - 32..]] {
                    assert!(
                        !text.contains(window),
                        "an echoed token reached the output:\n{text}"
                    );
                }
            }
        }
        // What the user does see: the credential, the status and where to read more.
        let last_error = text
            .lines()
            .find(|l| l.starts_with("CHILD last_error"))
            .expect("the child printed its last error");
        assert!(last_error.contains("HTTP 500"), "{last_error}");
        assert!(last_error.contains("https://aka.ms/"), "{last_error}");
        let health = text
            .lines()
            .find(|l| l.starts_with("CHILD health"))
            .expect("health");
        assert!(health.contains("HTTP 500"), "{health}");
        assert!(text.contains("token refresh failed"), "{text}");
        emu.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn managed_identity_endpoint_echoing_a_token() {
    check(ServiceConnectorAuth::SystemIdentity).await;
}

#[tokio::test]
async fn token_endpoint_echoing_a_token() {
    check(ServiceConnectorAuth::ServicePrincipal).await;
}
