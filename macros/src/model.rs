//! What the macro knows of the runtime's vocabulary: roles and auth types.
//!
//! These tables mirror `azure_redis_connect::config::{Role, AuthKind}`; the generated code names
//! the runtime's variants, so a mismatch fails to compile.

/// A setting bound by field name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Role {
    /// The field name, such as `client_id`.
    pub name: &'static str,
    /// The runtime's variant, such as `ClientId`.
    pub variant: &'static str,
    /// The variable name after the prefix, or the whole name when `prefixed` is false.
    pub suffix: &'static str,
    pub prefixed: bool,
    /// The value is a secret and must live in a secret type.
    pub secret: bool,
    /// The type the runtime reads it as, for messages and `RoleValue<T>`.
    pub ty: &'static str,
}

const fn role(
    name: &'static str,
    variant: &'static str,
    suffix: &'static str,
    secret: bool,
    ty: &'static str,
) -> Role {
    Role {
        name,
        variant,
        suffix,
        prefixed: true,
        secret,
        ty,
    }
}

pub const ROLES: &[Role] = &[
    role("host", "Host", "HOST", false, "String"),
    role("port", "Port", "PORT", false, "u16"),
    role("database", "Database", "DATABASE", false, "i64"),
    role("ssl", "Ssl", "SSL", false, "bool"),
    role("client_id", "ClientId", "CLIENTID", false, "String"),
    role("tenant_id", "TenantId", "TENANTID", false, "String"),
    role(
        "client_secret",
        "ClientSecret",
        "CLIENTSECRET",
        true,
        "SecretString",
    ),
    role(
        "connection_string",
        "ConnectionString",
        "CONNECTIONSTRING",
        true,
        "SecretString",
    ),
    role("password", "Password", "PASSWORD", true, "SecretString"),
    role("username", "Username", "USERNAME", false, "String"),
    Role {
        prefixed: false,
        ..role(
            "federated_token_file",
            "FederatedTokenFile",
            "AZURE_FEDERATED_TOKEN_FILE",
            false,
            "PathBuf",
        )
    },
];

pub fn role_named(name: &str) -> Option<&'static Role> {
    ROLES.iter().find(|r| r.name == name)
}

impl Role {
    /// The full variable name under `prefix`.
    pub fn env(&self, prefix: &str) -> String {
        if self.prefixed {
            format!("{prefix}{}", self.suffix)
        } else {
            self.suffix.to_owned()
        }
    }
}

/// An auth type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthKind {
    pub name: &'static str,
    pub variant: &'static str,
    pub required: &'static [&'static str],
}

pub const AUTH_KINDS: &[AuthKind] = &[
    AuthKind {
        name: "connection_string",
        variant: "ConnectionString",
        required: &["connection_string"],
    },
    AuthKind {
        name: "access_key",
        variant: "AccessKey",
        required: &["host", "password"],
    },
    AuthKind {
        name: "spring_boot",
        variant: "SpringBoot",
        required: &["host", "password"],
    },
    AuthKind {
        name: "service_principal",
        variant: "ServicePrincipal",
        required: &["host", "client_id", "tenant_id", "client_secret"],
    },
    AuthKind {
        name: "workload_identity",
        variant: "WorkloadIdentity",
        required: &["host", "client_id"],
    },
    AuthKind {
        name: "user_identity",
        variant: "UserIdentity",
        required: &["host", "client_id"],
    },
    AuthKind {
        name: "system_identity",
        variant: "SystemIdentity",
        required: &["host"],
    },
    AuthKind {
        name: "developer_tools",
        variant: "DeveloperTools",
        required: &["host"],
    },
];

/// The auth types detected at run time when the struct names none.
pub const DETECTED: &[&str] = &[
    "connection_string",
    "access_key",
    "service_principal",
    "workload_identity",
    "user_identity",
    "system_identity",
];

/// Names people write for an auth type, and what to suggest instead.
pub const ALIASES: &[(&str, &str)] = &[
    ("managed_identity", "`system_identity` or `user_identity`"),
    ("system_assigned", "`system_identity`"),
    ("system_assigned_identity", "`system_identity`"),
    ("user_assigned", "`user_identity`"),
    ("user_assigned_identity", "`user_identity`"),
    ("secret", "`service_principal`"),
    ("client_secret", "`service_principal`"),
    ("workload", "`workload_identity`"),
    ("azure_cli", "`developer_tools`"),
    ("az_cli", "`developer_tools`"),
    ("cli", "`developer_tools`"),
    ("key", "`access_key`"),
    ("password", "`access_key`"),
    ("spring", "`spring_boot`"),
];

pub fn auth_named(name: &str) -> Option<&'static AuthKind> {
    AUTH_KINDS.iter().find(|k| k.name == name)
}

pub const DEFAULT_PREFIX: &str = "AZURE_REDIS_";
pub const SPRING_PREFIX: &str = "SPRING_REDIS_";
