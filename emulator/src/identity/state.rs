//! The identity side of one emulator, shared by all of its gates (a single node's, or every
//! node's of a cluster): the signing key, the registry, the access key, the identity endpoints'
//! faults and counters.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use secrecy::SecretString;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::counters::{IdentityCounterCells, inc};
use crate::error::EmulatorError;
use crate::faults::IdentityFaults;
use crate::identity::{Registry, ServicePrincipal, WorkloadIdentity, secret_eq};
use crate::jwt::{self, FEDERATED_AUDIENCE, KeyMaterial};
use crate::random::random_hex;

/// Lifetime of the federated token files the emulator writes.
pub(crate) const FEDERATED_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// The identity side of one emulator: who exists, how tokens are signed and how long they
/// last, the access key, and the identity endpoints' faults and counters. Every gate of the
/// emulator checks AUTH against this one state, so that a key or lifetime set once holds for
/// all of them.
pub(crate) struct IdentityState {
    pub(crate) key: Arc<KeyMaterial>,
    pub(crate) registry: Mutex<Registry>,
    pub(crate) token_lifetime_ms: AtomicU64,
    pub(crate) access_key: RwLock<SecretString>,
    pub(crate) access_key_enabled: AtomicBool,
    pub(crate) identity_header: SecretString,
    pub(crate) counters: IdentityCounterCells,
    pub(crate) faults: IdentityFaults,
    /// Stops the identity endpoints.
    pub(crate) shutdown: CancellationToken,
    pub(crate) authority: String,
    pub(crate) federation_issuer: String,
    /// The emulator's temporary directory, where federated token files go.
    pub(crate) dir: PathBuf,
}

/// What an [`IdentityState`] starts with.
pub(crate) struct IdentitySettings {
    pub(crate) tenant_id: String,
    pub(crate) token_lifetime: Duration,
    pub(crate) access_key: SecretString,
    pub(crate) access_keys_enabled: bool,
    /// The token endpoint's base URL, `https://localhost:<port>`.
    pub(crate) authority: String,
    pub(crate) dir: PathBuf,
}

impl std::fmt::Debug for IdentityState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityState")
            .field("authority", &self.authority)
            .finish_non_exhaustive()
    }
}

impl IdentityState {
    pub(crate) fn new(key: Arc<KeyMaterial>, settings: IdentitySettings) -> Self {
        let IdentitySettings {
            tenant_id,
            token_lifetime,
            access_key,
            access_keys_enabled,
            authority,
            dir,
        } = settings;
        Self {
            key,
            registry: Mutex::new(Registry::new(tenant_id)),
            token_lifetime_ms: AtomicU64::new(token_lifetime.as_millis() as u64),
            access_key: RwLock::new(access_key),
            access_key_enabled: AtomicBool::new(access_keys_enabled),
            identity_header: SecretString::from(random_hex(16)),
            counters: IdentityCounterCells::default(),
            faults: IdentityFaults::default(),
            shutdown: CancellationToken::new(),
            federation_issuer: format!("{authority}/federation"),
            authority,
            dir,
        }
    }

    /// Whether `password` is the access key and access-key auth is enabled.
    pub(crate) fn access_key_accepts(&self, password: &[u8]) -> bool {
        self.access_key_enabled.load(Ordering::SeqCst)
            && secret_eq(
                &self.access_key.read().unwrap_or_else(|p| p.into_inner()),
                password,
            )
    }

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
