//! Fault injection: the state the servers consult ([`IdentityFaults`] on the identity side,
//! [`GateFaults`] in each gate) and the public [`Faults`] handle that sets it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::EmulatorError;
use crate::gate::{GateState, PreAuth};
use crate::identity::IdentityState;

/// How an identity endpoint misbehaves during an outage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdentityFault {
    /// Answer every request with HTTP 500 and an error body.
    Http500,
    /// Never answer while the outage lasts (the request hangs; when the outage ends it gets
    /// HTTP 504).
    NoAnswer,
    /// Answer normally, but only after this delay.
    Slow(Duration),
    /// Answer with HTTP 500 and a body that holds a valid access token (of the system-assigned
    /// identity), as a misbehaving proxy or endpoint might:
    /// `{"error":"server_error","access_token":"<JWT>",...}`. A client must never copy such a
    /// body into its errors, logs or health output; [`Faults::echoed_tokens`] lists the tokens
    /// sent, for a test to search for.
    Http500EchoingToken,
}

/// Which identity endpoint a fault applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdentityEndpoint {
    /// The managed identity endpoint (`IDENTITY_ENDPOINT`).
    ManagedIdentity,
    /// The Entra ID token endpoint (`/{tenant}/oauth2/v2.0/token`).
    TokenEndpoint,
    /// Both.
    All,
}

