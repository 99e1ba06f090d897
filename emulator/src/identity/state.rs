//! State shared by the emulator's servers.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use base64::Engine as _;
use rsa::rand_core::{OsRng, RngCore as _};
use secrecy::SecretString;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::error::EmulatorError;
use crate::faults::{CounterCells, FaultState, inc};
use crate::identity::{Registry, ServicePrincipal, WorkloadIdentity, secret_eq};
use crate::jwt::{self, FEDERATED_AUDIENCE, KeyMaterial, Rejection};
use crate::redis_server::{RedisConfig, RedisServer};
use crate::resp;

/// Lifetime of the federated token files the emulator writes.
pub(crate) const FEDERATED_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    OsRng.fill_bytes(&mut b);
    b
}

pub(crate) fn random_hex(n_bytes: usize) -> String {
    let mut b = vec![0u8; n_bytes];
    OsRng.fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A random access key shaped like Azure's (base64 of 32 bytes) that contains `+`, `/` and `=`,
/// so that parsers of both connection string syntaxes get exercised.
pub(crate) fn random_access_key() -> String {
    loop {
        let k = base64::engine::general_purpose::STANDARD.encode(random_bytes::<32>());
        if k.contains('+') && k.contains('/') {
            return k;
        }
    }
}

/// State shared by the emulator's servers.
pub(crate) struct Shared {
    pub(crate) key: Arc<KeyMaterial>,
    pub(crate) registry: Mutex<Registry>,
    pub(crate) token_lifetime_ms: AtomicU64,
    /// Shared by the identity emulator and every cluster node's gate, so that a key set on one
    /// is the key of all.
    pub(crate) access_key: Arc<RwLock<SecretString>>,
    /// Shared like `access_key`.
    pub(crate) access_key_enabled: Arc<AtomicBool>,
    pub(crate) identity_header: SecretString,
    pub(crate) internal_password: SecretString,
    pub(crate) wrong_password: String,
    pub(crate) counters: CounterCells,
    pub(crate) faults: FaultState,
    pub(crate) shutdown: CancellationToken,
    pub(crate) limits: resp::Limits,
    pub(crate) auth_delay: Option<Duration>,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) redis_config: RedisConfig,
    pub(crate) redis: Mutex<Option<RedisServer>>,
    pub(crate) redis_restart: tokio::sync::Mutex<()>,
    pub(crate) authority: String,
    pub(crate) federation_issuer: String,
    /// The temporary directory (CA file, federated token files, redis.conf and log).
    pub(crate) dir: PathBuf,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("authority", &self.authority)
            .field("redis_port", &self.redis_config.port)
            .finish_non_exhaustive()
    }
}

/// A username fit for logs: what clients send there is an oid, a client id or `default`;
/// anything that looks like a token (or is long) is not shown, the rest is escaped
/// ([`crate::gate::escape_client_text`]) so that it cannot forge log lines.
fn loggable_user(bytes: &[u8]) -> String {
    if bytes.len() > 64 || bytes.starts_with(b"eyJ") {
        format!("<{} bytes not shown>", bytes.len())
    } else {
        crate::gate::escape_client_text(bytes)
    }
}

impl Shared {
    pub(crate) fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn token_lifetime(&self) -> Duration {
        Duration::from_millis(self.token_lifetime_ms.load(Ordering::SeqCst))
    }

    pub(crate) fn authority(&self) -> &str {
        &self.authority
    }

    pub(crate) fn federation_issuer(&self) -> &str {
        &self.federation_issuer
    }

    pub(crate) fn take_redis(&self) -> Option<RedisServer> {
        self.redis.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    pub(crate) fn put_redis(&self, server: RedisServer) {
        *self.redis.lock().unwrap_or_else(|p| p.into_inner()) = Some(server);
    }

    /// Mints an access token; returns it and its `exp`.
    pub(crate) fn mint(
        &self,
        oid: &str,
        tenant: &str,
        app_id: Option<&str>,
        audience: &str,
        lifetime: Duration,
    ) -> (String, i64) {
        let now = jwt::now_unix();
        let iat = now.floor() as i64;
        // Round up so that a token is valid for at least `lifetime`.
        let exp = (now + lifetime.as_secs_f64()).ceil() as i64;
        let mut claims = json!({
            "aud": audience,
            "iss": format!("https://sts.windows.net/{tenant}/"),
            "iat": iat,
            "nbf": iat,
            "exp": exp,
            "idtyp": "app",
            "oid": oid,
            "sub": oid,
            "tid": tenant,
            "uti": random_hex(12),
            "ver": "1.0",
        });
        if let Some(app) = app_id {
            claims["appid"] = json!(app);
            claims["appidacr"] = json!("1");
        }
        let token = self.key.sign(&claims);
        inc(&self.counters.tokens_minted);
        tracing::info!(oid, exp, "token minted");
        (token, exp)
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
            let key_ok = self.access_key_enabled.load(Ordering::SeqCst)
                && secret_eq(
                    &self.access_key.read().unwrap_or_else(|p| p.into_inner()),
                    password,
                );
            return if key_ok {
                Ok(None)
            } else {
                Err(Rejection::WrongPassword)
            };
        }
        let token = std::str::from_utf8(password).map_err(|_| Rejection::Malformed)?;
        let valid = jwt::validate_access_token(&self.key, token)?;
        if Some(valid.oid.as_bytes()) != username {
            return Err(Rejection::UsernameMismatch);
        }
        Ok(Some(valid.exp))
    }

    pub(crate) fn add_service_principal(
        &self,
        tenant_id: &str,
        client_id: &str,
        secret: SecretString,
    ) -> ServicePrincipal {
        let oid = self
            .registry()
            .upsert_app(tenant_id, client_id, Some(secret), None);
        ServicePrincipal {
            tenant_id: tenant_id.to_string(),
            client_id: client_id.to_string(),
            oid,
        }
    }

    pub(crate) fn add_workload_identity(
        &self,
        tenant_id: &str,
        client_id: &str,
    ) -> Result<WorkloadIdentity, EmulatorError> {
        let subject = format!("system:serviceaccount:default:{client_id}");
        let oid = self
            .registry()
            .upsert_app(tenant_id, client_id, None, Some(subject.clone()));
        let file_name: String = client_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let wi = WorkloadIdentity {
            tenant_id: tenant_id.to_string(),
            client_id: client_id.to_string(),
            oid,
            token_file: self.dir.join(format!("federated-token-{file_name}")),
            subject,
        };
        self.write_federated_token(&wi, FEDERATED_TOKEN_LIFETIME)?;
        Ok(wi)
    }

    pub(crate) fn write_federated_token(
        &self,
        wi: &WorkloadIdentity,
        lifetime: Duration,
    ) -> Result<(), EmulatorError> {
        let token = self.federated_token(&wi.subject, lifetime);
        std::fs::write(&wi.token_file, token)
            .map_err(|e| EmulatorError::io("writing a federated token file", e))
    }

    pub(crate) fn federated_token(&self, subject: &str, lifetime: Duration) -> String {
        let now = jwt::now_unix() as i64;
        let claims = json!({
            "aud": [FEDERATED_AUDIENCE],
            "iss": self.federation_issuer,
            "sub": subject,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime.as_secs() as i64,
            "kubernetes.io": {"namespace": "default", "serviceaccount": {"name": subject.rsplit(':').next().unwrap_or("workload")}},
        });
        self.key.sign(&claims)
    }
}
