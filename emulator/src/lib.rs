//! A local stand-in for the Azure side of Azure Cache for Redis with Microsoft Entra ID.
//!
//! One [`Emulator`] runs, all on `127.0.0.1` unless told otherwise
//! ([`EmulatorBuilder::bind_address`]):
//!
//! - a **managed identity endpoint** speaking the App Service protocol (`IDENTITY_ENDPOINT` +
//!   `IDENTITY_HEADER`), as azure_identity's `ManagedIdentityCredential` uses it;
//! - a **Microsoft Entra ID token endpoint** (`POST /{tenant}/oauth2/v2.0/token`, HTTPS) for
//!   client secrets and federated (workload identity) assertions;
//! - a child **redis-server** with an internal password nobody else knows;
//! - a **gate** in front of it (TLS, optionally also plain TCP) that validates
//!   `AUTH <oid> <token>` / `HELLO 3 AUTH <oid> <token>` like Azure (RS256 signature, `exp`,
//!   `nbf`, audience, username equal to the token's `oid`), closes a connection without a reply
//!   when its token expires without a valid re-AUTH, and passes everything else through.
//!
//! Tokens are RS256 JWTs signed with an RSA-2048 key generated once per process (shared by the
//! emulators of that process); certificates come from a CA made for each emulator
//! ([`Emulator::ca_pem`], [`Emulator::ca_file`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), azure_redis_emulator::EmulatorError> {
//! use std::time::Duration;
//! use azure_redis_emulator::{Emulator, ServiceConnectorAuth};
//!
//! let emu = Emulator::builder()
//!     .token_lifetime(Duration::from_secs(3))
//!     .plain_listener(true)
//!     .start()
//!     .await?;
//! for (k, v) in emu.env_for(ServiceConnectorAuth::SystemIdentity) {
//!     println!("{k}={v}");
//! }
//! let token = emu.mint_token(&emu.system_identity(), Duration::from_secs(60));
//! // AUTH <token.oid> <token.secret()> on emu.tls_addr() now succeeds.
//! # let _ = token;
//! emu.shutdown().await;
//! # Ok(()) }
//! ```
mod cluster;
mod counters;
mod emulator;
mod env;
mod error;
mod faults;
mod gate;
mod http;
mod identity;
mod jwt;
mod net;
mod pki;
mod random;
mod redis_server;
mod resp;

pub use cluster::{Announce, CLUSTER_SLOTS, ClusterEmulator, ClusterEmulatorBuilder};
pub use counters::Counters;
pub use emulator::{
    DEFAULT_MAX_BULK_LEN, DEFAULT_TOKEN_LIFETIME, Emulator, EmulatorBuilder, MintedToken, TokenFlaw,
};
#[allow(deprecated)]
pub use env::AuthKind;
pub use env::{ServiceConnectorAuth, UnknownAuthKind, shell_quote};
pub use error::EmulatorError;
pub use faults::{Faults, IdentityEndpoint, IdentityFault};
pub use identity::{ServicePrincipal, UserIdentity, WorkloadIdentity};
pub use jwt::{FEDERATED_AUDIENCE, REDIS_APP_ID, REDIS_AUDIENCE};
pub use net::Listener;
