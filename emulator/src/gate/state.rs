//! The state of one gate (the TLS and plain listeners in front of one redis-server): its
//! settings, the child redis-server, its faults and counters, and the AUTH check, made against
//! the emulator's shared [`IdentityState`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

use crate::counters::{GateCounterCells, inc};
use crate::faults::GateFaults;
use crate::identity::IdentityState;
use crate::jwt::{self, Rejection};
use crate::random::random_hex;
use crate::redis_server::{RedisConfig, RedisServer};
use crate::resp;

/// How a gate treats its clients; the same for every gate of one emulator.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GateSettings {
    pub(crate) limits: resp::Limits,
    pub(crate) auth_delay: Option<Duration>,
    pub(crate) idle_timeout: Option<Duration>,
}

/// The state of one gate and of the redis-server behind it.
pub(crate) struct GateState {
    /// The emulator's identity side, which every gate of it shares.
    pub(crate) identity: Arc<IdentityState>,
    pub(crate) settings: GateSettings,
    /// What the gate sends redis-server in place of a refused credential.
    pub(crate) wrong_password: String,
    pub(crate) counters: GateCounterCells,
    pub(crate) faults: GateFaults,
    /// Stops this gate (and refuses redis-server restarts once fired).
    pub(crate) shutdown: CancellationToken,
    pub(crate) redis_config: RedisConfig,
    pub(crate) redis: Mutex<Option<RedisServer>>,
    /// Serialises restarts of redis-server.
    pub(crate) redis_restart: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for GateState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GateState")
            .field("authority", &self.identity.authority)
            .field("redis_port", &self.redis_config.port)
            .finish_non_exhaustive()
    }
}

/// A username fit for logs: what clients send there is an oid, a client id or `default`;
/// anything that looks like a token (or is long) is not shown, the rest is escaped
/// ([`super::escape_client_text`]) so that it cannot forge log lines.
fn loggable_user(bytes: &[u8]) -> String {
    if bytes.len() > 64 || bytes.starts_with(b"eyJ") {
        format!("<{} bytes not shown>", bytes.len())
    } else {
        super::escape_client_text(bytes)
    }
}

impl GateState {
    /// A gate in front of `server` (started with `redis_config`), checking AUTH against
    /// `identity`, stopped by `shutdown`.
    pub(crate) fn new(
        identity: Arc<IdentityState>,
        settings: GateSettings,
        redis_config: RedisConfig,
        server: RedisServer,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            identity,
            settings,
            wrong_password: format!("wrong-{}", random_hex(8)),
            counters: GateCounterCells::default(),
            faults: GateFaults::default(),
            shutdown,
            redis_config,
            redis: Mutex::new(Some(server)),
            redis_restart: tokio::sync::Mutex::new(()),
        }
    }

    /// The password of the redis-server behind the gate.
    pub(crate) fn internal_password(&self) -> &SecretString {
        &self.redis_config.password
    }

    pub(crate) fn take_redis(&self) -> Option<RedisServer> {
        self.redis.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    pub(crate) fn put_redis(&self, server: RedisServer) {
        *self.redis.lock().unwrap_or_else(|p| p.into_inner()) = Some(server);
    }

    /// Validates AUTH credentials like Azure. `Ok(Some(exp))` for a token, `Ok(None)` for the
    /// access key.
    pub(crate) fn check_auth(
        &self,
        username: Option<&[u8]>,
        password: &[u8],
        conn: u64,
    ) -> Result<Option<i64>, Rejection> {
        let user = username
            .map(loggable_user)
            .unwrap_or_else(|| "default".to_string());
        let verdict = self.verdict(username, password);
        match &verdict {
            Ok(Some(exp)) => {
                inc(&self.counters.auth_accepted);
                tracing::info!(conn, oid = %user, exp, "AUTH accepted (token)");
            }
            Ok(None) => {
                inc(&self.counters.auth_accepted);
                tracing::info!(conn, user = %user, "AUTH accepted (access key)");
            }
            Err(r) => {
                inc(&self.counters.auth_rejected);
                tracing::info!(conn, user = %user, reason = r.as_str(), "AUTH rejected");
            }
        }
        verdict
    }

    pub(crate) fn verdict(
        &self,
        username: Option<&[u8]>,
        password: &[u8],
    ) -> Result<Option<i64>, Rejection> {
        if self.faults.take_auth_rejection() {
            return Err(Rejection::Injected);
        }
        let default_user = username.is_none_or(|u| u == b"default");
        if default_user {
            let key_ok = self.identity.access_key_accepts(password);
            return if key_ok {
                Ok(None)
            } else {
                Err(Rejection::WrongPassword)
            };
        }
        let token = std::str::from_utf8(password).map_err(|_| Rejection::Malformed)?;
        let valid = jwt::validate_access_token(&self.identity.key, token)?;
        if Some(valid.oid.as_bytes()) != username {
            return Err(Rejection::UsernameMismatch);
        }
        Ok(Some(valid.exp))
    }
}
