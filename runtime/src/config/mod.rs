//! Configuration: from the variables Service Connector injects to an [`Auth`] and an
//! [`Endpoint`].
//!
//! Most applications use it through `#[derive(AzureRedisConfig)]` (see the
//! [crate documentation](crate)); everything the derive generates calls into this module.
//!
//! # Detection
//!
//! A struct without `#[azure_redis(auth = ...)]`, or with a list of auth types, chooses its
//! auth type at run time from the settings that are present, in this order (the first that
//! applies wins; with a list, only the listed types take part):
//!
//! 1. `connection_string` is set: `connection_string`;
//! 2. `password` is set: `access_key` (or `spring_boot`);
//! 3. `client_secret` is set: `service_principal`;
//! 4. `federated_token_file` is set: `workload_identity`;
//! 5. `client_id` is set: `user_identity` (`workload_identity` if only that is listed);
//! 6. otherwise `system_identity`; with `auth(system_identity, developer_tools)` both are
//!    kept as [`Auth::FirstOf`] and tried in that order when the first token is requested.
//!
//! `developer_tools` is never detected unless listed, and a struct with a single auth type does
//! no detection: it reports what that type is missing.

mod auth;
mod connection_string;
#[cfg(feature = "serde")]
pub(crate) mod deserialize;
mod endpoint;
mod error;
mod vars;

use std::path::PathBuf;

use secrecy::SecretString;

pub use auth::{Auth, AuthKind};
pub use connection_string::{
    ConnectionString, ConnectionStringError, ConnectionStringErrorKind, Syntax,
};
pub use endpoint::{DEFAULT_PLAIN_PORT, DEFAULT_TLS_PORT, Endpoint, HostError, Service};
pub use error::{ConfigError, Problem};
pub use vars::{VarSource, Variable};

#[doc(hidden)]
pub use vars::{Read, Reader, RoleValue};

use endpoint::split_host_port;

/// The default prefix of Service Connector's variable names.
pub const DEFAULT_PREFIX: &str = "AZURE_REDIS_";
/// The prefix of the Spring Boot names (`spring.redis.*` as environment variables).
pub const SPRING_PREFIX: &str = "SPRING_REDIS_";

/// A setting the connection layer understands, bound to a field by the field's name (or by
/// `#[azure_redis(role = "...")]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Role {
    /// `host`: `<PREFIX>HOST`, a host name, optionally with `:port`.
    Host,
    /// `port`: `<PREFIX>PORT`.
    Port,
    /// `database`: `<PREFIX>DATABASE`.
    Database,
    /// `ssl`: `<PREFIX>SSL` (`true` / `True` / `false`).
    Ssl,
    /// `client_id`: `<PREFIX>CLIENTID`.
    ClientId,
    /// `tenant_id`: `<PREFIX>TENANTID`.
    TenantId,
    /// `client_secret`: `<PREFIX>CLIENTSECRET` (a secret).
    ClientSecret,
    /// `connection_string`: `<PREFIX>CONNECTIONSTRING` (a secret: it holds the key).
    ConnectionString,
    /// `password`: `<PREFIX>PASSWORD` (a secret).
    Password,
    /// `username`: `<PREFIX>USERNAME`, an explicit Redis user name.
    Username,
    /// `federated_token_file`: `AZURE_FEDERATED_TOKEN_FILE` (no prefix: the AKS workload
    /// identity webhook injects it).
    FederatedTokenFile,
}

impl Role {
    /// Every role.
    pub const ALL: &'static [Role] = &[
        Role::Host,
        Role::Port,
        Role::Database,
        Role::Ssl,
        Role::ClientId,
        Role::TenantId,
        Role::ClientSecret,
        Role::ConnectionString,
        Role::Password,
        Role::Username,
        Role::FederatedTokenFile,
    ];

    /// The field name that binds to this role, such as `client_id`.
    pub const fn name(self) -> &'static str {
        match self {
            Role::Host => "host",
            Role::Port => "port",
            Role::Database => "database",
            Role::Ssl => "ssl",
            Role::ClientId => "client_id",
            Role::TenantId => "tenant_id",
            Role::ClientSecret => "client_secret",
            Role::ConnectionString => "connection_string",
            Role::Password => "password",
            Role::Username => "username",
            Role::FederatedTokenFile => "federated_token_file",
        }
    }
}

