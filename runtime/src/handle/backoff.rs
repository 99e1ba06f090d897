//! The wait between failed connection attempts.

use std::time::Duration;

/// Exponential backoff with jitter: attempt `n` (1 for the first retry) waits a random 50-100 %
/// of `initial x 2^(n-1)`, capped at `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The first step.
    pub initial: Duration,
    /// The longest step.
    pub max: Duration,
}

/// Between failed reconnects of a handle (and rebuilds of a cluster connection): 200 ms,
/// doubling to at most 2 s. Short because a handle without a connection serves nothing; the
/// identity side is not involved (a reconnect with an expired token is not attempted at all:
/// the handle waits for the next token instead).
pub const RECONNECT_BACKOFF: Backoff = Backoff {
    initial: Duration::from_millis(200),
    max: Duration::from_secs(2),
};

impl Backoff {
    /// The wait before retry number `failures` (1 for the first).
    pub fn delay(&self, failures: u32) -> Duration {
        let exponent = failures.saturating_sub(1).min(20);
        let step = self.initial.saturating_mul(1 << exponent).min(self.max);
        step.mul_f64(0.5 + fastrand::f64() * 0.5)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_its_cap_with_jitter() {
        let first = RECONNECT_BACKOFF.delay(1);
        assert!(first >= Duration::from_millis(100) && first <= Duration::from_millis(200));
        for failures in 5..50 {
            let d = RECONNECT_BACKOFF.delay(failures);
            assert!(
                d >= Duration::from_secs(1) && d <= Duration::from_secs(2),
                "{d:?}"
            );
        }
    }
}
