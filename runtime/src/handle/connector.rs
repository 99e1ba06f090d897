//! How a redis-rs client is made from an endpoint and credentials: one rule for the
//! single-node connection, the cluster's discovery connection and the cluster's seed.

use std::time::Duration;

use redis::{
    AsyncConnectionConfig, Client, ConnectionAddr, ConnectionInfo, IntoConnectionInfo,
    ProtocolVersion, PushInfo, RedisConnectionInfo, RedisResult, TlsCertificates,
};
use secrecy::ExposeSecret;
use tokio::sync::mpsc;

use crate::token::Credentials;

/// RESP3 or RESP2.
pub(crate) fn protocol(resp3: bool) -> ProtocolVersion {
    if resp3 {
        ProtocolVersion::RESP3
    } else {
        ProtocolVersion::RESP2
    }
}

/// Where to connect: `host:port`, over TLS with `host` as the server name when `tls`. With
/// `credentials`, redis-rs sends `AUTH` (or `HELLO 3 AUTH`) as the connection's first command,
/// then `SELECT database`.
pub(crate) fn connection_info(
    host: &str,
    port: u16,
    tls: bool,
    database: i64,
    resp3: bool,
    credentials: Option<&Credentials>,
) -> RedisResult<ConnectionInfo> {
    let addr = if tls {
        ConnectionAddr::TcpTls {
            host: host.to_owned(),
            port,
            insecure: false,
            tls_params: None,
        }
    } else {
        ConnectionAddr::Tcp(host.to_owned(), port)
    };
    let mut settings = RedisConnectionInfo::default()
        .set_db(database)
        .set_protocol(protocol(resp3));
    if let Some(credentials) = credentials {
        settings = settings.set_password(credentials.password.expose_secret());
        if let Some(user) = &credentials.username {
            settings = settings.set_username(user);
        }
    }
    Ok(addr.into_connection_info()?.set_redis_settings(settings))
}

/// [`connection_info`] for a single-node `endpoint`: over TLS, the host connected to is the
/// endpoint's TLS server name when it has one.
pub(crate) fn endpoint_info(
    endpoint: &crate::config::Endpoint,
    resp3: bool,
    credentials: Option<&Credentials>,
) -> RedisResult<ConnectionInfo> {
    let e = endpoint;
    let host = match (&e.tls_server_name, e.tls) {
        (Some(name), true) => name.as_str(),
        _ => e.host.as_str(),
    };
    connection_info(host, e.port, e.tls, e.database, resp3, credentials)
}

/// The roots a TLS connection trusts: `root_ca_pem` alone when given, else the system's.
pub(crate) fn tls_roots(root_ca_pem: Option<&[u8]>) -> Option<TlsCertificates> {
    root_ca_pem.map(|pem| TlsCertificates {
        client_tls: None,
        root_cert: Some(pem.to_vec()),
    })
}

/// A client for `info`, trusting `root_ca_pem` for TLS when given.
pub(crate) fn client(info: ConnectionInfo, root_ca_pem: Option<&[u8]>) -> RedisResult<Client> {
    let tls = matches!(info.addr(), ConnectionAddr::TcpTls { .. });
    match tls_roots(root_ca_pem) {
        Some(roots) if tls => Client::build_with_tls(info, roots),
        _ => Client::open(info),
    }
}

/// The connection settings of a multiplexed connection: its timeouts, and a channel for its
/// RESP3 pushes (returned) when `resp3`.
pub(crate) fn connection_config(
    connect_timeout: Duration,
    response_timeout: Option<Duration>,
    resp3: bool,
) -> (
    AsyncConnectionConfig,
    Option<mpsc::UnboundedReceiver<PushInfo>>,
) {
    let mut config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(connect_timeout))
        .set_response_timeout(response_timeout);
    let mut pushes = None;
    if resp3 {
        let (tx, rx) = mpsc::unbounded_channel();
        config = config.set_push_sender(tx);
        pushes = Some(rx);
    }
    (config, pushes)
}
