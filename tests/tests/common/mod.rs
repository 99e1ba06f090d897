//! What the integration test binaries share: an application's configuration that accepts any
//! Service Connector auth type, and the emulator set up for tests.

// Each test binary uses a part of this module.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use azure_redis_connect::conn::Builder;
use azure_redis_connect::token::RefreshPolicy;
use azure_redis_connect::{AzureRedis, AzureRedisConfig, SecretString};
use azure_redis_emulator::{AuthKind, Emulator};

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
pub fn builder(emu: &Emulator, kind: AuthKind) -> Builder {
    let cache = AnyCache::from_vars(emu.env_for(kind))
        .expect("the emulator's variables configure the cache");
    AzureRedis::builder_from(&cache)
        .expect("the configuration resolves")
        .root_certificate_pem(emu.ca_pem())
        .authority_host(emu.token_endpoint_authority())
        .refresh_policy(fast_policy())
}

/// A handle from [`builder`].
pub async fn connect(emu: &Emulator, kind: AuthKind) -> AzureRedis {
    builder(emu, kind)
        .connect()
        .await
        .expect("connects through the gate")
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
