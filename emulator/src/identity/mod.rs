//! The identity registry: which principals exist and how they prove who they are; the identity
//! state built around it is in `state`.

mod state;

use std::collections::HashMap;
use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};

pub(crate) use state::{IdentitySettings, IdentityState};

/// A user-assigned managed identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserIdentity {
    /// Client id (what `AZURE_REDIS_CLIENTID` carries).
    pub client_id: String,
    /// Object id: the `oid` claim of its tokens, and the Redis username.
    pub oid: String,
    /// ARM resource id (accepted as `mi_res_id` / `msi_res_id`).
    pub resource_id: String,
}

/// An application registration with a client secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePrincipal {
    /// Tenant id.
    pub tenant_id: String,
    /// Application (client) id.
    pub client_id: String,
    /// Object id of the service principal: the Redis username.
    pub oid: String,
}

/// An application trusted through a federated credential (AKS workload identity).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadIdentity {
    /// Tenant id.
    pub tenant_id: String,
    /// Application (client) id.
    pub client_id: String,
    /// Object id of the service principal: the Redis username.
    pub oid: String,
    /// The projected service account token file (`AZURE_FEDERATED_TOKEN_FILE`), written and
    /// signed by the emulator.
    pub token_file: PathBuf,
    /// The subject the federated credential trusts.
    pub subject: String,
}

/// An app registration in a tenant.
pub(crate) struct App {
    pub(crate) oid: String,
    pub(crate) secret: Option<SecretString>,
    pub(crate) federated_subject: Option<String>,
}

/// All principals known to one emulator.
pub(crate) struct Registry {
    pub(crate) tenant_id: String,
    pub(crate) system_oid: String,
    pub(crate) users: Vec<UserIdentity>,
    apps: HashMap<(String, String), App>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("tenant_id", &self.tenant_id)
            .field("system_oid", &self.system_oid)
            .field("users", &self.users.len())
            .field("apps", &self.apps.len())
            .finish()
    }
}

pub(crate) fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl Registry {
    pub(crate) fn new(tenant_id: String) -> Self {
        Self {
            tenant_id,
            system_oid: new_uuid(),
            users: Vec::new(),
            apps: HashMap::new(),
        }
    }

    pub(crate) fn add_user(&mut self, client_id: &str) -> UserIdentity {
        if let Some(u) = self.users.iter().find(|u| u.client_id == client_id) {
            return u.clone();
        }
        let u = UserIdentity {
            client_id: client_id.to_string(),
            oid: new_uuid(),
            resource_id: format!(
                "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/emulator/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{client_id}"
            ),
        };
        self.users.push(u.clone());
        u
    }

    fn key(tenant: &str, client_id: &str) -> (String, String) {
        (tenant.to_ascii_lowercase(), client_id.to_string())
    }

    /// Registers (or updates) an app; returns its oid.
    pub(crate) fn upsert_app(
        &mut self,
        tenant: &str,
        client_id: &str,
        secret: Option<SecretString>,
        federated_subject: Option<String>,
    ) -> String {
        let app = self
            .apps
            .entry(Self::key(tenant, client_id))
            .or_insert_with(|| App {
                oid: new_uuid(),
                secret: None,
                federated_subject: None,
            });
        if secret.is_some() {
            app.secret = secret;
        }
        if federated_subject.is_some() {
            app.federated_subject = federated_subject;
        }
        app.oid.clone()
    }

    pub(crate) fn tenant_known(&self, tenant: &str) -> bool {
        let t = tenant.to_ascii_lowercase();
        t == self.tenant_id.to_ascii_lowercase() || self.apps.keys().any(|(k, _)| *k == t)
    }

    pub(crate) fn app(&self, tenant: &str, client_id: &str) -> Option<&App> {
        self.apps.get(&Self::key(tenant, client_id))
    }

    /// Resolves a managed identity request: `None` selects the system identity.
    pub(crate) fn managed_identity(
        &self,
        selector: Option<MiSelector<'_>>,
    ) -> Option<(String, Option<String>)> {
        match selector {
            None => Some((self.system_oid.clone(), None)),
            Some(MiSelector::Client(c)) => self
                .users
                .iter()
                .find(|u| u.client_id.eq_ignore_ascii_case(c))
                .map(|u| (u.oid.clone(), Some(u.client_id.clone()))),
            Some(MiSelector::Object(o)) => self
                .users
                .iter()
                .find(|u| u.oid.eq_ignore_ascii_case(o))
                .map(|u| (u.oid.clone(), Some(u.client_id.clone()))),
            Some(MiSelector::Resource(r)) => self
                .users
                .iter()
                .find(|u| u.resource_id.eq_ignore_ascii_case(r))
                .map(|u| (u.oid.clone(), Some(u.client_id.clone()))),
        }
    }
}

/// How a managed identity request names a user-assigned identity.
#[derive(Clone, Copy, Debug)]
pub(crate) enum MiSelector<'a> {
    Client(&'a str),
    Object(&'a str),
    Resource(&'a str),
}

/// Constant-time-ish comparison of a presented secret with the stored one.
pub(crate) fn secret_eq(stored: &SecretString, presented: &[u8]) -> bool {
    let a = stored.expose_secret().as_bytes();
    if a.len() != presented.len() {
        return false;
    }
    a.iter()
        .zip(presented)
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}