/// The role values of a configuration, as the derive hands them over.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct Settings {
    /// `host`, possibly with `:port`.
    pub host: Option<String>,
    /// `port`.
    pub port: Option<u16>,
    /// `database`.
    pub database: Option<i64>,
    /// `ssl`.
    pub ssl: Option<bool>,
    /// `client_id`.
    pub client_id: Option<String>,
    /// `tenant_id`.
    pub tenant_id: Option<String>,
    /// `client_secret`.
    pub client_secret: Option<SecretString>,
    /// `connection_string`.
    pub connection_string: Option<SecretString>,
    /// `password`.
    pub password: Option<SecretString>,
    /// `username`.
    pub username: Option<String>,
    /// `federated_token_file`.
    pub federated_token_file: Option<PathBuf>,
}

impl Settings {
    /// Whether the role has a value.
    pub fn has(&self, role: Role) -> bool {
        match role {
            Role::Host => self.host.is_some(),
            Role::Port => self.port.is_some(),
            Role::Database => self.database.is_some(),
            Role::Ssl => self.ssl.is_some(),
            Role::ClientId => self.client_id.is_some(),
            Role::TenantId => self.tenant_id.is_some(),
            Role::ClientSecret => self.client_secret.is_some(),
            Role::ConnectionString => self.connection_string.is_some(),
            Role::Password => self.password.is_some(),
            Role::Username => self.username.is_some(),
            Role::FederatedTokenFile => self.federated_token_file.is_some(),
        }
    }
}

/// The static description of a derived configuration: its variables and allowed auth types.
#[derive(Debug)]
#[non_exhaustive]
pub struct ConfigSpec {
    /// The struct's name.
    pub name: &'static str,
    /// The allowed auth types; `None` detects among [`AuthKind::DETECTED`].
    pub auth: Option<&'static [AuthKind]>,
    /// Each field's variable.
    pub variables: &'static [Variable],
    /// The variable of every role, whether or not the struct has a field for it (for messages).
    pub role_vars: &'static [(Role, &'static str)],
    /// The variables' prefix, such as [`DEFAULT_PREFIX`]: a loader's keys may leave it out.
    pub prefix: &'static str,
}

impl ConfigSpec {
    #[doc(hidden)]
    pub const fn new(
        name: &'static str,
        auth: Option<&'static [AuthKind]>,
        variables: &'static [Variable],
        role_vars: &'static [(Role, &'static str)],
    ) -> ConfigSpec {
        ConfigSpec {
            name,
            auth,
            variables,
            role_vars,
            prefix: DEFAULT_PREFIX,
        }
    }

    #[doc(hidden)]
    pub const fn with_prefix(self, prefix: &'static str) -> ConfigSpec {
        ConfigSpec { prefix, ..self }
    }

    /// The variable a role reads.
    pub fn role_var(&self, role: Role) -> &'static str {
        self.role_vars
            .iter()
            .find(|(r, _)| *r == role)
            .map(|(_, var)| *var)
            .unwrap_or_else(|| role.name())
    }

    fn role_field(&self, role: Role) -> Option<&'static str> {
        self.variables
            .iter()
            .find(|v| v.role == Some(role))
            .map(|v| v.field)
    }
}

/// Where to connect and how to authenticate: what the connection layer consumes.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ConnectionConfig {
    /// The auth type chosen (several when they are tried in turn, see [`Auth::FirstOf`]).
    pub auth_kinds: Vec<AuthKind>,
    /// How to authenticate.
    pub auth: Auth,
    /// Where to connect.
    pub endpoint: Endpoint,
}

/// A configuration struct bound to environment variables; implemented by
/// `#[derive(AzureRedisConfig)]`.
///
/// ```
/// use azure_redis_connect::{AzureRedisConfig, Auth};
///
/// #[derive(AzureRedisConfig, Debug)]
/// #[azure_redis(auth = "user_identity")]
/// struct Cache {
///     host: String,
///     client_id: String,
///     port: Option<u16>,
/// }
///
/// let cache = Cache::from_vars([
///     ("AZURE_REDIS_HOST", "shop.redis.cache.windows.net"),
///     ("AZURE_REDIS_CLIENTID", "4b1e7e4c-0000-0000-0000-000000000001"),
/// ])?;
/// assert!(matches!(cache.auth()?, Auth::UserIdentity { .. }));
/// assert_eq!(cache.endpoint()?.port, 6380);
/// # Ok::<(), azure_redis_connect::ConfigError>(())
/// ```
pub trait AzureRedisConfig: Sized {
    /// The static description of the struct's variables.
    const SPEC: &'static ConfigSpec;

