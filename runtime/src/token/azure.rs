//! azure_identity credentials for each [`Auth`], and a source that tries several in turn.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use azure_core::credentials::{Secret, TokenCredential};
use azure_core::http::{ClientOptions, RetryOptions, Transport};
use azure_identity::{
    ClientAssertionCredentialOptions, ClientSecretCredential, ClientSecretCredentialOptions,
    DeveloperToolsCredential, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
    UserAssignedId, WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};
use secrecy::ExposeSecret;

use super::{AccessToken, AzureCredentialSource, StaticPassword, TokenError, TokenSource};
use crate::config::Auth;

/// Installs rustls's ring provider for the process unless one is installed already.
pub(crate) fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// How credentials reach Microsoft Entra ID.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct CredentialOptions {
    /// A CA (PEM) to trust in addition to the system roots.
    pub extra_root_ca: Option<Vec<u8>>,
    /// The Entra ID authority host, such as `https://login.microsoftonline.us` (default: the
    /// public cloud, or what azure_identity reads from the environment).
    pub authority_host: Option<String>,
}

/// The HTTP options of every credential: no retries of its own (the provider's refresh loop
/// retries, so that one call cannot hide a minute of outage), and an extra root CA if given.
fn client_options(options: &CredentialOptions) -> Result<ClientOptions, TokenError> {
    let extra_root_ca = options.extra_root_ca.as_deref();
    install_crypto_provider();
    let mut http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none());
    if let Some(pem) = extra_root_ca {
        let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| {
            setup_error(format!("the extra root certificate is not valid PEM: {e}"))
        })?;
        http = http.tls_certs_merge(certs);
    }
    let http = http
        .build()
        .map_err(|e| setup_error(format!("cannot build the HTTP client: {e}")))?;
    let cloud = options.authority_host.as_ref().map(|host| {
        let mut cloud = azure_core::cloud::CustomConfiguration::default();
        cloud.authority_host = host.clone();
        Arc::new(cloud.into())
    });
    Ok(ClientOptions {
        retry: RetryOptions::none(),
        transport: Some(Transport::new(Arc::new(http))),
        cloud,
        ..Default::default()
    })
}

fn setup_error(message: String) -> TokenError {
    TokenError::Credential {
        source_name: "credential setup".into(),
        message,
    }
}

fn azure(
    result: azure_core::Result<Arc<impl TokenCredential + 'static>>,
    name: &str,
) -> Result<Box<dyn TokenSource>, TokenError> {
    let credential: Arc<dyn TokenCredential> = result.map_err(|e| TokenError::Credential {
        source_name: name.into(),
        message: e.to_string(),
    })?;
    Ok(Box::new(AzureCredentialSource::new(credential, name)))
}

/// The token source for an [`Auth`].
pub fn source_for(
    auth: &Auth,
    options: &CredentialOptions,
) -> Result<Box<dyn TokenSource>, TokenError> {
    match auth {
        Auth::AccessKey { username, password } => Ok(Box::new(StaticPassword::new(
            username.clone(),
            password.clone(),
        ))),
        Auth::SystemIdentity => azure(
            ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                user_assigned_id: None,
                client_options: client_options(options)?,
            })),
            "system-assigned managed identity",
        ),
        Auth::UserIdentity { client_id } => azure(
            ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                user_assigned_id: Some(UserAssignedId::ClientId(client_id.clone())),
                client_options: client_options(options)?,
            })),
            "user-assigned managed identity",
        ),
        Auth::ServicePrincipal {
            tenant_id,
            client_id,
            client_secret,
        } => azure(
            ClientSecretCredential::new(
                tenant_id,
                client_id.clone(),
                Secret::new(client_secret.expose_secret().to_owned()),
                Some(ClientSecretCredentialOptions {
                    client_options: client_options(options)?,
                }),
            ),
            "service principal",
        ),
        Auth::WorkloadIdentity {
            client_id,
            tenant_id,
            token_file,
        } => azure(
            WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
                credential_options: ClientAssertionCredentialOptions {
                    client_options: client_options(options)?,
                },
                client_id: Some(client_id.clone()),
                tenant_id: tenant_id.clone(),
                token_file_path: token_file.clone(),
            })),
            "workload identity",
        ),
        Auth::DeveloperTools { .. } => azure(
            DeveloperToolsCredential::new(None),
            "developer tools (az / azd)",
        ),
        Auth::FirstOf(all) => {
            let sources = all
                .iter()
                .map(|auth| source_for(auth, options))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Box::new(FirstOf {
                sources,
                chosen: AtomicUsize::new(usize::MAX),
            }))
        }
    }
}

/// Tries each source in order until one yields a token, and keeps to that one afterwards.
struct FirstOf {
    sources: Vec<Box<dyn TokenSource>>,
    chosen: AtomicUsize,
}

impl TokenSource for FirstOf {
    fn fetch(&self) -> Pin<Box<dyn Future<Output = Result<AccessToken, TokenError>> + Send + '_>> {
        Box::pin(async move {
            if let Some(source) = self.sources.get(self.chosen.load(Ordering::Relaxed)) {
                return source.fetch().await;
            }
            let mut errors = Vec::new();
            for (i, source) in self.sources.iter().enumerate() {
                match source.fetch().await {
                    Ok(token) => {
                        self.chosen.store(i, Ordering::Relaxed);
                        return Ok(token);
                    }
                    Err(error) => errors.push(error.to_string()),
                }
            }
            Err(TokenError::Credential {
                source_name: "every listed auth type".into(),
                message: errors.join("; "),
            })
        })
    }
}

impl TokenSource for Box<dyn TokenSource> {
    fn fetch(&self) -> Pin<Box<dyn Future<Output = Result<AccessToken, TokenError>> + Send + '_>> {
        (**self).fetch()
    }

    fn is_entra_id(&self) -> bool {
        (**self).is_entra_id()
    }

    fn username(&self) -> Option<String> {
        (**self).username()
    }
}
