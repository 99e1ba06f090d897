//! The options the single-node and the cluster builders share, and their setters.

use std::time::Duration;

use crate::config::{Auth, Endpoint, Service};
use crate::token::{self, RefreshPolicy, TokenProvider, TokenSource};

use super::ConnectError;

/// What both builders take besides the endpoint and the auth type.
pub(crate) struct Options {
    pub(crate) root_ca_pem: Option<Vec<u8>>,
    pub(crate) authority_host: Option<String>,
    pub(crate) connect_timeout: Duration,
    pub(crate) response_timeout: Option<Duration>,
    pub(crate) auth_timeout: Duration,
    pub(crate) resp3: bool,
    pub(crate) username: Option<String>,
    pub(crate) policy: RefreshPolicy,
    pub(crate) allow_plaintext: bool,
    pub(crate) keepalive: Option<Duration>,
    pub(crate) token_source: Option<Box<dyn TokenSource>>,
}

/// Well under the 10 minutes after which Azure closes an idle connection.
const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(60);

impl Default for Options {
    fn default() -> Self {
        Options {
            root_ca_pem: None,
            authority_host: None,
            connect_timeout: Duration::from_secs(10),
            response_timeout: None,
            auth_timeout: Duration::from_secs(10),
            resp3: true,
            username: None,
            policy: RefreshPolicy::default(),
            allow_plaintext: false,
            keepalive: Some(DEFAULT_KEEPALIVE),
            token_source: None,
        }
    }
}

impl Options {
    /// Refuses a plaintext endpoint unless allowed, builds the token source for `auth` (unless
    /// one was given) and gets the first token, with a timeout of its own, before any TCP
    /// connect.
    pub(crate) async fn start_provider(
        &mut self,
        endpoint: &Endpoint,
        auth: &Auth,
    ) -> Result<TokenProvider, ConnectError> {
        check_plaintext(endpoint, self.allow_plaintext)?;
        token::install_crypto_provider();
        let source = match self.token_source.take() {
            Some(source) => source,
            None => {
                let options = token::CredentialOptions {
                    extra_root_ca: self.root_ca_pem.clone(),
                    authority_host: self.authority_host.clone(),
                };
                token::source_for(auth, &options)?
            }
        };
        Ok(TokenProvider::start(source, self.policy.clone(), self.username.clone()).await?)
    }
}

/// Keepalive ticks every `period`, the first one `period` from now; none without a period.
pub(crate) fn keepalive_ticks(period: Option<Duration>) -> Option<tokio::time::Interval> {
    period.map(|period| {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks
    })
}

/// The next tick of `ticks`; never without them.
pub(crate) async fn tick(ticks: &mut Option<tokio::time::Interval>) {
    match ticks {
        Some(ticks) => {
            ticks.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Refuses TLS off for Azure hosts, and elsewhere unless `allow_plaintext` is set.
fn check_plaintext(endpoint: &Endpoint, allow_plaintext: bool) -> Result<(), ConnectError> {
    if endpoint.tls {
        return Ok(());
    }
    if endpoint.service() != Service::Other {
        return Err(ConnectError::PlaintextRefused {
            host: endpoint.host.clone(),
        });
    }
    if !allow_plaintext {
        return Err(ConnectError::PlaintextNotAllowed {
            endpoint: endpoint.to_string(),
        });
    }
    Ok(())
}

/// The setters of [`Options`] on a builder with an `options` field.
macro_rules! option_setters {
    ($builder:ty) => {
        impl $builder {
            /// Gets tokens from `source` instead of the credential the [`Auth`](crate::Auth)
            /// names: a credential of your own, or tokens minted for tests.
            pub fn token_source(mut self, source: impl $crate::token::TokenSource) -> Self {
                self.options.token_source = Some(Box::new(source));
                self
            }

            /// Trusts this CA (PEM) for the Redis TLS connections (instead of the system roots)
            /// and for the identity endpoints (in addition to the system roots): for a local
            /// emulator or a private CA.
            pub fn root_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
                self.options.root_ca_pem = Some(pem.into());
                self
            }

            /// The Microsoft Entra ID authority host for service principal and workload
            /// identity credentials (a sovereign cloud, or a local emulator).
            pub fn authority_host(mut self, url: impl Into<String>) -> Self {
                self.options.authority_host = Some(url.into());
                self
            }

            /// Timeout of TCP, TLS and the initial AUTH of a connection (default 10 s; Azure
            /// can take seconds to validate a token).
            pub fn connect_timeout(mut self, timeout: std::time::Duration) -> Self {
                self.options.connect_timeout = timeout;
                self
            }

            /// Timeout of each command's reply (default none: blocking commands may wait).
            pub fn response_timeout(mut self, timeout: Option<std::time::Duration>) -> Self {
                self.options.response_timeout = timeout;
                self
            }

            /// Timeout of re-AUTH on the live connections (default 10 s).
            pub fn auth_timeout(mut self, timeout: std::time::Duration) -> Self {
                self.options.auth_timeout = timeout;
                self
            }

            /// Speaks RESP2 instead of RESP3. Without RESP3 a connection the server closes is
            /// noticed only when it is next used, and pub/sub messages cannot be received.
            pub fn resp2(mut self) -> Self {
                self.options.resp3 = false;
                self
            }

            /// AUTHs with this user name instead of the token's `oid` claim.
            pub fn username(mut self, username: impl Into<String>) -> Self {
                self.options.username = Some(username.into());
                self
            }

            /// When to refresh tokens and how to retry.
            pub fn refresh_policy(mut self, policy: $crate::token::RefreshPolicy) -> Self {
                self.options.policy = policy;
                self
            }

            /// Sends a `PING` on every connection at this interval (default 60 s; `None` for
            /// never).
            ///
            /// Azure closes a connection on which nothing moved for 10 minutes, so that a handle
            /// idle for longer would otherwise reconnect (RESP3, on the server's close) or fail
            /// its next command (RESP2). A `PING` that finds a connection dropped has it
            /// replaced at once.
            pub fn keepalive(mut self, interval: Option<std::time::Duration>) -> Self {
                self.options.keepalive = interval.filter(|i| !i.is_zero());
                self
            }

            /// Allows TLS off for hosts that are not Azure's (a local server). Azure hosts are
            /// always refused without TLS.
            pub fn allow_plaintext(mut self) -> Self {
                self.options.allow_plaintext = true;
                self
            }
        }
    };
}

pub(crate) use option_setters;