    /// Reads the configuration from a set of variables.
    fn from_var_source(vars: &VarSource) -> Result<Self, ConfigError>;

    /// The role values of this configuration.
    fn settings(&self) -> Settings;

    /// Reads the configuration from `(name, value)` pairs, without touching the process
    /// environment: the way to test a configuration.
    fn from_vars<I, K, V>(vars: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<std::ffi::OsStr>,
        V: AsRef<std::ffi::OsStr>,
    {
        Self::from_var_source(&vars.into_iter().collect())
    }

    /// Reads the configuration from the process environment.
    fn from_env() -> Result<Self, ConfigError> {
        Self::from_var_source(&VarSource::from_env())
    }

    /// Each field's variable, for a `--help` text or a startup log line.
    fn variables() -> &'static [Variable] {
        Self::SPEC.variables
    }

    /// Where to connect and how to authenticate.
    fn connection_config(&self) -> Result<ConnectionConfig, ConfigError> {
        resolve(Self::SPEC, &self.settings()).map_err(|p| ConfigError::new(Self::SPEC.name, p))
    }

    /// How to authenticate.
    fn auth(&self) -> Result<Auth, ConfigError> {
        self.connection_config().map(|c| c.auth)
    }

    /// Where to connect.
    fn endpoint(&self) -> Result<Endpoint, ConfigError> {
        self.connection_config().map(|c| c.endpoint)
    }

    /// Connects with the builder's defaults; see [`AzureRedis::builder_from`] for more options.
    ///
    /// [`AzureRedis::builder_from`]: crate::AzureRedis::builder_from
    fn connect(
        &self,
    ) -> impl std::future::Future<Output = Result<crate::AzureRedis, crate::ConnectError>> + Send
    where
        Self: Sync,
    {
        crate::AzureRedis::connect(self)
    }
}

/// Chooses the auth type(s) from the settings present; see the [module docs](self).
///
/// The flag tells whether a setting singled the choice out (as opposed to the fallback to the
/// identities that need nothing but a host).
fn choose(allowed: &[AuthKind], s: &Settings) -> (Vec<AuthKind>, bool) {
    if let [only] = allowed {
        return (vec![*only], true);
    }
    let has = |kind| allowed.contains(&kind);
    let by_precedence = [
        (AuthKind::ConnectionString, s.has(Role::ConnectionString)),
        (AuthKind::AccessKey, s.has(Role::Password)),
        (AuthKind::SpringBoot, s.has(Role::Password)),
        (AuthKind::ServicePrincipal, s.has(Role::ClientSecret)),
        (AuthKind::WorkloadIdentity, s.has(Role::FederatedTokenFile)),
        (AuthKind::UserIdentity, s.has(Role::ClientId)),
        (
            AuthKind::WorkloadIdentity,
            s.has(Role::ClientId) && !has(AuthKind::UserIdentity),
        ),
    ];
    if let Some((kind, _)) = by_precedence.iter().find(|(k, set)| *set && has(*k)) {
        return (vec![*kind], true);
    }
    let fallback = allowed
        .iter()
        .copied()
        .filter(|k| matches!(k, AuthKind::SystemIdentity | AuthKind::DeveloperTools))
        .collect();
    (fallback, false)
}

