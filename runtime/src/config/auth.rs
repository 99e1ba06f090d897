//! Auth types: how a connection proves who it is to Redis.

use std::fmt;
use std::path::PathBuf;

use secrecy::SecretString;

use super::Role;

/// One of the ways Azure Service Connector (or a developer) lets an app authenticate to Redis.
///
/// The names are the ones `#[azure_redis(auth = "...")]` accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthKind {
    /// System-assigned managed identity (`system_identity`): only `HOST` is injected.
    SystemIdentity,
    /// User-assigned managed identity (`user_identity`): `HOST` and `CLIENTID`.
    UserIdentity,
    /// Service principal with a client secret (`service_principal`):
    /// `HOST`, `CLIENTID`, `TENANTID`, `CLIENTSECRET`.
    ServicePrincipal,
    /// AKS workload identity (`workload_identity`): `HOST` and `CLIENTID`, plus the
    /// `AZURE_FEDERATED_TOKEN_FILE` and `AZURE_TENANT_ID` the webhook injects.
    WorkloadIdentity,
    /// The developer's own `az` / `azd` login (`developer_tools`), for local runs.
    DeveloperTools,
    /// Access key in split variables of client type "none" (`access_key`):
    /// `HOST`, `PORT`, `DATABASE`, `PASSWORD`, `SSL`.
    AccessKey,
    /// Access key in one connection string (`connection_string`), in either syntax
    /// Service Connector writes: StackExchange (`host:6380,password=..,ssl=True`) or URL
    /// (`rediss://:key@host:6380/0`).
    ConnectionString,
    /// Access key under the Spring Boot names (`spring_boot`): `SPRING_REDIS_HOST`, `_PORT`,
    /// `_DATABASE`, `_PASSWORD`, `_SSL`.
    SpringBoot,
}

impl AuthKind {
    /// Every auth type, in detection precedence order.
    pub const ALL: &'static [AuthKind] = &[
        AuthKind::ConnectionString,
        AuthKind::AccessKey,
        AuthKind::SpringBoot,
        AuthKind::ServicePrincipal,
        AuthKind::WorkloadIdentity,
        AuthKind::UserIdentity,
        AuthKind::SystemIdentity,
        AuthKind::DeveloperTools,
    ];

    /// The auth types run-time detection chooses from when the struct names none.
    ///
    /// `developer_tools` is never guessed (it must be asked for), and `spring_boot` reads other
    /// names than the default prefix gives.
    pub const DETECTED: &'static [AuthKind] = &[
        AuthKind::ConnectionString,
        AuthKind::AccessKey,
        AuthKind::ServicePrincipal,
        AuthKind::WorkloadIdentity,
        AuthKind::UserIdentity,
        AuthKind::SystemIdentity,
    ];

    /// The name used in `#[azure_redis(auth = "...")]`, such as `service_principal`.
    pub const fn name(self) -> &'static str {
        match self {
            AuthKind::SystemIdentity => "system_identity",
            AuthKind::UserIdentity => "user_identity",
            AuthKind::ServicePrincipal => "service_principal",
            AuthKind::WorkloadIdentity => "workload_identity",
            AuthKind::DeveloperTools => "developer_tools",
            AuthKind::AccessKey => "access_key",
            AuthKind::ConnectionString => "connection_string",
            AuthKind::SpringBoot => "spring_boot",
        }
    }

    /// Looks an auth type up by its name (`-` and `_` are interchangeable, case is ignored).
    ///
    /// ```
    /// use azure_redis_connect::AuthKind;
    /// assert_eq!(AuthKind::from_name("user-identity"), Some(AuthKind::UserIdentity));
    /// assert_eq!(AuthKind::from_name("kerberos"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<AuthKind> {
        let wanted = name.trim().to_ascii_lowercase().replace('-', "_");
        AuthKind::ALL
            .iter()
            .copied()
            .find(|kind| kind.name() == wanted)
    }

    /// Whether the password is a Microsoft Entra ID token (as opposed to an access key).
    pub const fn uses_entra_id(self) -> bool {
        !matches!(
            self,
            AuthKind::AccessKey | AuthKind::ConnectionString | AuthKind::SpringBoot
        )
    }

    /// The settings this auth type cannot do without.
    pub const fn required_roles(self) -> &'static [Role] {
        match self {
            AuthKind::SystemIdentity | AuthKind::DeveloperTools => &[Role::Host],
            AuthKind::UserIdentity | AuthKind::WorkloadIdentity => &[Role::Host, Role::ClientId],
            AuthKind::ServicePrincipal => &[
                Role::Host,
                Role::ClientId,
                Role::TenantId,
                Role::ClientSecret,
            ],
            AuthKind::AccessKey | AuthKind::SpringBoot => &[Role::Host, Role::Password],
            AuthKind::ConnectionString => &[Role::ConnectionString],
        }
    }
}

