//! The auth types Service Connector offers, and the environment it injects for each.

use std::fmt;
use std::io::Write as _;
use std::path::Path;
use std::str::FromStr;

use secrecy::ExposeSecret as _;

use crate::Emulator;
use crate::error::EmulatorError;
use crate::net::host_for_port;

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
    /// `localhost`; [`Emulator::redis_host`] in either case), the gate's TLS port (`AZURE_REDIS_PORT`, since it is not Azure's 6380) and
    /// `SSL_CERT_FILE` naming the emulator's CA.
    pub fn env_for(&self, kind: ServiceConnectorAuth) -> Vec<(String, String)> {
        let port = self.tls_addr().port().to_string();
        let host = self.redis_host().to_string();
        let host_in_pair = host_for_port(&host);
        let ca = self.ca_file().display().to_string();
        let authority = self.token_endpoint_authority();
        let key = self.access_key();
        let key = key.expose_secret();
        let mut v: Vec<(&str, String)> = Vec::new();
        let host_port = |v: &mut Vec<(&str, String)>| {
            v.push(("AZURE_REDIS_HOST", host.clone()));
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
                format!("{host_in_pair}:{port},password={key},ssl=True,defaultDatabase=0"),
            )),
            ServiceConnectorAuth::ConnectionStringUrl => v.push((
                "AZURE_REDIS_CONNECTIONSTRING",
                format!("rediss://:{key}@{host_in_pair}:{port}/0"),
            )),
        }
        v.push(("SSL_CERT_FILE", ca));
        v.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }
}

impl Emulator {
    /// Writes the variables of [`Emulator::env_for`] for `kind` to `path` as a dotenv file,
    /// for a CI job or an app in another language: `KEY=value` lines under a comment header
    /// naming the auth type. A value is single-quoted when it holds anything but letters,
    /// digits and `-_./:@%+=,` (so that a shell's `set -a; . FILE; set +a` and dotenv loaders
    /// read the same value); a value holding a `'` or a line break cannot be written that way
    /// and is refused ([`EmulatorError::InvalidArgument`], naming the variable, never the
    /// value).
    ///
    /// The file is written next to `path` and renamed onto it, so a reader never sees half a
    /// file, with mode 0600 on Unix since it may hold an access key or a client secret.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), azure_redis_emulator::EmulatorError> {
    /// use azure_redis_emulator::{Emulator, ServiceConnectorAuth};
    ///
    /// let emu = Emulator::start().await?;
    /// emu.write_env_file(ServiceConnectorAuth::AccessKey, "target/emulator.env".as_ref())?;
    /// # Ok(()) }
    /// ```
    pub fn write_env_file(
        &self,
        kind: ServiceConnectorAuth,
        path: &Path,
    ) -> Result<(), EmulatorError> {
        let contents = dotenv_contents(kind, &self.env_for(kind), std::process::id())?;
        write_private_atomically(path, contents.as_bytes())
            .map_err(|e| EmulatorError::io(format!("writing the env file {}", path.display()), e))
    }
}

/// The dotenv file for `vars` of `kind`, written by process `pid`.
fn dotenv_contents(
    kind: ServiceConnectorAuth,
    vars: &[(String, String)],
    pid: u32,
) -> Result<String, EmulatorError> {
    let mut out = format!(
        "# azure-redis-emulator: environment for auth type {kind}\n\
         # Written by process {pid} once the emulator was ready; valid while it runs.\n\
         # Holds secrets: keep it private (mode 0600). Load it with `set -a; . FILE; set +a`\n\
         # or a dotenv loader.\n"
    );
    for (key, value) in vars {
        if value.contains(['\'', '\n', '\r', '\0']) {
            return Err(EmulatorError::InvalidArgument(format!(
                "the value of {key} holds a quote or a line break and cannot be written to a dotenv file"
            )));
        }
        out.push_str(key);
        out.push('=');
        out.push_str(&shell_quote(value));
        out.push('\n');
    }
    Ok(out)
}

/// Writes `contents` to a temporary file beside `path` (mode 0600 on Unix), flushes it to
/// disk and renames it onto `path`.
fn write_private_atomically(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no file name"))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{}.", name.to_string_lossy()))
        .suffix(".tmp")
        .tempfile_in(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    tmp.write_all(contents)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
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
    fn dotenv_header_names_the_auth_type_and_values_are_quoted_when_needed() {
        let vars = vec![
            ("AZURE_REDIS_HOST".to_string(), "localhost".to_string()),
            ("SSL_CERT_FILE".to_string(), "/tmp/a dir/ca.pem".to_string()),
        ];
        let text = dotenv_contents(ServiceConnectorAuth::AccessKey, &vars, 42).unwrap();
        assert!(text.starts_with("# azure-redis-emulator: environment for auth type access-key\n"));
        assert!(text.contains("process 42"));
        assert!(text.ends_with("AZURE_REDIS_HOST=localhost\nSSL_CERT_FILE='/tmp/a dir/ca.pem'\n"));
        let bad = vec![("AZURE_REDIS_PASSWORD".to_string(), "it's".to_string())];
        let e = dotenv_contents(ServiceConnectorAuth::AccessKey, &bad, 1).unwrap_err();
        assert!(e.to_string().contains("AZURE_REDIS_PASSWORD"), "{e}");
        assert!(!e.to_string().contains("it's"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn env_file_is_replaced_whole_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("emu.env");
        std::fs::write(&path, "old").unwrap();
        write_private_atomically(&path, b"A=1\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "A=1\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // Only the file itself is left: the temporary one was renamed onto it.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
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
