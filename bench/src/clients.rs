//! The clients measured: the raw redis-rs baseline, and our handle with a minted token or
//! through the emulator's gate.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use azure_redis_connect::redis::{self, aio::MultiplexedConnection};
use azure_redis_connect::token::{AccessToken, RefreshPolicy, TokenError, TokenSource};
use azure_redis_connect::{Auth, AzureRedis, AzureRedisConfig, Endpoint, SecretString};
use azure_redis_emulator::{Emulator, ServiceConnectorAuth};

use crate::Error;

/// How the raw redis-rs baseline is configured: as the handle configures its own connection
/// by default (RESP3 with a push sender, the handle's connect and response timeouts,
/// plaintext to the same redis-server), so that a ratio measures the handle alone.
pub(crate) const BASELINE: &str = "raw redis-rs MultiplexedConnection configured as the handle's: RESP3 with a push sender, connect timeout = handle::DEFAULT_CONNECT_TIMEOUT (10 s), response timeout = handle::DEFAULT_RESPONSE_TIMEOUT (5 s), the same transport (plaintext, or TLS to localhost trusting the same CA through redis-rs's rustls), the same redis-server";

/// The baseline's ACL user, with a static password.
pub(crate) const RAW_USER: &str = "bench";
/// [`RAW_USER`]'s password.
pub(crate) const RAW_PASSWORD: &str = "bench-static-password";

/// Opens the raw baseline connection ([`BASELINE`]) as [`RAW_USER`] to `addr`: plaintext, or
/// with `tls_ca_pem` over TLS to `localhost` trusting it, as the handle is configured
/// (`root_certificate_pem`).
pub(crate) async fn raw_connection(
    addr: SocketAddr,
    tls_ca_pem: Option<&str>,
) -> Result<MultiplexedConnection, Error> {
    let (user, password) = (RAW_USER, RAW_PASSWORD);
    let client = match tls_ca_pem {
        None => redis::Client::open(format!("redis://{user}:{password}@{addr}/?protocol=resp3"))?,
        Some(ca_pem) => redis::Client::build_with_tls(
            format!(
                "rediss://{user}:{password}@localhost:{}/?protocol=resp3",
                addr.port()
            ),
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(ca_pem.as_bytes().to_vec()),
            },
        )?,
    };
    // Drained as the handle's supervisor drains its own; the task ends with the connection.
    let (pushes, mut received) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move { while received.recv().await.is_some() {} });
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(azure_redis_connect::handle::DEFAULT_CONNECT_TIMEOUT))
        .set_response_timeout(Some(azure_redis_connect::handle::DEFAULT_RESPONSE_TIMEOUT))
        .set_push_sender(pushes);
    Ok(client
        .get_multiplexed_async_connection_with_config(&config)
        .await?)
}

/// Our handle straight to the redis-server at `addr` (no gate), authenticated with `token`:
/// plaintext to `127.0.0.1`, or with `tls_ca_pem` over TLS to `localhost` trusting it.
pub(crate) async fn minted_handle(
    addr: SocketAddr,
    tls_ca_pem: Option<&str>,
    token: AccessToken,
) -> Result<AzureRedis, Error> {
    let tls = tls_ca_pem.is_some();
    let mut endpoint = Endpoint::new(if tls { "localhost" } else { "127.0.0.1" });
    endpoint.port = addr.port();
    endpoint.tls = tls;
    let mut builder = AzureRedis::builder(endpoint, Auth::SystemIdentity)
        .allow_plaintext()
        .token_source(Minted(token));
    if let Some(ca_pem) = tls_ca_pem {
        builder = builder.root_certificate_pem(ca_pem.as_bytes());
    }
    Ok(builder.connect().await?)
}

/// Our handle through the emulator's gate, with a real service principal credential.
pub(crate) async fn gate_handle(
    emu: &Emulator,
    policy: RefreshPolicy,
) -> Result<AzureRedis, Error> {
    let cache = Cache::from_vars(emu.env_for(ServiceConnectorAuth::ServicePrincipal))?;
    Ok(AzureRedis::builder_from(&cache)?
        .root_certificate_pem(emu.ca_pem())
        .authority_host(emu.token_endpoint_authority())
        .refresh_policy(policy)
        .connect()
        .await?)
}

/// A token minted by the emulator, handed out as is (it outlives the benchmark).
struct Minted(AccessToken);

impl TokenSource for Minted {
    fn fetch(&self) -> Pin<Box<dyn Future<Output = Result<AccessToken, TokenError>> + Send + '_>> {
        let token = self.0.clone();
        Box::pin(async move { Ok(token) })
    }
}

/// Service Connector's variables for a service principal, as the gate's handles read them.
#[derive(AzureRedisConfig, Debug)]
#[azure_redis(auth = "service_principal")]
struct Cache {
    host: String,
    port: Option<u16>,
    client_id: String,
    tenant_id: String,
    client_secret: SecretString,
}
