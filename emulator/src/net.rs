//! Loopback ports and listeners.

use std::net::SocketAddr;

use tokio::net::TcpListener;

use crate::error::EmulatorError;

/// A port free on `127.0.0.1` now (for a child redis-server, which binds it itself).
pub(crate) fn free_port() -> Result<u16, EmulatorError> {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0))
        .map_err(|e| EmulatorError::io("finding a free port", e))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| EmulatorError::io("finding a free port", e))
}

/// A listener on a free port of `127.0.0.1`; `what` names it in the error.
pub(crate) async fn bind_loopback(what: &str) -> Result<TcpListener, EmulatorError> {
    TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(|e| EmulatorError::io(format!("binding the {what} listener"), e))
}

/// The address `l` listens on.
pub(crate) fn local_addr(l: &TcpListener) -> Result<SocketAddr, EmulatorError> {
    l.local_addr()
        .map_err(|e| EmulatorError::io("reading a listener address", e))
}
