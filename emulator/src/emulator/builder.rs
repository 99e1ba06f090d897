//! The emulator's settings, with their defaults.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

use super::Emulator;
use crate::error::EmulatorError;

/// Default lifetime of minted access tokens.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
/// Default largest bulk argument, as redis-server's `proto-max-bulk-len`.
pub const DEFAULT_MAX_BULK_LEN: u64 = 512 * 1024 * 1024;

/// Configures and starts an [`Emulator`].
#[derive(Clone)]
pub struct EmulatorBuilder {
    pub(super) token_lifetime: Duration,
    pub(super) plain_listener: bool,
    pub(super) access_key: Option<SecretString>,
    pub(super) access_keys_enabled: bool,
    pub(super) tenant_id: Option<String>,
    pub(super) redis_server: PathBuf,
    pub(super) max_bulk_len: u64,
    pub(super) max_intercepted_len: usize,
    pub(super) auth_delay: Option<Duration>,
    pub(super) idle_timeout: Option<Duration>,
}

impl std::fmt::Debug for EmulatorBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmulatorBuilder")
            .field("token_lifetime", &self.token_lifetime)
            .field("plain_listener", &self.plain_listener)
            .field("access_keys_enabled", &self.access_keys_enabled)
            .field("tenant_id", &self.tenant_id)
            .field("redis_server", &self.redis_server)
            .field("max_bulk_len", &self.max_bulk_len)
            .field("auth_delay", &self.auth_delay)
            .field("idle_timeout", &self.idle_timeout)
            .finish_non_exhaustive()
    }
}

impl Default for EmulatorBuilder {
    fn default() -> Self {
        Self {
            token_lifetime: DEFAULT_TOKEN_LIFETIME,
            plain_listener: false,
            access_key: None,
            access_keys_enabled: true,
            tenant_id: None,
            redis_server: PathBuf::from("redis-server"),
            max_bulk_len: DEFAULT_MAX_BULK_LEN,
            max_intercepted_len: 1024 * 1024,
            auth_delay: None,
            idle_timeout: None,
        }
    }
}

impl EmulatorBuilder {
    /// Lifetime of the access tokens the identity endpoints mint (default 1 hour; at least
    /// 1 second). Changeable later with [`Emulator::set_token_lifetime`].
    pub fn token_lifetime(mut self, lifetime: Duration) -> Self {
        self.token_lifetime = lifetime;
        self
    }

    /// Also open a plain (non-TLS) gate listener (default: off).
    pub fn plain_listener(mut self, enabled: bool) -> Self {
        self.plain_listener = enabled;
        self
    }

    /// The access key (default: a random base64 key containing `+`, `/` and `=`).
    pub fn access_key(mut self, key: impl Into<SecretString>) -> Self {
        self.access_key = Some(key.into());
        self
    }

    /// Accept the access key as `AUTH <key>` / `AUTH default <key>` (default: on, like a new
    /// Azure cache).
    pub fn access_keys_enabled(mut self, enabled: bool) -> Self {
        self.access_keys_enabled = enabled;
        self
    }

    /// Tenant id of the emulated directory (default: a random UUID).
    pub fn tenant_id(mut self, tenant_id: impl Into<String>) -> Self {
        self.tenant_id = Some(tenant_id.into());
        self
    }

    /// The redis-server executable: a name looked up on `PATH` or a path (default
    /// `redis-server`).
    pub fn redis_server(mut self, path: impl Into<PathBuf>) -> Self {
        self.redis_server = path.into();
        self
    }

    /// Largest bulk argument the gate accepts before answering
    /// `-ERR Protocol error: invalid bulk length` and closing (default 512 MiB).
    pub fn max_bulk_len(mut self, bytes: u64) -> Self {
        self.max_bulk_len = bytes;
        self
    }

    /// Makes the gate wait this long before checking each AUTH (Azure can take seconds).
    pub fn auth_delay(mut self, delay: Duration) -> Self {
        self.auth_delay = Some(delay);
        self
    }

    /// Closes gate connections on which nothing moved for this long, without a reply (Azure
    /// does so after 10 minutes). Default: never.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = Some(timeout);
        self
    }

    /// The redis-server executable named by [`EmulatorBuilder::redis_server`].
    pub(crate) fn redis_server_path(&self) -> PathBuf {
        self.redis_server.clone()
    }

    /// Starts every server and the child redis-server.
    pub async fn start(self) -> Result<Emulator, EmulatorError> {
        Emulator::start_with(self).await
    }
}
