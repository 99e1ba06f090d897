//! Who may get tokens from the emulator and the secrets they present: the tenant, managed
//! identities, service principals, workload identities, the ones registered at start, the
//! access key, and the lifetime of the tokens minted.

use std::sync::atomic::Ordering;
use std::time::Duration;

use secrecy::SecretString;

use super::Emulator;
use crate::error::EmulatorError;
use crate::identity::IdentityState;
use crate::identity::{self, ServicePrincipal, UserIdentity, WorkloadIdentity};
use crate::random::random_hex;

/// The identities registered at start, used by [`Emulator::env_for`].
#[derive(Clone)]
pub(super) struct DefaultIdentities {
    user: UserIdentity,
    service_principal: ServicePrincipal,
    service_principal_secret: SecretString,
    workload: WorkloadIdentity,
}

impl DefaultIdentities {
    /// Registers a user-assigned identity, a service principal with a secret and a workload
    /// identity in `tenant`, each with a random client id.
    pub(super) fn register(state: &IdentityState, tenant: &str) -> Result<Self, EmulatorError> {
        let user = state.registry().add_user(&identity::new_uuid());
        let sp_secret = SecretString::from(format!("{}~{}", random_hex(4), random_hex(16)));
        let service_principal =
            state.add_service_principal(tenant, &identity::new_uuid(), sp_secret.clone());
        let workload = state.add_workload_identity(tenant, &identity::new_uuid())?;
        Ok(Self {
            user,
            service_principal,
            service_principal_secret: sp_secret,
            workload,
        })
    }
}

impl Emulator {
    /// Tenant id of the emulated directory.
    pub fn tenant_id(&self) -> String {
        self.identity.registry().tenant_id.clone()
    }

    /// Object id (`oid`) of the system-assigned managed identity.
    pub fn system_identity(&self) -> String {
        self.identity.registry().system_oid.clone()
    }

    /// Registers a user-assigned managed identity (idempotent per client id).
    pub fn add_user_identity(&self, client_id: &str) -> UserIdentity {
        self.identity.registry().add_user(client_id)
    }

    /// Registers a service principal with a client secret (replacing the secret of an existing
    /// one).
    pub fn add_service_principal(
        &self,
        tenant_id: &str,
        client_id: &str,
        secret: impl Into<SecretString>,
    ) -> ServicePrincipal {
        self.identity
            .add_service_principal(tenant_id, client_id, secret.into())
    }

    /// Registers a workload identity: an app with a federated credential, and writes its
    /// projected service account token (signed by the emulator, valid 24 h) to a file.
    pub fn add_workload_identity(
        &self,
        tenant_id: &str,
        client_id: &str,
    ) -> Result<WorkloadIdentity, EmulatorError> {
        self.identity.add_workload_identity(tenant_id, client_id)
    }

    /// Rewrites the federated token file of `wi` with a new token valid for `lifetime`
    /// (`Duration::ZERO` writes one that has already expired).
    pub fn write_federated_token(
        &self,
        wi: &WorkloadIdentity,
        lifetime: Duration,
    ) -> Result<(), EmulatorError> {
        self.identity.write_federated_token(wi, lifetime)
    }

    /// The user-assigned identity registered at start (used by [`Emulator::env_for`]).
    pub fn default_user_identity(&self) -> &UserIdentity {
        &self.defaults.user
    }

    /// The service principal registered at start, and its secret.
    pub fn default_service_principal(&self) -> (&ServicePrincipal, &SecretString) {
        (
            &self.defaults.service_principal,
            &self.defaults.service_principal_secret,
        )
    }

    /// The workload identity registered at start.
    pub fn default_workload_identity(&self) -> &WorkloadIdentity {
        &self.defaults.workload
    }

    /// The current access key.
    pub fn access_key(&self) -> SecretString {
        self.identity
            .access_key
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Sets the access key and enables access-key auth (`AUTH <key>` / `AUTH default <key>`).
    pub fn set_access_key(&self, key: impl Into<SecretString>) {
        *self
            .identity
            .access_key
            .write()
            .unwrap_or_else(|p| p.into_inner()) = key.into();
        self.identity
            .access_key_enabled
            .store(true, Ordering::SeqCst);
    }

    /// Enables or disables access-key auth (Entra-only caches disable it).
    pub fn set_access_keys_enabled(&self, enabled: bool) {
        self.identity
            .access_key_enabled
            .store(enabled, Ordering::SeqCst);
    }

    /// Lifetime of the tokens the identity endpoints mint from now on.
    pub fn token_lifetime(&self) -> Duration {
        self.identity.token_lifetime()
    }

    /// Changes the lifetime of tokens minted from now on (at least 1 s).
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        let ms = lifetime.max(Duration::from_secs(1)).as_millis() as u64;
        self.identity.token_lifetime_ms.store(ms, Ordering::SeqCst);
    }
}