impl IdentityEndpoint {
    fn slots(self) -> &'static [usize] {
        match self {
            IdentityEndpoint::ManagedIdentity => &[0],
            IdentityEndpoint::TokenEndpoint => &[1],
            IdentityEndpoint::All => &[0, 1],
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Outage {
    pub(crate) fault: IdentityFault,
    pub(crate) until: Option<Instant>,
    pub(crate) ended: CancellationToken,
}

impl Outage {
    fn active(&self) -> bool {
        !self.ended.is_cancelled() && self.until.is_none_or(|u| Instant::now() < u)
    }

    /// Resolves when the outage ends (cleared or its window elapsed).
    pub(crate) async fn end(&self) {
        match self.until {
            Some(u) => {
                tokio::select! {
                    _ = self.ended.cancelled() => {}
                    _ = tokio::time::sleep_until(u) => {}
                }
            }
            None => self.ended.cancelled().await,
        }
    }
}

/// Fault state of the identity endpoints.
#[derive(Debug, Default)]
pub(crate) struct IdentityFaults {
    outages: Mutex<[Option<Outage>; 2]>,
    /// Tokens sent in error bodies by [`IdentityFault::Http500EchoingToken`].
    pub(crate) echoed: Mutex<Vec<String>>,
    /// How long the identity endpoints wait for a TLS handshake, a request head or a body.
    pub(crate) http_read_timeout: crate::http::ReadTimeout,
}

/// Fault state of one gate.
#[derive(Debug)]
pub(crate) struct GateFaults {
    reject_auths: AtomicU64,
    stall_until: Mutex<Option<Instant>>,
    /// Fast path: false until a stall was ever requested.
    stall_set: std::sync::atomic::AtomicBool,
    kill: Mutex<CancellationToken>,
    /// Fires when every connection open now must go half-open (swapped like `kill`).
    half_open: Mutex<CancellationToken>,
    /// The gate's limits on connections that have not authenticated.
    pub(crate) pre_auth: PreAuth,
}

impl Default for GateFaults {
    fn default() -> Self {
        Self {
            reject_auths: AtomicU64::new(0),
            stall_until: Mutex::new(None),
            stall_set: std::sync::atomic::AtomicBool::new(false),
            kill: Mutex::new(CancellationToken::new()),
            half_open: Mutex::new(CancellationToken::new()),
            pre_auth: PreAuth::default(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl IdentityFaults {
    /// The active outage of an endpoint (0: managed identity, 1: token endpoint).
    pub(crate) fn outage(&self, slot: usize) -> Option<Outage> {
        let g = lock(&self.outages);
        g.get(slot).and_then(|o| o.clone()).filter(Outage::active)
    }
}

impl GateFaults {
    /// Consumes one injected AUTH rejection, if any is pending.
    pub(crate) fn take_auth_rejection(&self) -> bool {
        self.reject_auths
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    /// Waits while the gate is stalled.
    pub(crate) async fn wait_stall(&self) {
        if !self.stall_set.load(Ordering::Relaxed) {
            return;
        }
        loop {
            let until = *lock(&self.stall_until);
            match until {
                Some(u) if Instant::now() < u => tokio::time::sleep_until(u).await,
                _ => return,
            }
        }
    }

    /// The token that fires when every client connection must be dropped.
    pub(crate) fn kill_token(&self) -> CancellationToken {
        lock(&self.kill).clone()
    }

    /// The token that fires when every connection open now must go half-open.
    pub(crate) fn half_open_token(&self) -> CancellationToken {
        lock(&self.half_open).clone()
    }
}

/// Handle for injecting faults; obtained from [`Emulator::faults`](crate::Emulator::faults).
#[derive(Clone)]
pub struct Faults {
    pub(crate) gate: Arc<GateState>,
    /// The identity side whose endpoints identity outages affect; `None` for a cluster node's
    /// gate, which serves no identity endpoint, so that identity outages set through it change
    /// nothing.
    pub(crate) identity: Option<Arc<IdentityState>>,
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faults").finish_non_exhaustive()
    }
}

impl Faults {
    /// Default of [`Faults::set_pre_auth_timeout`]: a connection that has not completed a
    /// successful AUTH this long after it was accepted is closed.
    pub const DEFAULT_PRE_AUTH_TIMEOUT: Duration = Duration::from_secs(10);

    /// Default of [`Faults::set_max_unauthenticated`]: at most this many connections that have
    /// not authenticated yet may be open at once.
    pub const DEFAULT_MAX_UNAUTHENTICATED: u64 = 1000;

    /// Starts an outage of `endpoint`: for `window` if given, else until cleared.
    pub fn identity_outage(
        &self,
        endpoint: IdentityEndpoint,
        fault: IdentityFault,
        window: Option<Duration>,
    ) {
        if let Some(identity) = &self.identity {
            let mut g = lock(&identity.faults.outages);
            for &slot in endpoint.slots() {
                if let Some(old) = g[slot].take() {
                    old.ended.cancel();
                }
                g[slot] = Some(Outage {
                    fault,
                    until: window.map(|w| Instant::now() + w),
                    ended: CancellationToken::new(),
                });
            }
        }
        tracing::warn!(?endpoint, ?fault, ?window, "fault: identity outage started");
    }

    /// Ends the outage of `endpoint` (requests held by [`IdentityFault::NoAnswer`] get HTTP 504).
    pub fn clear_identity_outage(&self, endpoint: IdentityEndpoint) {
        if let Some(identity) = &self.identity {
            let mut g = lock(&identity.faults.outages);
            for &slot in endpoint.slots() {
                if let Some(old) = g[slot].take() {
                    old.ended.cancel();
                }
            }
        }
        tracing::info!(?endpoint, "fault: identity outage cleared");
    }

    /// The tokens the identity endpoints put into error bodies during an
    /// [`IdentityFault::Http500EchoingToken`] outage, oldest first.
    pub fn echoed_tokens(&self) -> Vec<String> {
        self.identity
            .as_ref()
            .map(|identity| lock(&identity.faults.echoed).clone())
            .unwrap_or_default()
    }

    /// Makes the gate refuse the next `n` AUTH / HELLO AUTH attempts, valid or not.
    pub fn reject_next_auths(&self, n: u64) {
        self.gate.faults.reject_auths.store(n, Ordering::SeqCst);
        tracing::warn!(n, "fault: rejecting the next AUTHs");
    }

    /// Closes every client connection of the gate now (no reply).
    pub fn drop_all_connections(&self) {
        let old = std::mem::replace(&mut *lock(&self.gate.faults.kill), CancellationToken::new());
        old.cancel();
        tracing::warn!("fault: dropped every client connection");
    }

    /// Makes every client connection of the gate that is open now half-open, as when the peer
    /// vanishes (a failed node, a dropped NAT entry): from now on the gate forwards nothing on
    /// it in either direction (what the client sends is read and discarded, nothing from
    /// redis-server reaches it), sends no FIN and no RST, and no longer closes it at token
    /// expiry, at the idle timeout or at the pre-auth timeout. The socket stays open until the
    /// client closes it or the emulator shuts down ([`Faults::drop_all_connections`] and
    /// [`Faults::clear_all`] do not touch it). Connections accepted afterwards are served
    /// normally. Counted in [`Counters::half_opened`].
    ///
    /// [`Counters::half_opened`]: crate::Counters::half_opened
    pub fn half_open_existing(&self) {
        let old = std::mem::replace(
            &mut *lock(&self.gate.faults.half_open),
            CancellationToken::new(),
        );
        old.cancel();
        tracing::warn!("fault: every open client connection goes half-open");
    }

    /// Sets the pre-auth timeout (default [`Faults::DEFAULT_PRE_AUTH_TIMEOUT`]), as Azure
    /// closes connections that do not authenticate: a connection that has not completed a
    /// successful AUTH / HELLO AUTH within `timeout` of being accepted (TLS handshake
    /// included) is closed without a reply, counted in [`Counters::closed_unauthenticated`].
    /// Applies to connections accepted from now on; once a connection has authenticated, a
    /// later `RESET` does not re-arm it.
    ///
    /// [`Counters::closed_unauthenticated`]: crate::Counters::closed_unauthenticated
    pub fn set_pre_auth_timeout(&self, timeout: Duration) {
        let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        self.gate
            .faults
            .pre_auth
            .timeout_ms
            .store(ms, Ordering::SeqCst);
        tracing::info!(?timeout, "gate: pre-auth timeout set");
    }

    /// Sets the limit on concurrently open connections that have not authenticated yet (default
    /// [`Faults::DEFAULT_MAX_UNAUTHENTICATED`]); over it, a new connection is closed right after
    /// accept, counted in [`Counters::closed_unauthenticated`]. A connection stops counting
    /// once it authenticates, closes or goes half-open.
    ///
    /// [`Counters::closed_unauthenticated`]: crate::Counters::closed_unauthenticated
    pub fn set_max_unauthenticated(&self, max: u64) {
        self.gate
            .faults
            .pre_auth
            .max_open
            .store(max, Ordering::SeqCst);
        tracing::info!(max, "gate: limit on unauthenticated connections set");
    }

    /// Stops the gate from forwarding anything, in both directions, for `duration`.
    /// Token expiry still closes connections while the gate is stalled.
    pub fn stall_gate(&self, duration: Duration) {
        *lock(&self.gate.faults.stall_until) = Some(Instant::now() + duration);
        self.gate.faults.stall_set.store(true, Ordering::SeqCst);
        tracing::warn!(?duration, "fault: gate stalled");
    }

    /// Kills redis-server and starts a new one on the same port (all data is lost; every gate
    /// connection is closed because its upstream closes).
    pub async fn restart_redis(&self) -> Result<(), EmulatorError> {
        tracing::warn!("fault: restarting redis-server");
        crate::redis_server::restart(&self.gate).await
    }

    /// Ends every fault: outages, pending AUTH rejections and a stall.
    pub fn clear_all(&self) {
        self.clear_identity_outage(IdentityEndpoint::All);
        self.gate.faults.reject_auths.store(0, Ordering::SeqCst);
        *lock(&self.gate.faults.stall_until) = None;
    }

    /// Default of [`Faults::set_http_read_timeout`].
    pub const DEFAULT_HTTP_READ_TIMEOUT: Duration = crate::http::DEFAULT_READ_TIMEOUT;

    /// Sets how long the identity endpoints (managed identity and token endpoint) wait for each
    /// part of a request (default [`Faults::DEFAULT_HTTP_READ_TIMEOUT`], at most a day): the
    /// TLS handshake, the request head (on a kept-alive connection, the wait for the next
    /// request too) and the request body. A slower client is disconnected, with a 408 reply if
    /// part of a request had arrived. Token lifetimes do not enter into it: a request for a 1 h
    /// or a 24 h token is the same few hundred bytes. Applies to connections accepted (and
    /// bodies awaited) from now on; does nothing on a cluster node's handle.
    pub fn set_http_read_timeout(&self, timeout: Duration) {
        if let Some(identity) = &self.identity {
            identity.faults.http_read_timeout.set(timeout);
        }
        tracing::info!(?timeout, "identity endpoints: read timeout set");
    }
}
