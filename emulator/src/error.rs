//! Errors reported by the emulator.

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
}

impl EmulatorError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}
