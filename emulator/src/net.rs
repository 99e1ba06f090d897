//! Ports and listeners: the emulator's own listeners on the bind address, free loopback
//! ports for child redis-servers, and the host clients are told to use.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::net::TcpListener;

use crate::error::EmulatorError;

/// One of the single-node emulator's listeners, as named in [`EmulatorError::Bind`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Listener {
    /// The gate's TLS listener ([`crate::EmulatorBuilder::gate_port`]).
    GateTls,
    /// The gate's plain listener ([`crate::EmulatorBuilder::plain_port`]).
    GatePlain,
    /// The managed identity endpoint ([`crate::EmulatorBuilder::identity_port`]).
    ManagedIdentity,
    /// The Entra ID token endpoint ([`crate::EmulatorBuilder::token_endpoint_port`]).
    TokenEndpoint,
}

impl fmt::Display for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Listener::GateTls => "gate TLS",
            Listener::GatePlain => "gate plain",
            Listener::ManagedIdentity => "managed identity",
            Listener::TokenEndpoint => "token endpoint",
        })
    }
}

/// A port free on `127.0.0.1` now (for a child redis-server, which binds it itself).
pub(crate) fn free_port() -> Result<u16, EmulatorError> {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0))
        .map_err(|e| EmulatorError::io("finding a free port", e))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| EmulatorError::io("finding a free port", e))
}

/// A listener for `which` on `ip:port` (port 0: a free one).
pub(crate) async fn bind_listener(
    which: Listener,
    ip: IpAddr,
    port: u16,
) -> Result<TcpListener, EmulatorError> {
    let addr = SocketAddr::new(ip, port);
    TcpListener::bind(addr)
        .await
        .map_err(|source| EmulatorError::Bind {
            listener: which,
            addr,
            source,
        })
}

/// The address `l` listens on.
pub(crate) fn local_addr(l: &TcpListener) -> Result<SocketAddr, EmulatorError> {
    l.local_addr()
        .map_err(|e| EmulatorError::io("reading a listener address", e))
}

/// The address a client on this machine connects to for a listener bound to `ip`: `ip`
/// itself, or loopback when `ip` is the unspecified address (all interfaces).
pub(crate) fn connect_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        other => other,
    }
}

/// The host clients are told to use for `ip` (a [`connect_ip`]): `localhost` for
/// `127.0.0.1`, as Service Connector gives a host name, otherwise the address itself, since
/// `localhost` does not reach `127.0.0.2` or `::1` everywhere.
pub(crate) fn client_host(ip: IpAddr) -> String {
    if ip == IpAddr::V4(Ipv4Addr::LOCALHOST) {
        "localhost".to_string()
    } else {
        ip.to_string()
    }
}

/// `host` as it goes before `:port` in a URL or a `host:port` pair (IPv6 in brackets).
pub(crate) fn host_for_port(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_for_bind_addresses() {
        let host = |s: &str| client_host(connect_ip(s.parse().unwrap()));
        assert_eq!(host("127.0.0.1"), "localhost");
        assert_eq!(host("0.0.0.0"), "localhost");
        assert_eq!(host("127.0.0.2"), "127.0.0.2");
        assert_eq!(host("::"), "::1");
        assert_eq!(host_for_port(&host("::")), "[::1]");
        assert_eq!(host_for_port("localhost"), "localhost");
    }
}
