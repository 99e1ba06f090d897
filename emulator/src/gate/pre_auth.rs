//! Azure's limits on connections that have not authenticated: a deadline from accept, and a
//! cap on how many may be open at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::GateState;
use crate::faults::Faults;

/// The gate's Azure-like limits on connections that have not authenticated yet, adjustable at
/// run time through [`Faults::set_pre_auth_timeout`] and [`Faults::set_max_unauthenticated`].
#[derive(Debug)]
pub(crate) struct PreAuth {
    pub(crate) timeout_ms: AtomicU64,
    pub(crate) max_open: AtomicU64,
    /// Connections open now that have not authenticated (nor gone half-open).
    open: AtomicU64,
}

impl Default for PreAuth {
    fn default() -> Self {
        Self {
            timeout_ms: AtomicU64::new(Faults::DEFAULT_PRE_AUTH_TIMEOUT.as_millis() as u64),
            max_open: AtomicU64::new(Faults::DEFAULT_MAX_UNAUTHENTICATED),
            open: AtomicU64::new(0),
        }
    }
}

impl PreAuth {
    /// When a connection accepted now must have authenticated (`None`: never).
    pub(super) fn deadline(&self) -> Option<Instant> {
        Instant::now().checked_add(Duration::from_millis(
            self.timeout_ms.load(Ordering::SeqCst),
        ))
    }
}

/// One of the [`PreAuth`] slots for unauthenticated connections; given back on release or drop.
pub(super) struct UnauthSlot(Option<Arc<GateState>>);

impl UnauthSlot {
    pub(super) fn acquire(gate: &Arc<GateState>) -> Option<Self> {
        let p = &gate.faults.pre_auth;
        let max = p.max_open.load(Ordering::SeqCst);
        p.open
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        Some(Self(Some(gate.clone())))
    }

    pub(super) fn release(&mut self) {
        if let Some(gate) = self.0.take() {
            gate.faults.pre_auth.open.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Drop for UnauthSlot {
    fn drop(&mut self) {
        self.release();
    }
}

/// What a connection got at accept: its pre-auth slot and deadline, and the half-open token in
/// force then.
pub(super) struct Admission {
    pub(super) slot: UnauthSlot,
    pub(super) pre_auth_deadline: Option<Instant>,
    pub(super) half_open: CancellationToken,
}

/// Resolves at `deadline` (never when `None`).
pub(super) async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Resolves at `deadline` unless `authed` fires first (then never).
pub(super) async fn pre_auth_expiry(deadline: Option<Instant>, authed: CancellationToken) {
    tokio::select! {
        _ = sleep_until_opt(deadline) => {}
        _ = authed.cancelled() => std::future::pending().await,
    }
}
