//! When to refresh a token, and how to back off when a refresh fails.

use std::time::Duration;

/// When the token provider refreshes, and how it retries.
///
/// A token is refreshed after `ratio` of its lifetime. When that leaves less than `min_lead`
/// before expiry and `min_lead` is under half the lifetime, it is refreshed `min_lead` before
/// expiry instead (Microsoft asks for 3 minutes before expiry on Azure). So the number of token
/// requests stays about one per `ratio` x lifetime, whatever the lifetime: a 3-second token is
/// refreshed after 2.25 s, a 60-minute token after 45 minutes.
///
/// A failed refresh is retried with exponential backoff and jitter, from `initial_backoff`,
/// capped at `max_backoff` and at a quarter of the token's lifetime, for as long as the provider
/// lives, also after the token expired.
#[derive(Clone, Debug, PartialEq)]
pub struct RefreshPolicy {
    /// Part of the lifetime after which to refresh (default 0.75).
    pub ratio: f64,
    /// Minimum time before expiry to refresh at, when it fits (default 3 minutes).
    pub min_lead: Duration,
    /// First retry delay after a failure (default 200 ms).
    pub initial_backoff: Duration,
    /// Longest retry delay (default 30 s).
    pub max_backoff: Duration,
    /// Timeout of one token request (default 30 s).
    pub request_timeout: Duration,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        RefreshPolicy {
            ratio: 0.75,
            min_lead: Duration::from_secs(180),
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
        }
    }
}

impl RefreshPolicy {
    /// How long after receiving a token of `lifetime` to refresh it.
    pub fn refresh_after(&self, lifetime: Duration) -> Duration {
        let ratio = if self.ratio.is_finite() {
            self.ratio.clamp(0.05, 0.95)
        } else {
            0.75
        };
        let mut lead = lifetime.mul_f64(1.0 - ratio);
        if lead < self.min_lead && self.min_lead < lifetime / 2 {
            lead = self.min_lead;
        }
        lifetime.saturating_sub(lead)
    }

    /// The delay before retry number `failures` (1 for the first retry), with jitter in
    /// [50 %, 100 %] of the exponential step.
    pub fn backoff(&self, failures: u32, lifetime: Option<Duration>) -> Duration {
        self.backoff_before_expiry(failures, lifetime, None)
    }

    /// Like [`backoff`](Self::backoff), with the step also capped at a quarter of the time left
    /// before the token in use expires, so that retries get denser as expiry nears.
    pub fn backoff_before_expiry(
        &self,
        failures: u32,
        lifetime: Option<Duration>,
        remaining: Option<Duration>,
    ) -> Duration {
        let mut cap = match lifetime {
            Some(lifetime) => self.max_backoff.min(lifetime / 4),
            None => self.max_backoff,
        };
        if let Some(remaining) = remaining.filter(|r| !r.is_zero()) {
            cap = cap.min(remaining / 4);
        }
        let cap = cap.max(self.initial_backoff);
        let exponent = failures.saturating_sub(1).min(20);
        let step = self.initial_backoff.saturating_mul(1 << exponent).min(cap);
        step.mul_f64(0.5 + fastrand::f64() * 0.5)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refreshes_at_the_ratio_with_a_lead_when_it_fits() {
        let policy = RefreshPolicy::default();
        let s = Duration::from_secs;
        assert_eq!(policy.refresh_after(s(3600)), s(2700));
        assert_eq!(policy.refresh_after(s(3)), Duration::from_millis(2250));
        assert_eq!(policy.refresh_after(s(300)), s(225));
        // 10 minutes: 25 % would leave 150 s, under the 180 s lead, which fits in half.
        assert_eq!(policy.refresh_after(s(600)), s(420));
        assert_eq!(policy.refresh_after(s(0)), s(0));
    }

    #[test]
    fn backoff_grows_with_jitter_and_a_cap_that_follows_the_lifetime() {
        let policy = RefreshPolicy::default();
        for failures in 1..40 {
            let short = policy.backoff(failures, Some(Duration::from_secs(2)));
            assert!(short <= Duration::from_millis(500), "{short:?}");
            let long = policy.backoff(failures, Some(Duration::from_secs(3600)));
            assert!(long <= Duration::from_secs(30), "{long:?}");
            assert!(long >= Duration::from_millis(100), "{long:?}");
        }
        // Near expiry the retries get denser.
        for failures in 1..40 {
            let near = policy.backoff_before_expiry(
                failures,
                Some(Duration::from_secs(3600)),
                Some(Duration::from_secs(8)),
            );
            assert!(near <= Duration::from_secs(2), "{near:?}");
        }
        let first = policy.backoff(1, None);
        assert!(first >= Duration::from_millis(100) && first <= Duration::from_millis(200));
    }
}
