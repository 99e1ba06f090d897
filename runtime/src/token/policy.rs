//! When to refresh a token, and how to back off when a refresh fails.

use std::time::Duration;

/// When the token provider refreshes, and how it retries.
///
/// **Refresh point.** A token is refreshed after `ratio` of its lifetime. When that leaves less
/// than `min_lead` before expiry and `min_lead` is under half the lifetime, it is refreshed
/// `min_lead` before expiry instead (Microsoft asks for 3 minutes before expiry on Azure). With
/// the defaults a 1-hour service principal token is refreshed after 45 minutes (15 minutes
/// before expiry), a 24-hour managed identity token after 18 hours (6 hours before expiry), a
/// 10-minute token after 7 minutes, a 3-second test token after 2.25 s.
///
/// **Retries before expiry.** A failed refresh is retried with exponential backoff and jitter
/// (each delay drawn from 50-100 % of its step), from `initial_backoff` (200 ms), each step
/// capped at `max_backoff` (30 s), at a quarter of the lifetime and at a quarter of the time
/// left before expiry. So a 1-hour token whose refresh fails at 45 minutes is retried about
/// every 15-30 s for most of its last 15 minutes, every few seconds in its last minute and
/// every 100-200 ms in its last second; a 24-hour token every 15-30 s for its last 6 hours.
///
/// **Retries after expiry.** Once the token in use has expired the service is down anyway, and
/// what matters is to notice at once when the identity endpoint is back: retries then come
/// every `expired_retry` (1 s) with jitter (0.5-1 s apart), whatever the lifetime, for as long
/// as the provider lives. The first command after the endpoint's return then waits at most
/// about one second plus one token request and one connect.
#[derive(Clone, Debug, PartialEq)]
pub struct RefreshPolicy {
    /// Part of the lifetime after which to refresh (default 0.75).
    pub ratio: f64,
    /// Minimum time before expiry to refresh at, when it fits (default 3 minutes).
    pub min_lead: Duration,
    /// First retry delay after a failure (default 200 ms).
    pub initial_backoff: Duration,
    /// Longest retry delay before expiry (default 30 s).
    pub max_backoff: Duration,
    /// Retry delay once the token in use has expired, before jitter (default 1 s).
    pub expired_retry: Duration,
    /// Timeout of one token request (default 30 s).
    pub request_timeout: Duration,
}

/// Default [`RefreshPolicy::ratio`].
pub const DEFAULT_REFRESH_RATIO: f64 = 0.75;
/// Default [`RefreshPolicy::min_lead`]: Microsoft asks for a re-AUTH at least 3 minutes before
/// expiry.
pub const DEFAULT_MIN_LEAD: Duration = Duration::from_secs(180);
/// Default [`RefreshPolicy::initial_backoff`].
pub const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_millis(200);
/// Default [`RefreshPolicy::max_backoff`].
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Default [`RefreshPolicy::expired_retry`].
pub const DEFAULT_EXPIRED_RETRY: Duration = Duration::from_secs(1);
/// Default [`RefreshPolicy::request_timeout`].
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

