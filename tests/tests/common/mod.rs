//! What the integration test binaries share: an application's configuration that accepts any
//! Service Connector auth type, the emulator set up for tests, a bound on each test's time, and
//! a load of commands whose outcomes the tests examine.

// Each test binary uses a part of this module.
#![allow(dead_code)]

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use azure_redis_connect::conn::Builder;
use azure_redis_connect::redis::{self, AsyncCommands, aio::ConnectionLike};
use azure_redis_connect::token::{RefreshPolicy, TokenStatus};
use azure_redis_connect::{AzureRedis, AzureRedisConfig, SecretString};
use azure_redis_emulator::{Emulator, ServiceConnectorAuth};
use tokio::process::Command;
use tokio::time::Instant;

/// Any auth type Service Connector injects; the variables that are set decide.
#[derive(AzureRedisConfig, Debug)]
pub struct AnyCache {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub ssl: Option<bool>,
    pub database: Option<u32>,
    pub client_id: Option<String>,
    pub tenant_id: Option<String>,
    pub client_secret: Option<SecretString>,
    pub password: Option<SecretString>,
    pub connection_string: Option<SecretString>,
    pub federated_token_file: Option<PathBuf>,
}

/// An emulator whose tokens live `token_lifetime`.
pub async fn emulator(token_lifetime: Duration) -> Emulator {
    Emulator::builder()
        .token_lifetime(token_lifetime)
        .start()
        .await
        .expect("the emulator starts (is redis-server installed?)")
}

/// The default policy with a short first retry, so that tests with second-long tokens retry
/// in time.
pub fn fast_policy() -> RefreshPolicy {
    RefreshPolicy {
        initial_backoff: Duration::from_millis(50),
        request_timeout: Duration::from_secs(5),
        ..RefreshPolicy::default()
    }
}

/// A builder configured from the emulator's variables for `kind`, trusting its CA and token
/// endpoint (no process environment involved).
pub fn builder(emu: &Emulator, kind: ServiceConnectorAuth) -> Builder {
    let cache = AnyCache::from_vars(emu.env_for(kind))
        .expect("the emulator's variables configure the cache");
    AzureRedis::builder_from(&cache)
        .expect("the configuration resolves")
        .root_certificate_pem(emu.ca_pem())
        .authority_host(emu.token_endpoint_authority())
        .refresh_policy(fast_policy())
}

/// A handle from [`builder`].
pub async fn connect(emu: &Emulator, kind: ServiceConnectorAuth) -> AzureRedis {
    builder(emu, kind)
        .connect()
        .await
        .expect("connects through the gate")
}

/// This test binary, to run its ignored test `child` as an application would run: with only
/// the emulator's variables for `kind` (none of [`CLEARED`] inherited), and `mode` set to the
/// auth type's name so that the child knows it is one.
pub fn child_command(emu: &Emulator, kind: ServiceConnectorAuth, mode: &str) -> Command {
    let exe = std::env::current_exe().expect("test binary");
    let mut cmd = Command::new(exe);
    cmd.args(["child", "--exact", "--ignored", "--nocapture"]);
    for var in CLEARED {
        cmd.env_remove(var);
    }
    cmd.envs(emu.env_for(kind))
        .env(mode, kind.to_string())
        .env_remove("RUST_LOG")
        .kill_on_drop(true);
    cmd
}

/// Whether the child of [`child_command`] passed, and what it printed.
pub fn child_outcome(out: &std::process::Output) -> (bool, String) {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success() && text.contains("1 passed"), text)
}

/// Variables that a developer's shell could hold and that would change what the child does.
pub const CLEARED: &[&str] = &[
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "IMDS_ENDPOINT",
    "AZURE_AUTHORITY_HOST",
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_FEDERATED_TOKEN_FILE",
    "SSL_CERT_FILE",
    "AZURE_REDIS_HOST",
    "AZURE_REDIS_PORT",
    "AZURE_REDIS_CLIENTID",
    "AZURE_REDIS_TENANTID",
    "AZURE_REDIS_CLIENTSECRET",
    "AZURE_REDIS_PASSWORD",
    "AZURE_REDIS_CONNECTIONSTRING",
];

/// Runs `test`, failing it if it has not finished within `limit` (so that no test hangs CI).
pub async fn bounded<T>(limit: Duration, test: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, test)
        .await
        .unwrap_or_else(|_| panic!("the test did not finish within {limit:?}"))
}

/// How long from now until the token `status` describes expires.
pub fn until_expiry(status: &TokenStatus) -> Duration {
    let expires_at = status.expires_at.expect("an Entra ID token");
    expires_at
        .duration_since(SystemTime::now())
        .unwrap_or_default()
}

/// One command issued by [`drive`].
#[derive(Debug)]
pub struct Outcome {
    pub started: Instant,
    pub ended: Instant,
    pub error: Option<redis::RedisError>,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }
}

/// Issues `INCR key` every 50 ms from each of `tasks` tasks for `duration`, on clones of
/// `conn`; the outcomes sorted by start.
pub async fn drive<C>(
    conn: C,
    key: impl Into<String>,
    tasks: usize,
    duration: Duration,
) -> Vec<Outcome>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    let key: String = key.into();
    let deadline = Instant::now() + duration;
    let workers: Vec<_> = (0..tasks)
        .map(|_| {
            let mut conn = conn.clone();
            let key = key.clone();
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                while Instant::now() < deadline {
                    let started = Instant::now();
                    let result: redis::RedisResult<i64> = conn.incr(&key, 1).await;
                    outcomes.push(Outcome {
                        started,
                        ended: Instant::now(),
                        error: result.err(),
                    });
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                outcomes
            })
        })
        .collect();
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.expect("driver task"));
    }
    all.sort_by_key(|o| o.started);
    all
}

/// The first command started after `since` that succeeded, and how long after `since` it
/// ended; every command started after it must succeed too.
pub fn recovery_after(outcomes: &[Outcome], since: Instant) -> Duration {
    let recovered = outcomes
        .iter()
        .find(|o| o.started > since && o.ok())
        .expect("commands succeed again");
    let failures_after: Vec<_> = outcomes
        .iter()
        .filter(|o| o.started > recovered.ended && !o.ok())
        .collect();
    assert!(
        failures_after.is_empty(),
        "failures after recovery: {failures_after:?}"
    );
    recovered.ended - since
}
