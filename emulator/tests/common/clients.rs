//! Clients of the gate (the `redis` crate) and of the identity endpoints (reqwest,
//! azure_core), and what tokens say.

use std::sync::Arc;
use std::time::Duration;

use azure_redis_emulator::Emulator;

/// A `redis` crate client for the gate over TLS, authenticating as `user` with `password`.
pub fn redis_client(emu: &Emulator, user: &str, password: &str) -> redis::Client {
    redis_client_at(
        emu.tls_addr().port(),
        emu.ca_pem().as_bytes().to_vec(),
        user,
        password,
    )
}

/// A `redis` crate client for a gate on `localhost:port` over TLS with a certificate from
/// `ca_pem`, authenticating as `user` with `password`.
pub fn redis_client_at(port: u16, ca_pem: Vec<u8>, user: &str, password: &str) -> redis::Client {
    redis_client_with(
        port,
        ca_pem,
        redis::RedisConnectionInfo::default()
            .set_username(user)
            .set_password(password),
    )
}

/// A `redis` crate client for a gate on `localhost:port` over TLS with a certificate from
/// `ca_pem`, that connects without authenticating.
pub fn unauthenticated_redis_client_at(port: u16, ca_pem: Vec<u8>) -> redis::Client {
    redis_client_with(port, ca_pem, redis::RedisConnectionInfo::default())
}

fn redis_client_with(
    port: u16,
    ca_pem: Vec<u8>,
    settings: redis::RedisConnectionInfo,
) -> redis::Client {
    use redis::IntoConnectionInfo as _;
    let info = format!("rediss://localhost:{port}/0")
        .as_str()
        .into_connection_info()
        .expect("connection info")
        .set_redis_settings(settings);
    redis::Client::build_with_tls(
        info,
        redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(ca_pem),
        },
    )
    .expect("redis client")
}

/// A multiplexed connection of `client` without the `redis` crate's own response timeout
/// (500 ms by default; `WAIT` and cluster commands can take longer, and every test is bounded).
pub async fn redis_connection(client: &redis::Client) -> redis::aio::MultiplexedConnection {
    let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .expect("connects to the gate")
}

/// Sends the command `args` on `conn`; an error reply is an `Err`.
pub async fn query<T: redis::FromRedisValue>(
    conn: &mut redis::aio::MultiplexedConnection,
    args: &[&str],
) -> redis::RedisResult<T> {
    let mut cmd = redis::Cmd::new();
    for arg in args {
        cmd.arg(*arg);
    }
    cmd.query_async(conn).await
}

/// An error reply as the server sent it (`MOVED 12182 host:port`, `NOAUTH ...`).
pub fn error_line(e: &redis::RedisError) -> String {
    match (e.code(), e.detail()) {
        (Some(code), Some(detail)) => format!("{code} {detail}"),
        (Some(code), None) => code.to_string(),
        _ => panic!("not an error reply: {e}"),
    }
}

/// The claims of a JWT (payload parsed as JSON, never by substring).
pub fn claims_of(jwt: &str) -> serde_json::Value {
    use base64::Engine as _;
    let payload = jwt.split('.').nth(1).expect("JWT payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON payload")
}

/// The `oid` claim of a JWT.
pub fn oid_of(jwt: &str) -> String {
    claims_of(jwt)["oid"]
        .as_str()
        .expect("oid claim")
        .to_string()
}

/// The current time in Unix seconds.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

/// An HTTP client (reqwest, as azure_core uses) that trusts only the emulator's CA.
pub fn https_client(emu: &Emulator) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(emu.ca_pem().as_bytes()).expect("CA")])
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("reqwest client")
}

/// azure_core client options that reach the emulator's token endpoint without any environment
/// variable: a custom cloud whose authority is the emulator, a transport trusting its CA, and
/// no retries.
pub fn azure_client_options(emu: &Emulator) -> azure_core::http::ClientOptions {
    let mut cloud = azure_core::cloud::CustomConfiguration::default();
    cloud.authority_host = emu.token_endpoint_authority();
    azure_core::http::ClientOptions {
        cloud: Some(Arc::new(cloud.into())),
        transport: Some(azure_core::http::Transport::new(Arc::new(https_client(
            emu,
        )))),
        retry: azure_core::http::RetryOptions::none(),
        ..Default::default()
    }
}

/// Connects to the gate over TLS with `token` and checks a round trip.
pub async fn check_token_at_gate(emu: &Emulator, token: &str) {
    let oid = oid_of(token);
    let client = redis_client(emu, &oid, token);
    let mut con = client
        .get_multiplexed_async_connection()
        .await
        .expect("the gate accepts the token");
    let () = redis::cmd("SET")
        .arg("cred-check")
        .arg(&oid)
        .query_async(&mut con)
        .await
        .expect("SET");
    let back: String = redis::cmd("GET")
        .arg("cred-check")
        .query_async(&mut con)
        .await
        .expect("GET");
    assert_eq!(back, oid);
}