impl Default for RefreshPolicy {
    fn default() -> Self {
        RefreshPolicy {
            ratio: DEFAULT_REFRESH_RATIO,
            min_lead: DEFAULT_MIN_LEAD,
            initial_backoff: DEFAULT_INITIAL_BACKOFF,
            max_backoff: DEFAULT_MAX_BACKOFF,
            expired_retry: DEFAULT_EXPIRED_RETRY,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

impl RefreshPolicy {
    /// How long after receiving a token of `lifetime` to refresh it.
    pub fn refresh_after(&self, lifetime: Duration) -> Duration {
        let ratio = if self.ratio.is_finite() {
            self.ratio.clamp(0.05, 0.95)
        } else {
            DEFAULT_REFRESH_RATIO
        };
        let mut lead = lifetime.mul_f64(1.0 - ratio);
        if lead < self.min_lead && self.min_lead < lifetime / 2 {
            lead = self.min_lead;
        }
        lifetime.saturating_sub(lead)
    }

    /// The delay before retry number `failures` (1 for the first retry) of a token of
    /// `lifetime`, with jitter in [50 %, 100 %] of the exponential step. Equal to
    /// [`retry_delay`](Self::retry_delay) with nothing known of the time left.
    pub fn backoff(&self, failures: u32, lifetime: Option<Duration>) -> Duration {
        self.retry_delay(failures, lifetime, None)
    }

    /// The delay before retry number `failures` of a token of `lifetime` with `remaining` left
    /// before it expires (`Some(ZERO)` once expired; `None` when unknown or for a password that
    /// does not expire): exponential with jitter, capped as the [type docs](Self) say, and
    /// every [`expired_retry`](Self::expired_retry) (with jitter) once expired.
    pub fn retry_delay(
        &self,
        failures: u32,
        lifetime: Option<Duration>,
        remaining: Option<Duration>,
    ) -> Duration {
        let jitter = 0.5 + fastrand::f64() * 0.5;
        if remaining.is_some_and(|r| r.is_zero()) {
            return self
                .expired_retry
                .max(Duration::from_millis(1))
                .mul_f64(jitter);
        }
        let mut cap = match lifetime {
            Some(lifetime) => self.max_backoff.min(lifetime / 4),
            None => self.max_backoff,
        };
        if let Some(remaining) = remaining {
            cap = cap.min(remaining / 4);
        }
        let cap = cap.max(self.initial_backoff);
        let exponent = failures.saturating_sub(1).min(20);
        let step = self.initial_backoff.saturating_mul(1 << exponent).min(cap);
        step.mul_f64(jitter)
    }

    /// Former name of [`retry_delay`](Self::retry_delay).
    #[deprecated(note = "renamed to `retry_delay`, which also covers an expired token")]
    pub fn backoff_before_expiry(
        &self,
        failures: u32,
        lifetime: Option<Duration>,
        remaining: Option<Duration>,
    ) -> Duration {
        self.retry_delay(failures, lifetime, remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);
    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn refreshes_at_the_ratio_with_a_lead_when_it_fits() {
        let policy = RefreshPolicy::default();
        let s = Duration::from_secs;
        assert_eq!(policy.refresh_after(HOUR), 45 * MINUTE);
        assert_eq!(policy.refresh_after(24 * HOUR), 18 * HOUR);
        assert_eq!(policy.refresh_after(90 * MINUTE), s(4050));
        assert_eq!(policy.refresh_after(s(3)), Duration::from_millis(2250));
        assert_eq!(policy.refresh_after(s(300)), s(225));
        // 10 minutes: 25 % would leave 150 s, under the 180 s lead, which fits in half.
        assert_eq!(policy.refresh_after(s(600)), s(420));
        assert_eq!(policy.refresh_after(s(0)), s(0));
    }

    /// Every retry delay for a token of `lifetime` with `remaining` left, over many failures.
    fn delays(lifetime: Duration, remaining: Option<Duration>) -> Vec<Duration> {
        let policy = RefreshPolicy::default();
        (1..60)
            .map(|failures| policy.retry_delay(failures, Some(lifetime), remaining))
            .collect()
    }

    #[test]
    fn before_expiry_retries_grow_to_30_s_and_get_denser_near_expiry() {
        for lifetime in [HOUR, 24 * HOUR] {
            // 15 minutes (1 h) or 6 hours (24 h) left: steps grow to 30 s.
            let left = lifetime / 4;
            let d = delays(lifetime, Some(left));
            assert!(d[0] >= Duration::from_millis(100) && d[0] <= Duration::from_millis(200));
            assert!(d.iter().all(|d| *d <= Duration::from_secs(30)), "{d:?}");
            assert!(
                d[20..].iter().all(|d| *d >= Duration::from_secs(15)),
                "{d:?}"
            );
            // The last minute: at most 15 s; the last second: at most 200 ms.
            let d = delays(lifetime, Some(MINUTE));
            assert!(d.iter().all(|d| *d <= Duration::from_secs(15)), "{d:?}");
            let d = delays(lifetime, Some(Duration::from_secs(1)));
            assert!(d.iter().all(|d| *d <= Duration::from_millis(250)), "{d:?}");
        }
        // Seconds-long test tokens: a quarter of the lifetime.
        let d = delays(Duration::from_secs(2), Some(Duration::from_secs(2)));
        assert!(d.iter().all(|d| *d <= Duration::from_millis(500)), "{d:?}");
    }

    #[test]
    fn after_expiry_retries_come_every_second_whatever_the_lifetime() {
        for lifetime in [Duration::from_secs(2), 5 * MINUTE, HOUR, 24 * HOUR] {
            let d = delays(lifetime, Some(Duration::ZERO));
            assert!(
                d.iter()
                    .all(|d| *d >= Duration::from_millis(500) && *d <= Duration::from_secs(1)),
                "{lifetime:?}: {d:?}"
            );
        }
    }

    #[test]
    fn without_a_lifetime_backoff_is_capped_by_max_backoff() {
        let policy = RefreshPolicy::default();
        let first = policy.backoff(1, None);
        assert!(first >= Duration::from_millis(100) && first <= Duration::from_millis(200));
        assert!(policy.backoff(40, None) <= Duration::from_secs(30));
    }
}
