//! The auth types Service Connector offers, and the environment it injects for each.

use std::fmt;
use std::str::FromStr;

use secrecy::ExposeSecret as _;

use crate::Emulator;

/// An auth type of Service Connector for Azure Cache for Redis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ServiceConnectorAuth {
    /// System-assigned managed identity.
    SystemIdentity,
    /// User-assigned managed identity.
    UserIdentity,
    /// Service principal with a client secret.
    ServicePrincipal,
    /// AKS workload identity (federated token file).
    WorkloadIdentity,
    /// Access key, client type "none": `HOST`, `PORT`, `DATABASE`, `PASSWORD`, `SSL`.
    AccessKey,
    /// Access key in a StackExchange.Redis connection string (.NET client type).
    ConnectionStringStackExchange,
    /// Access key in a `rediss://` URL (Java, Python, Go, Node client types).
    ConnectionStringUrl,
}

/// The former name of [`ServiceConnectorAuth`] (the runtime crate has an `AuthKind` of its own).
#[deprecated(note = "renamed to `ServiceConnectorAuth`")]
pub type AuthKind = ServiceConnectorAuth;

impl ServiceConnectorAuth {
    /// Every auth kind.
    pub const ALL: [ServiceConnectorAuth; 7] = [
        ServiceConnectorAuth::SystemIdentity,
        ServiceConnectorAuth::UserIdentity,
        ServiceConnectorAuth::ServicePrincipal,
        ServiceConnectorAuth::WorkloadIdentity,
        ServiceConnectorAuth::AccessKey,
        ServiceConnectorAuth::ConnectionStringStackExchange,
        ServiceConnectorAuth::ConnectionStringUrl,
    ];

    /// The command-line name (`system-identity`, ..., `connection-string-url`).
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceConnectorAuth::SystemIdentity => "system-identity",
            ServiceConnectorAuth::UserIdentity => "user-identity",
            ServiceConnectorAuth::ServicePrincipal => "service-principal",
            ServiceConnectorAuth::WorkloadIdentity => "workload-identity",
            ServiceConnectorAuth::AccessKey => "access-key",
            ServiceConnectorAuth::ConnectionStringStackExchange => "connection-string",
            ServiceConnectorAuth::ConnectionStringUrl => "connection-string-url",
        }
    }
}

impl fmt::Display for ServiceConnectorAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for an unknown auth kind name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown auth type '{0}' (expected one of: system-identity, user-identity, service-principal, workload-identity, access-key, connection-string, connection-string-url)"
)]
pub struct UnknownAuthKind(pub String);

impl FromStr for ServiceConnectorAuth {
    type Err = UnknownAuthKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm = s.trim().to_ascii_lowercase().replace('_', "-");
        let alias = match norm.as_str() {
            "system" | "system-assigned" | "managed-identity" => "system-identity",
            "user" | "user-assigned" => "user-identity",
            "sp" | "secret" => "service-principal",
            "workload" => "workload-identity",
            "key" | "password" => "access-key",
            "connection-string-stackexchange" | "stackexchange" => "connection-string",
            "url" => "connection-string-url",
            other => other,
        };
        ServiceConnectorAuth::ALL
            .into_iter()
            .find(|k| k.as_str() == alias)
            .ok_or_else(|| UnknownAuthKind(s.to_string()))
    }
}

impl Emulator {
    /// The environment Service Connector would inject for `kind`, pointed at this emulator,
    /// plus what azure_identity needs to reach it. Identity-based kinds use the identities
    /// registered at start ([`Emulator::default_user_identity`] and friends).
    ///
    /// Every kind gets `AZURE_REDIS_HOST=localhost` (or a connection string naming
    /// `localhost`), the gate's TLS port (`AZURE_REDIS_PORT`, since it is not Azure's 6380) and
    /// `SSL_CERT_FILE` naming the emulator's CA.
    pub fn env_for(&self, kind: ServiceConnectorAuth) -> Vec<(String, String)> {
        let port = self.tls_addr().port().to_string();
        let ca = self.ca_file().display().to_string();
        let authority = self.token_endpoint_authority();
        let key = self.access_key();
        let key = key.expose_secret();
        let mut v: Vec<(&str, String)> = Vec::new();
        let host_port = |v: &mut Vec<(&str, String)>| {
            v.push(("AZURE_REDIS_HOST", "localhost".to_string()));
            v.push(("AZURE_REDIS_PORT", port.clone()));
        };
        match kind {
            ServiceConnectorAuth::SystemIdentity | ServiceConnectorAuth::UserIdentity => {
                host_port(&mut v);
                if kind == ServiceConnectorAuth::UserIdentity {
                    v.push((
                        "AZURE_REDIS_CLIENTID",
                        self.default_user_identity().client_id.clone(),
                    ));
                }
                v.push(("IDENTITY_ENDPOINT", self.identity_endpoint()));
                v.push((
                    "IDENTITY_HEADER",
                    self.identity_header().expose_secret().to_string(),
                ));
            }
            ServiceConnectorAuth::ServicePrincipal => {
                let (sp, sp_secret) = self.default_service_principal();
                host_port(&mut v);
                v.push(("AZURE_REDIS_CLIENTID", sp.client_id.clone()));
                v.push((
                    "AZURE_REDIS_CLIENTSECRET",
                    sp_secret.expose_secret().to_string(),
                ));
                v.push(("AZURE_REDIS_TENANTID", sp.tenant_id.clone()));
                v.push(("AZURE_AUTHORITY_HOST", authority));
            }
            ServiceConnectorAuth::WorkloadIdentity => {
                let wi = self.default_workload_identity();
                host_port(&mut v);
                v.push(("AZURE_REDIS_CLIENTID", wi.client_id.clone()));
                v.push(("AZURE_CLIENT_ID", wi.client_id.clone()));
                v.push(("AZURE_TENANT_ID", wi.tenant_id.clone()));
                v.push((
                    "AZURE_FEDERATED_TOKEN_FILE",
                    wi.token_file.display().to_string(),
                ));
                v.push(("AZURE_AUTHORITY_HOST", authority));
            }
            ServiceConnectorAuth::AccessKey => {
                host_port(&mut v);
                v.push(("AZURE_REDIS_DATABASE", "0".to_string()));
                v.push(("AZURE_REDIS_PASSWORD", key.to_string()));
                v.push(("AZURE_REDIS_SSL", "true".to_string()));
            }
            ServiceConnectorAuth::ConnectionStringStackExchange => v.push((
                "AZURE_REDIS_CONNECTIONSTRING",
                format!("localhost:{port},password={key},ssl=True,defaultDatabase=0"),
            )),
            ServiceConnectorAuth::ConnectionStringUrl => v.push((
                "AZURE_REDIS_CONNECTIONSTRING",
                format!("rediss://:{key}@localhost:{port}/0"),
            )),
        }
        v.push(("SSL_CERT_FILE", ca));
        v.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }
}

/// Quotes a value for a POSIX shell when needed.
pub fn shell_quote(value: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./:@%+=,".contains(c);
    if !value.is_empty() && value.chars().all(safe) {
        value.to_string()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in ServiceConnectorAuth::ALL {
            assert_eq!(k.as_str().parse::<ServiceConnectorAuth>(), Ok(k));
        }
        assert!("nope".parse::<ServiceConnectorAuth>().is_err());
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("abc"), "abc");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(
            shell_quote("rediss://:k+/=@localhost:1/0"),
            "rediss://:k+/=@localhost:1/0"
        );
    }
}
