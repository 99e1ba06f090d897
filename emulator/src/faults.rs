//! Fault injection and counters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::Shared;
use crate::error::EmulatorError;

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

/// Mutable fault state shared by the servers.
#[derive(Debug)]
pub(crate) struct FaultState {
    outages: Mutex<[Option<Outage>; 2]>,
    reject_auths: AtomicU64,
    stall_until: Mutex<Option<Instant>>,
    /// Fast path: false until a stall was ever requested.
    stall_set: std::sync::atomic::AtomicBool,
    kill: Mutex<CancellationToken>,
    /// Fires when every connection open now must go half-open (swapped like `kill`).
    half_open: Mutex<CancellationToken>,
    /// The gate's limits on connections that have not authenticated.
    pub(crate) pre_auth: crate::gate::PreAuth,
    /// Tokens sent in error bodies by [`IdentityFault::Http500EchoingToken`].
    pub(crate) echoed: Mutex<Vec<String>>,
}

impl Default for FaultState {
    fn default() -> Self {
        Self {
            outages: Mutex::new([None, None]),
            reject_auths: AtomicU64::new(0),
            stall_until: Mutex::new(None),
            stall_set: std::sync::atomic::AtomicBool::new(false),
            kill: Mutex::new(CancellationToken::new()),
            half_open: Mutex::new(CancellationToken::new()),
            pre_auth: crate::gate::PreAuth::default(),
            echoed: Mutex::new(Vec::new()),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl FaultState {
    /// The active outage of an endpoint (0: managed identity, 1: token endpoint).
    pub(crate) fn outage(&self, slot: usize) -> Option<Outage> {
        let g = lock(&self.outages);
        g.get(slot).and_then(|o| o.clone()).filter(Outage::active)
    }

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
    pub(crate) shared: Arc<Shared>,
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
        let f = &self.shared.faults;
        let mut g = lock(&f.outages);
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
        tracing::warn!(?endpoint, ?fault, ?window, "fault: identity outage started");
    }

    /// Ends the outage of `endpoint` (requests held by [`IdentityFault::NoAnswer`] get HTTP 504).
    pub fn clear_identity_outage(&self, endpoint: IdentityEndpoint) {
        let mut g = lock(&self.shared.faults.outages);
        for &slot in endpoint.slots() {
            if let Some(old) = g[slot].take() {
                old.ended.cancel();
            }
        }
        tracing::info!(?endpoint, "fault: identity outage cleared");
    }

    /// The tokens the identity endpoints put into error bodies during an
    /// [`IdentityFault::Http500EchoingToken`] outage, oldest first.
    pub fn echoed_tokens(&self) -> Vec<String> {
        lock(&self.shared.faults.echoed).clone()
    }

    /// Makes the gate refuse the next `n` AUTH / HELLO AUTH attempts, valid or not.
    pub fn reject_next_auths(&self, n: u64) {
        self.shared.faults.reject_auths.store(n, Ordering::SeqCst);
        tracing::warn!(n, "fault: rejecting the next AUTHs");
    }

    /// Closes every client connection of the gate now (no reply).
    pub fn drop_all_connections(&self) {
        let old = std::mem::replace(
            &mut *lock(&self.shared.faults.kill),
            CancellationToken::new(),
        );
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
    pub fn half_open_existing(&self) {
        let old = std::mem::replace(
            &mut *lock(&self.shared.faults.half_open),
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
    pub fn set_pre_auth_timeout(&self, timeout: Duration) {
        let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        self.shared
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
    pub fn set_max_unauthenticated(&self, max: u64) {
        self.shared
            .faults
            .pre_auth
            .max_open
            .store(max, Ordering::SeqCst);
        tracing::info!(max, "gate: limit on unauthenticated connections set");
    }

    /// Stops the gate from forwarding anything, in both directions, for `duration`.
    /// Token expiry still closes connections while the gate is stalled.
    pub fn stall_gate(&self, duration: Duration) {
        *lock(&self.shared.faults.stall_until) = Some(Instant::now() + duration);
        self.shared.faults.stall_set.store(true, Ordering::SeqCst);
        tracing::warn!(?duration, "fault: gate stalled");
    }

    /// Kills redis-server and starts a new one on the same port (all data is lost; every gate
    /// connection is closed because its upstream closes).
    pub async fn restart_redis(&self) -> Result<(), EmulatorError> {
        tracing::warn!("fault: restarting redis-server");
        crate::redis_server::restart(&self.shared).await
    }

    /// Ends every fault: outages, pending AUTH rejections and a stall.
    pub fn clear_all(&self) {
        self.clear_identity_outage(IdentityEndpoint::All);
        self.shared.faults.reject_auths.store(0, Ordering::SeqCst);
        *lock(&self.shared.faults.stall_until) = None;
    }
}

/// Live counters.
#[derive(Debug, Default)]
pub(crate) struct CounterCells {
    pub(crate) auth_accepted: AtomicU64,
    pub(crate) auth_rejected: AtomicU64,
    pub(crate) closed_at_expiry: AtomicU64,
    pub(crate) closed_idle: AtomicU64,
    pub(crate) closed_unauthenticated: AtomicU64,
    pub(crate) half_opened: AtomicU64,
    pub(crate) tokens_minted: AtomicU64,
    pub(crate) managed_identity_requests: AtomicU64,
    pub(crate) token_endpoint_requests: AtomicU64,
    pub(crate) connections_accepted: AtomicU64,
    pub(crate) connections_open: AtomicU64,
    pub(crate) protocol_errors: AtomicU64,
}

/// A snapshot of the emulator's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counters {
    /// AUTH / HELLO AUTH attempts the gate accepted.
    pub auth_accepted: u64,
    /// AUTH / HELLO AUTH attempts the gate refused.
    pub auth_rejected: u64,
    /// Connections the gate closed because their token expired.
    pub closed_at_expiry: u64,
    /// Connections the gate closed because nothing moved on them for the idle timeout.
    pub closed_idle: u64,
    /// Connections the gate closed before a successful AUTH: at the pre-auth timeout, or right
    /// after accept because too many unauthenticated connections were open.
    pub closed_unauthenticated: u64,
    /// Connections put half-open by [`Faults::half_open_existing`].
    pub half_opened: u64,
    /// Access tokens minted (by either endpoint or by [`Emulator::mint_token`](crate::Emulator::mint_token)).
    pub tokens_minted: u64,
    /// Requests to the managed identity endpoint (successful or not).
    pub managed_identity_requests: u64,
    /// Requests to the Entra ID token endpoint (successful or not).
    pub token_endpoint_requests: u64,
    /// Client connections the gate accepted since start.
    pub connections_accepted: u64,
    /// Client connections open now.
    pub connections_open: u64,
    /// Connections closed because of malformed or oversized input.
    pub protocol_errors: u64,
}

impl CounterCells {
    pub(crate) fn snapshot(&self) -> Counters {
        let g = |a: &AtomicU64| a.load(Ordering::SeqCst);
        Counters {
            auth_accepted: g(&self.auth_accepted),
            auth_rejected: g(&self.auth_rejected),
            closed_at_expiry: g(&self.closed_at_expiry),
            closed_idle: g(&self.closed_idle),
            closed_unauthenticated: g(&self.closed_unauthenticated),
            half_opened: g(&self.half_opened),
            tokens_minted: g(&self.tokens_minted),
            managed_identity_requests: g(&self.managed_identity_requests),
            token_endpoint_requests: g(&self.token_endpoint_requests),
            connections_accepted: g(&self.connections_accepted),
            connections_open: g(&self.connections_open),
            protocol_errors: g(&self.protocol_errors),
        }
    }
}

pub(crate) fn inc(a: &AtomicU64) {
    a.fetch_add(1, Ordering::SeqCst);
}
