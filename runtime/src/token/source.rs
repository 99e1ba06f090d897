//! Token sources: azure_identity credentials, and static passwords.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use azure_core::credentials::TokenCredential;
use secrecy::SecretString;

use super::{AccessToken, TokenError, TokenSource};

/// The scope of Azure Cache for Redis and Azure Managed Redis tokens.
pub const REDIS_SCOPE: &str = "https://redis.azure.com/.default";

/// Tokens for [`REDIS_SCOPE`] from any azure_identity credential.
#[derive(Clone)]
pub struct AzureCredentialSource {
    credential: Arc<dyn TokenCredential>,
    name: String,
}

impl AzureCredentialSource {
    /// Wraps a credential; `name` says which one in errors and logs.
    pub fn new(credential: Arc<dyn TokenCredential>, name: impl Into<String>) -> Self {
        AzureCredentialSource {
            credential,
            name: name.into(),
        }
    }
}

impl fmt::Debug for AzureCredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureCredentialSource")
            .field("name", &self.name)
            .finish()
    }
}

impl TokenSource for AzureCredentialSource {
    fn fetch(&self) -> Pin<Box<dyn Future<Output = Result<AccessToken, TokenError>> + Send + '_>> {
        Box::pin(async move {
            let token = self
                .credential
                .get_token(&[REDIS_SCOPE], None)
                .await
                .map_err(|error| TokenError::Credential {
                    source_name: self.name.clone(),
                    message: error.to_string(),
                })?;
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
    fn fetch(&self) -> Pin<Box<dyn Future<Output = Result<AccessToken, TokenError>> + Send + '_>> {
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