/// Resolves settings to an auth type and endpoint, collecting every problem.
pub fn resolve(spec: &ConfigSpec, s: &Settings) -> Result<ConnectionConfig, Vec<Problem>> {
    let allowed = spec.auth.unwrap_or(AuthKind::DETECTED);
    let (kinds, singled_out) = choose(allowed, s);
    let missing_for = |kind: AuthKind| -> Vec<Role> {
        kind.required_roles()
            .iter()
            .copied()
            .filter(|r| !s.has(*r))
            .collect()
    };
    // When nothing singles out an auth type and the fallback cannot work either, say what
    // each allowed type lacks.
    if kinds.is_empty() || (!singled_out && kinds.iter().all(|k| !missing_for(*k).is_empty())) {
        let missing = allowed
            .iter()
            .map(|k| {
                (
                    *k,
                    missing_for(*k).iter().map(|r| spec.role_var(*r)).collect(),
                )
            })
            .collect();
        return Err(vec![Problem::NoAuthType { missing }]);
    }
    let mut problems = Vec::new();
    for kind in &kinds {
        for role in missing_for(*kind) {
            problems.push(Problem::Missing {
                var: spec.role_var(role),
                field: spec.role_field(role),
                needed_by: Some(*kind),
            });
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut auths = Vec::new();
    let mut endpoint = None;
    for kind in kinds.iter().copied() {
        match auth_for(spec, kind, s) {
            Ok((auth, from_connection_string)) => {
                auths.push(auth);
                endpoint = endpoint.or(from_connection_string);
            }
            Err(problem) => problems.push(problem),
        }
    }
    let endpoint = match endpoint {
        Some(endpoint) => Some(endpoint),
        // A connection string that failed to parse has its problem already.
        None if kinds.contains(&AuthKind::ConnectionString) => None,
        None => endpoint_from(spec, s).map_err(|p| problems.push(p)).ok(),
    };
    match (endpoint, problems.is_empty()) {
        (Some(endpoint), true) => {
            let auth = if auths.len() == 1 {
                auths.remove(0)
            } else {
                Auth::FirstOf(auths)
            };
            Ok(ConnectionConfig {
                auth_kinds: kinds,
                auth,
                endpoint,
            })
        }
        _ => Err(problems),
    }
}

/// The `Auth` of one auth type whose required roles are all set; a connection string also
/// yields its endpoint.
fn auth_for(
    spec: &ConfigSpec,
    kind: AuthKind,
    s: &Settings,
) -> Result<(Auth, Option<Endpoint>), Problem> {
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let auth = match kind {
        AuthKind::SystemIdentity => Auth::SystemIdentity,
        AuthKind::DeveloperTools => Auth::DeveloperTools {
            tenant_id: s.tenant_id.clone(),
        },
        AuthKind::UserIdentity => Auth::UserIdentity {
            client_id: text(&s.client_id),
        },
        AuthKind::ServicePrincipal => Auth::ServicePrincipal {
            tenant_id: text(&s.tenant_id),
            client_id: text(&s.client_id),
            client_secret: s.client_secret.clone().unwrap_or_default(),
        },
        AuthKind::WorkloadIdentity => Auth::WorkloadIdentity {
            client_id: text(&s.client_id),
            tenant_id: s.tenant_id.clone(),
            token_file: s.federated_token_file.clone(),
        },
        AuthKind::AccessKey | AuthKind::SpringBoot => Auth::AccessKey {
            username: s.username.clone(),
            password: s.password.clone().unwrap_or_default(),
        },
        AuthKind::ConnectionString => {
            use secrecy::ExposeSecret;
            let var = spec.role_var(Role::ConnectionString);
            let raw = s.connection_string.as_ref().map(|c| c.expose_secret());
            let cs = ConnectionString::parse(raw.unwrap_or_default())
                .map_err(|error| Problem::ConnectionString { var, error })?;
            let password = cs.password.ok_or(Problem::NoPassword { var })?;
            let auth = Auth::AccessKey {
                username: s.username.clone().or(cs.username),
                password,
            };
            return Ok((auth, Some(cs.endpoint)));
        }
    };
    Ok((auth, None))
}

/// The endpoint from `host`, `port`, `ssl` and `database`.
fn endpoint_from(spec: &ConfigSpec, s: &Settings) -> Result<Endpoint, Problem> {
    let var = spec.role_var(Role::Host);
    let (host, port_in_host) = split_host_port(s.host.as_deref().unwrap_or_default())
        .map_err(|error| Problem::BadHost { var, error })?;
    let tls = s.ssl.unwrap_or(true);
    let port = s
        .port
        .or(port_in_host)
        .unwrap_or_else(|| Endpoint::default_port(&host, tls));
    let database = s.database.unwrap_or(0);
    if database < 0 {
        return Err(Problem::Invalid {
            var: spec.role_var(Role::Database),
            expected: "database number",
            value: Some(database.to_string()),
            reason: "database numbers start at 0".into(),
        });
    }
    Ok(Endpoint {
        host,
        port,
        tls,
        database,
        tls_server_name: None,
    })
}

/// Emits the derive's `Deserialize` impl only with the `serde` feature: a derive cannot see the
/// runtime's features, so it always emits the impl through this gate. Not part of the public API.
#[cfg(feature = "serde")]
#[doc(hidden)]
#[macro_export]
macro_rules! __private_serde_impl {
    ($($impl:tt)*) => { $($impl)* };
}

/// Without the `serde` feature, the derive's `Deserialize` impl is dropped.
#[cfg(not(feature = "serde"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __private_serde_impl {
    ($($impl:tt)*) => {};
}

#[cfg(test)]
mod tests;
