//! azure_identity credentials for each [`Auth`], and a source that tries several in turn.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use azure_core::credentials::{Secret, TokenCredential};
use azure_core::http::{ClientOptions, RetryOptions, Transport};
use azure_identity::{
    ClientAssertionCredentialOptions, ClientSecretCredential, ClientSecretCredentialOptions,
    DeveloperToolsCredential, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
    UserAssignedId, WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};
use secrecy::ExposeSecret;

use super::{
    AccessToken, AzureCredentialSource, BoxFuture, StaticPassword, TokenError, TokenSource, error,
};
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

/// Connect timeout of the identity endpoints' HTTP client.
const HTTP_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Overall timeout of one identity request (the refresh policy's `request_timeout` bounds the
/// whole token request as well).
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// The HTTP client of the credentials: one per process for each set of extra root
/// certificates, shared by every credential and handle (each client holds a connection pool
/// and its TLS roots).
fn http_client(extra_root_ca: Option<&[u8]>) -> Result<reqwest::Client, TokenError> {
    static CLIENTS: Mutex<Vec<(Option<Vec<u8>>, reqwest::Client)>> = Mutex::new(Vec::new());
    let mut clients = CLIENTS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((_, client)) = clients
        .iter()
        .find(|(ca, _)| ca.as_deref() == extra_root_ca)
    {
        return Ok(client.clone());
    }
    install_crypto_provider();
    let mut http = reqwest::Client::builder()
        .connect_timeout(HTTP_CONNECT_TIMEOUT)
        .timeout(HTTP_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none());
    if let Some(pem) = extra_root_ca {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|_| setup_error("the extra root certificate is not valid PEM".to_owned()))?;
        http = http.tls_certs_merge(certs);
    }
    let http = http
        .build()
        .map_err(|e| setup_error(format!("cannot build the HTTP client: {e}")))?;
    clients.push((extra_root_ca.map(<[u8]>::to_vec), http.clone()));
    Ok(http)
}

/// The HTTP options of every credential: no retries of its own (the provider's refresh loop
/// retries, so that one call cannot hide a minute of outage), the shared HTTP client, and the
/// authority host if given.
fn client_options_with(options: &CredentialOptions, transport: Transport) -> ClientOptions {
    let cloud = options.authority_host.as_ref().map(|host| {
        let mut cloud = azure_core::cloud::CustomConfiguration::default();
        cloud.authority_host = host.clone();
        Arc::new(cloud.into())
    });
    ClientOptions {
        retry: RetryOptions::none(),
        transport: Some(transport),
        cloud,
        ..Default::default()
    }
}

fn setup_error(message: String) -> TokenError {
    TokenError::Credential {
        source_name: "credential setup".into(),
        message,
    }
}

/// A source that builds a new credential with `make` for every token request (see
/// [`AzureCredentialSource`]); `make` runs once here, so that a bad setting fails at once.
fn fresh<C, F>(
    name: &'static str,
    credential_type: &'static str,
    make: F,
) -> Result<Box<dyn TokenSource>, TokenError>
where
    C: TokenCredential + 'static,
    F: Fn() -> azure_core::Result<Arc<C>> + Send + Sync + 'static,
{
    make().map_err(|e| error::from_azure(name, credential_type, &e))?;
    let factory = move || make().map(|c| c as Arc<dyn TokenCredential>);
    Ok(Box::new(
        AzureCredentialSource::fresh(factory, name).with_type(credential_type),
    ))
}

/// The token source for an [`Auth`].
///
/// Every credential shares the process's HTTP client for its root certificates, and a new
/// credential is built for each token request so that azure_identity's token cache never
/// answers a refresh (see [`AzureCredentialSource`]).
pub fn source_for(
    auth: &Auth,
    options: &CredentialOptions,
) -> Result<Box<dyn TokenSource>, TokenError> {
    let transport = Transport::new(Arc::new(http_client(options.extra_root_ca.as_deref())?));
    source_with_transport(auth, options, transport)
}

/// [`source_for`] with the HTTP transport given: the seam the tests use.
pub(crate) fn source_with_transport(
    auth: &Auth,
    options: &CredentialOptions,
    transport: Transport,
) -> Result<Box<dyn TokenSource>, TokenError> {
    let client_options = client_options_with(options, transport.clone());
    match auth {
        Auth::AccessKey { username, password } => Ok(Box::new(StaticPassword::new(
            username.clone(),
            password.clone(),
        ))),
        Auth::SystemIdentity => fresh(
            "system-assigned managed identity",
            "ManagedIdentityCredential",
            move || {
                ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                    user_assigned_id: None,
                    client_options: client_options.clone(),
                }))
            },
        ),
        Auth::UserIdentity { client_id } => {
            let client_id = client_id.clone();
            fresh(
                "user-assigned managed identity",
                "ManagedIdentityCredential",
                move || {
                    ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                        user_assigned_id: Some(UserAssignedId::ClientId(client_id.clone())),
                        client_options: client_options.clone(),
                    }))
                },
            )
        }
        Auth::ServicePrincipal {
            tenant_id,
            client_id,
            client_secret,
        } => {
            let (tenant_id, client_id) = (tenant_id.clone(), client_id.clone());
            let client_secret = client_secret.clone();
            fresh("service principal", "ClientSecretCredential", move || {
                ClientSecretCredential::new(
                    &tenant_id,
                    client_id.clone(),
                    Secret::new(client_secret.expose_secret().to_owned()),
                    Some(ClientSecretCredentialOptions {
                        client_options: client_options.clone(),
                    }),
                )
            })
        }
        Auth::WorkloadIdentity {
            client_id,
            tenant_id,
            token_file,
        } => {
            let (client_id, tenant_id) = (client_id.clone(), tenant_id.clone());
            let token_file = token_file.clone();
            fresh(
                "workload identity",
                "WorkloadIdentityCredential",
                move || {
                    WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
                        credential_options: ClientAssertionCredentialOptions {
                            client_options: client_options.clone(),
                        },
                        client_id: Some(client_id.clone()),
                        tenant_id: tenant_id.clone(),
                        token_file_path: token_file.clone(),
                    }))
                },
            )
        }
        // The az / azd credentials keep no token cache: one credential serves every request.
        Auth::DeveloperTools { .. } => {
            let name = "developer tools (az / azd)";
            let credential = DeveloperToolsCredential::new(None)
                .map_err(|e| error::from_azure(name, "DeveloperToolsCredential", &e))?;
            Ok(Box::new(
                AzureCredentialSource::new(credential, name).with_type("DeveloperToolsCredential"),
            ))
        }
        Auth::FirstOf(all) => {
            let sources = all
                .iter()
                .map(|auth| source_with_transport(auth, options, transport.clone()))
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
    fn fetch(&self) -> BoxFuture<'_, Result<AccessToken, TokenError>> {
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
    fn fetch(&self) -> BoxFuture<'_, Result<AccessToken, TokenError>> {
        (**self).fetch()
    }

    fn is_entra_id(&self) -> bool {
        (**self).is_entra_id()
    }

    fn username(&self) -> Option<String> {
        (**self).username()
    }
}
