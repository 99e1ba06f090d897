//! Errors reported by the emulator.

use std::net::SocketAddr;

use crate::net::Listener;

/// Why the emulator could not start or could not carry out a request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmulatorError {
    /// `redis-server` is not on `PATH`.
    #[error(
        "redis-server was not found on PATH; install it (for example `apt-get install redis-server`) or point the emulator at it with EmulatorBuilder::redis_server"
    )]
    RedisServerNotFound,
    /// The child `redis-server` failed to start or to answer.
    #[error("redis-server: {0}")]
    RedisServer(String),
    /// An I/O operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What the emulator was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Building the CA, the certificates or the TLS configuration failed.
    #[error("TLS setup: {0}")]
    Tls(String),
    /// Generating or using the token signing key failed.
    #[error("signing key: {0}")]
    Key(String),
    /// An argument was not acceptable.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// One of the emulator's listeners could not bind its address (a fixed port already in
    /// use, an address this machine does not have).
    #[error("{}", bind_message(*.listener, *.addr, .source))]
    Bind {
        /// Which listener.
        listener: Listener,
        /// The address it tried (port 0: any free port).
        addr: SocketAddr,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

fn bind_message(listener: Listener, addr: SocketAddr, source: &std::io::Error) -> String {
    match source.kind() {
        std::io::ErrorKind::AddrInUse => format!(
            "the {listener} listener cannot bind {addr}: port {} is already in use on {}",
            addr.port(),
            addr.ip()
        ),
        std::io::ErrorKind::AddrNotAvailable => format!(
            "the {listener} listener cannot bind {addr}: {} is not an address of this machine",
            addr.ip()
        ),
        _ => format!("the {listener} listener cannot bind {addr}: {source}"),
    }
}

impl EmulatorError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}
