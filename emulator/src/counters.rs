//! Counters: live cells the servers increment, and the snapshot handed out.
//!
//! The identity endpoints and the gates count separately, since the gates of a cluster share
//! one identity side: [`IdentityCounterCells`] lives in the identity state, [`GateCounterCells`]
//! in each gate's.

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters of the identity side: both endpoints, and
/// [`Emulator::mint_token`](crate::Emulator::mint_token).
#[derive(Debug, Default)]
pub(crate) struct IdentityCounterCells {
    pub(crate) tokens_minted: AtomicU64,
    pub(crate) managed_identity_requests: AtomicU64,
    pub(crate) token_endpoint_requests: AtomicU64,
}

/// Live counters of one gate (one redis-server's TLS and plain listeners).
#[derive(Debug, Default)]
pub(crate) struct GateCounterCells {
    pub(crate) auth_accepted: AtomicU64,
    pub(crate) auth_rejected: AtomicU64,
    pub(crate) closed_at_expiry: AtomicU64,
    pub(crate) closed_idle: AtomicU64,
    pub(crate) closed_unauthenticated: AtomicU64,
    pub(crate) half_opened: AtomicU64,
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
    /// Connections put half-open by
    /// [`Faults::half_open_existing`](crate::Faults::half_open_existing).
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

fn get(a: &AtomicU64) -> u64 {
    a.load(Ordering::SeqCst)
}

impl IdentityCounterCells {
    /// Adds the counts now to `sum`.
    pub(crate) fn add_to(&self, sum: &mut Counters) {
        sum.tokens_minted += get(&self.tokens_minted);
        sum.managed_identity_requests += get(&self.managed_identity_requests);
        sum.token_endpoint_requests += get(&self.token_endpoint_requests);
    }
}

impl GateCounterCells {
    /// Adds the counts now to `sum`.
    pub(crate) fn add_to(&self, sum: &mut Counters) {
        sum.auth_accepted += get(&self.auth_accepted);
        sum.auth_rejected += get(&self.auth_rejected);
        sum.closed_at_expiry += get(&self.closed_at_expiry);
        sum.closed_idle += get(&self.closed_idle);
        sum.closed_unauthenticated += get(&self.closed_unauthenticated);
        sum.half_opened += get(&self.half_opened);
        sum.connections_accepted += get(&self.connections_accepted);
        sum.connections_open += get(&self.connections_open);
        sum.protocol_errors += get(&self.protocol_errors);
    }

    /// A snapshot of this gate alone (the identity side's counts are 0).
    pub(crate) fn snapshot(&self) -> Counters {
        let mut c = Counters::default();
        self.add_to(&mut c);
        c
    }
}

pub(crate) fn inc(a: &AtomicU64) {
    a.fetch_add(1, Ordering::SeqCst);
}
