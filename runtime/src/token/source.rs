//! Token sources: azure_identity credentials, and static passwords.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use azure_core::credentials::TokenCredential;
use secrecy::SecretString;

use super::{AccessToken, BoxFuture, TokenError, TokenSource};

/// The scope of Azure Cache for Redis and Azure Managed Redis tokens.
pub const REDIS_SCOPE: &str = "https://redis.azure.com/.default";

/// Builds a credential; called once per token request by [`AzureCredentialSource::fresh`].
pub type CredentialFactory = dyn Fn() -> azure_core::Result<Arc<dyn TokenCredential>> + Send + Sync;

#[derive(Clone)]
enum Credential {
    /// One credential for every request: its own cache (if any) answers while it holds a token.
    Shared(Arc<dyn TokenCredential>),
    /// A new credential per request, so that every request reaches the identity endpoint.
    Fresh(Arc<CredentialFactory>),
}

/// Tokens for [`REDIS_SCOPE`] from any azure_identity credential.
///
/// azure_identity 1.0's credentials that call Entra ID or a managed identity endpoint keep a
/// token cache that hands back the cached token until 5 minutes before it expires. A provider
/// that refreshes at 75 % of a 1-hour token would get the same token back until then, and have
/// 5 minutes, not 15, to ride out an identity outage. [`fresh`](Self::fresh) (what
/// [`source_for`](super::source_for) uses) builds a new credential for each request, sharing
/// one HTTP client, so that every refresh reaches the endpoint when the policy says.
/// [`new`](Self::new) keeps one credential of your own, cache and all.
#[derive(Clone)]
pub struct AzureCredentialSource {
    credential: Credential,
    name: String,
    credential_type: &'static str,
}

impl AzureCredentialSource {
    /// Wraps a credential; `name` says which one in errors and logs. The credential's own cache,
    /// if it has one, answers refreshes while it holds a token.
    pub fn new(credential: Arc<dyn TokenCredential>, name: impl Into<String>) -> Self {
        AzureCredentialSource {
            credential: Credential::Shared(credential),
            name: name.into(),
            credential_type: "",
        }
    }

    /// Builds a new credential with `factory` for every token request, so that no credential
    /// cache answers a refresh; `name` says which credential in errors and logs.
    pub fn fresh(
        factory: impl Fn() -> azure_core::Result<Arc<dyn TokenCredential>> + Send + Sync + 'static,
        name: impl Into<String>,
    ) -> Self {
        AzureCredentialSource {
            credential: Credential::Fresh(Arc::new(factory)),
            name: name.into(),
            credential_type: "",
        }
    }

    /// Names the azure_identity type (`"ClientSecretCredential"`, ...) so that errors link to
    /// its troubleshooting page.
    pub(crate) fn with_type(mut self, credential_type: &'static str) -> Self {
        self.credential_type = credential_type;
        self
    }
}

impl fmt::Debug for AzureCredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureCredentialSource")
            .field("name", &self.name)
            .field(
                "per_request",
                &matches!(self.credential, Credential::Fresh(_)),
            )
            .finish()
    }
}

impl TokenSource for AzureCredentialSource {
    fn fetch(&self) -> BoxFuture<'_, Result<AccessToken, TokenError>> {
        Box::pin(async move {
            let failed = |error: azure_core::Error| {
                super::error::from_azure(&self.name, self.credential_type, &error)
            };
            let credential = match &self.credential {
                Credential::Shared(credential) => Arc::clone(credential),
                Credential::Fresh(factory) => factory().map_err(failed)?,
            };
            let token = credential
                .get_token(&[REDIS_SCOPE], None)
                .await
                .map_err(failed)?;
            let unix = token.expires_on.unix_timestamp();
            let expires_at =
                SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(unix).unwrap_or(0));
            Ok(AccessToken {
                token: SecretString::from(token.token.secret()),
                expires_at: Some(expires_at),
            })
        })
    }
}

/// A password that does not expire: an access key.
#[derive(Clone)]
pub struct StaticPassword {
    username: Option<String>,
    password: SecretString,
}

impl StaticPassword {
    /// A password, with an optional ACL user name.
    pub fn new(username: Option<String>, password: SecretString) -> Self {
        StaticPassword { username, password }
    }

    /// The ACL user name, if any.
    pub fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }
}

impl fmt::Debug for StaticPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticPassword")
            .field("username", &self.username)
            .field("password", &"[REDACTED]")
            .finish()
    }
}

impl TokenSource for StaticPassword {
    fn fetch(&self) -> BoxFuture<'_, Result<AccessToken, TokenError>> {
        let token = AccessToken {
            token: self.password.clone(),
            expires_at: None,
        };
        Box::pin(async move { Ok(token) })
    }

    fn is_entra_id(&self) -> bool {
        false
    }

    fn username(&self) -> Option<String> {
        self.username.clone()
    }
}
