//! The single-node emulator's public handle: its addresses, its CA, faults, counters and
//! shutdown.
//!
//! The rest of it is split by concern: `builder` (settings), `start` (bringing every server
//! up), `identities` (who may get tokens and the secrets they present), `tokens` (tokens minted
//! on request, valid or deliberately flawed); the environment for each Service Connector auth
//! type is in [`crate::env`].

mod builder;
mod identities;
mod start;
mod tokens;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::counters::Counters;
use crate::error::EmulatorError;
use crate::faults::Faults;
use crate::gate::{GateSettings, GateState};
use crate::http;
use crate::identity::IdentityState;

pub use builder::{DEFAULT_MAX_BULK_LEN, DEFAULT_TOKEN_LIFETIME, EmulatorBuilder};
use identities::DefaultIdentities;
pub use tokens::{MintedToken, TokenFlaw};

/// A running emulator. Dropping it stops every task and kills the child redis-server;
/// [`Emulator::shutdown`] does the same and waits for it.
pub struct Emulator {
    identity: Arc<IdentityState>,
    /// The gate's TLS and plain listeners share this state.
    gate: Arc<GateState>,
    tasks: JoinSet<()>,
    tls_addr: SocketAddr,
    plain_addr: Option<SocketAddr>,
    mi_addr: SocketAddr,
    entra_addr: SocketAddr,
    ca_pem: String,
    ca_file: PathBuf,
    defaults: DefaultIdentities,
    dir: Option<tempfile::TempDir>,
    gate_tls: TlsAcceptor,
    /// The host clients are given (`AZURE_REDIS_HOST`), from the bind address.
    host: String,
    /// The env file written at start ([`EmulatorBuilder::env_file`]), removed at stop.
    env_file: Option<PathBuf>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("tls_addr", &self.tls_addr)
            .field("plain_addr", &self.plain_addr)
            .field("redis_addr", &self.redis_addr())
            .field("identity_endpoint", &self.identity_endpoint())
            .field("authority", &self.identity.authority)
            .finish_non_exhaustive()
    }
}

impl Emulator {
    /// A builder with default settings.
    pub fn builder() -> EmulatorBuilder {
        EmulatorBuilder::default()
    }

    /// Starts an emulator with default settings.
    pub async fn start() -> Result<Self, EmulatorError> {
        EmulatorBuilder::default().start().await
    }

    /// The identity side, which the cluster's node gates share.
    pub(crate) fn identity_state(&self) -> &Arc<IdentityState> {
        &self.identity
    }

    /// The gate's settings, which the cluster's node gates copy.
    pub(crate) fn gate_settings(&self) -> GateSettings {
        self.gate.settings
    }

    /// The gate's TLS acceptor (certificate for `localhost`, `127.0.0.1` and the extra names).
    pub(crate) fn gate_acceptor(&self) -> TlsAcceptor {
        self.gate_tls.clone()
    }

    /// Address of the gate's TLS listener (certificate for `localhost`, `127.0.0.1` and the
    /// names of [`EmulatorBuilder::cert_host`]). With an unspecified bind address (`0.0.0.0`,
    /// `::`) this is the loopback address the listener also answers on.
    pub fn tls_addr(&self) -> SocketAddr {
        self.tls_addr
    }

    /// The host clients are told to connect to (`AZURE_REDIS_HOST`, the host of connection
    /// strings): `localhost`, or the bind address when it is neither `127.0.0.1` nor
    /// unspecified ([`EmulatorBuilder::bind_address`]).
    pub fn redis_host(&self) -> &str {
        &self.host
    }

    /// Address of the gate's plain listener, when enabled.
    pub fn plain_addr(&self) -> Option<SocketAddr> {
        self.plain_addr
    }

    /// Address of the child redis-server itself (behind the gate; it requires
    /// [`Emulator::redis_password`]).
    pub fn redis_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.gate.redis_config.port))
    }

    /// The internal password of the child redis-server, for direct access that bypasses the
    /// gate (benchmarks, inspection).
    pub fn redis_password(&self) -> &SecretString {
        self.gate.internal_password()
    }

    /// PEM of the emulator's CA certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Path of a PEM file holding the CA certificate (in a temporary directory the emulator
    /// owns; removed when it stops). Suitable for `SSL_CERT_FILE`.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// The managed identity endpoint (`IDENTITY_ENDPOINT`), `http://127.0.0.1:PORT/msi/token`
    /// (or the bind address in place of `127.0.0.1`).
    pub fn identity_endpoint(&self) -> String {
        format!("http://{}{}", self.mi_addr, http::MI_PATH)
    }

    /// The secret the managed identity endpoint expects in `x-identity-header`
    /// (`IDENTITY_HEADER`).
    pub fn identity_header(&self) -> &SecretString {
        &self.identity.identity_header
    }

    /// The Entra ID authority host (`AZURE_AUTHORITY_HOST`), `https://localhost:PORT` (or
    /// [`Emulator::redis_host`] in place of `localhost`).
    pub fn token_endpoint_authority(&self) -> String {
        self.identity.authority.clone()
    }

    /// Address of the token endpoint's listener.
    pub fn token_endpoint_addr(&self) -> SocketAddr {
        self.entra_addr
    }

    /// Fault injection.
    pub fn faults(&self) -> Faults {
        Faults {
            gate: self.gate.clone(),
            identity: Some(self.identity.clone()),
        }
    }

    /// A snapshot of the counters.
    pub fn counters(&self) -> Counters {
        let mut counters = Counters::default();
        self.identity.counters.add_to(&mut counters);
        self.gate.counters.add_to(&mut counters);
        counters
    }

    /// Stops every server and task, kills redis-server and removes the temporary directory
    /// and the env file of [`EmulatorBuilder::env_file`], waiting for all of it.
    pub async fn shutdown(mut self) {
        self.identity.shutdown.cancel();
        let mut tasks = std::mem::take(&mut self.tasks);
        let joined = tokio::time::timeout(Duration::from_secs(5), async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if joined.is_err() {
            tasks.abort_all();
        }
        if let Some(mut server) = self.gate.take_redis() {
            let _ = tokio::task::spawn_blocking(move || server.stop()).await;
        }
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
        if let Some(path) = self.env_file.take() {
            let _ = std::fs::remove_file(path);
        }
        tracing::info!("emulator stopped");
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.identity.shutdown.cancel();
        self.tasks.abort_all();
        if let Some(mut server) = self.gate.take_redis() {
            server.stop();
        }
        if let Some(path) = self.env_file.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn public_types_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<super::Emulator>();
        check::<super::Faults>();
        check::<super::MintedToken>();
        check::<super::EmulatorBuilder>();
    }
}