impl fmt::Display for AuthKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the connection layer needs to authenticate: the resolved auth type with its settings.
///
/// Secrets are held in [`SecretString`]; `Debug` shows `[REDACTED]` in their place.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Auth {
    /// Entra ID token of the system-assigned managed identity.
    SystemIdentity,
    /// Entra ID token of a user-assigned managed identity.
    UserIdentity {
        /// The identity's client id (`AZURE_REDIS_CLIENTID`).
        client_id: String,
    },
    /// Entra ID token of a service principal with a client secret.
    ServicePrincipal {
        /// Directory (tenant) id.
        tenant_id: String,
        /// Application (client) id.
        client_id: String,
        /// Client secret.
        client_secret: SecretString,
    },
    /// Entra ID token through AKS workload identity (a federated token file).
    WorkloadIdentity {
        /// The identity's client id.
        client_id: String,
        /// Tenant id; `None` reads `AZURE_TENANT_ID` from the process environment.
        tenant_id: Option<String>,
        /// Federated token file; `None` reads `AZURE_FEDERATED_TOKEN_FILE` from the process
        /// environment.
        token_file: Option<PathBuf>,
    },
    /// Entra ID token from the developer's `az` / `azd` login.
    DeveloperTools {
        /// Tenant to ask the tools for; `None` uses their default.
        tenant_id: Option<String>,
    },
    /// A static password: an access key, from split variables or a connection string.
    AccessKey {
        /// ACL user name, when one is given (connection strings may carry one).
        username: Option<String>,
        /// The access key.
        password: SecretString,
    },
    /// Several auth types, tried in order at run time; the first that yields a token is kept.
    ///
    /// Chosen for `auth(system_identity, developer_tools)` when the variables alone cannot tell
    /// which one applies (managed identity in Azure, the `az` login on a laptop).
    FirstOf(Vec<Auth>),
}

impl Auth {
    /// The auth types this value stands for, such as `[SystemIdentity]`, or several for
    /// [`Auth::FirstOf`].
    pub fn kinds(&self) -> Vec<AuthKind> {
        match self {
            Auth::SystemIdentity => vec![AuthKind::SystemIdentity],
            Auth::UserIdentity { .. } => vec![AuthKind::UserIdentity],
            Auth::ServicePrincipal { .. } => vec![AuthKind::ServicePrincipal],
            Auth::WorkloadIdentity { .. } => vec![AuthKind::WorkloadIdentity],
            Auth::DeveloperTools { .. } => vec![AuthKind::DeveloperTools],
            Auth::AccessKey { .. } => vec![AuthKind::AccessKey],
            Auth::FirstOf(all) => all.iter().flat_map(Auth::kinds).collect(),
        }
    }

    /// Whether the password is a Microsoft Entra ID token that expires and must be renewed.
    pub fn uses_entra_id(&self) -> bool {
        !matches!(self, Auth::AccessKey { .. })
    }
}

impl fmt::Display for Auth {
    /// Names the auth type and its non-secret settings, such as
    /// `user_identity (client id 1234...)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::SystemIdentity => f.write_str("system_identity"),
            Auth::UserIdentity { client_id } => write!(f, "user_identity (client id {client_id})"),
            Auth::ServicePrincipal {
                tenant_id,
                client_id,
                ..
            } => write!(
                f,
                "service_principal (tenant {tenant_id}, client id {client_id})"
            ),
            Auth::WorkloadIdentity { client_id, .. } => {
                write!(f, "workload_identity (client id {client_id})")
            }
            Auth::DeveloperTools { .. } => f.write_str("developer_tools"),
            Auth::AccessKey { username, .. } => match username {
                Some(user) => write!(f, "access_key (user {user})"),
                None => f.write_str("access_key"),
            },
            Auth::FirstOf(all) => {
                for (i, auth) in all.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" or ")?;
                    }
                    write!(f, "{auth}")?;
                }
                Ok(())
            }
        }
    }
}
