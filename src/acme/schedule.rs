//! When to act: renew two thirds into a certificate's lifetime (Let's
//! Encrypt's own advice), or inside the CA's ARI window (RFC 9773) when it
//! offers one; after a failure, wait `retry_backoff`, doubling per further
//! failure up to [`MAX_BACKOFF`], each wait drawn at random from its upper
//! half so that many gateways failing together do not retry together.
//!
//! Pure functions of their inputs (the random draw is a parameter), so the
//! schedule is tested without waiting for it.

use std::time::{Duration, SystemTime};

/// The longest wait between two attempts after failures: an hour keeps a
/// certificate that nears its end tried often enough, and stays far below
/// any CA's rate limits.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// Bounds on how soon to ask the CA's ARI endpoint again (its Retry-After
/// hint is clamped into this range).
pub(crate) const ARI_RECHECK: (Duration, Duration) =
    (Duration::from_secs(3600), Duration::from_secs(24 * 3600));

/// The longest single sleep: the wall clock is consulted again after it,
/// so a suspended host or a clock step cannot make a renewal late.
pub(crate) const MAX_SLEEP: Duration = Duration::from_secs(3600);

/// The renewal time of a certificate without ARI: two thirds into its
/// validity.
pub(crate) fn two_thirds(not_before: SystemTime, not_after: SystemTime) -> SystemTime {
    let lifetime = not_after
        .duration_since(not_before)
        .unwrap_or(Duration::ZERO);
    not_before + lifetime * 2 / 3
}

/// A point in the CA's suggested window, `unit` (in `[0, 1)`) of the way
/// through it, or `now` if that point has passed (RFC 9773 §4.2).
pub(crate) fn in_window(
    start: SystemTime,
    end: SystemTime,
    unit: f64,
    now: SystemTime,
) -> SystemTime {
    let width = end.duration_since(start).unwrap_or(Duration::ZERO);
    (start + width.mul_f64(unit.clamp(0.0, 1.0))).max(now)
}

/// How long to wait after the `failures`-th failure in a row (1 for the
/// first): `base · 2^(failures−1)`, capped at [`MAX_BACKOFF`] (or `base`
/// if that is longer), then drawn from the upper half by `unit` in `[0, 1)`.
pub(crate) fn backoff(base: Duration, failures: u32, unit: f64) -> Duration {
    let cap = MAX_BACKOFF.max(base);
    let doubling = 2u32.saturating_pow(failures.saturating_sub(1).min(31));
    let full = base.saturating_mul(doubling).min(cap);
    full / 2 + (full / 2).mul_f64(unit.clamp(0.0, 1.0))
}

/// How long from `now` until `at` (zero when it has passed).
pub(crate) fn until(at: SystemTime, now: SystemTime) -> Duration {
    at.duration_since(now).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn renewal_is_two_thirds_into_the_lifetime() {
        let start = SystemTime::UNIX_EPOCH + 1000 * DAY;
        assert_eq!(two_thirds(start, start + 90 * DAY), start + 60 * DAY);
        assert_eq!(two_thirds(start, start + 6 * DAY), start + 4 * DAY);
        assert_eq!(
            two_thirds(start, start - DAY),
            start,
            "a nonsense validity is due at once"
        );
    }

    #[test]
    fn the_ari_window_is_honoured() {
        let now = SystemTime::UNIX_EPOCH + 1000 * DAY;
        let (start, end) = (now + 10 * DAY, now + 12 * DAY);
        assert_eq!(in_window(start, end, 0.0, now), start);
        assert_eq!(in_window(start, end, 0.5, now), now + 11 * DAY);
        assert!(in_window(start, end, 0.999, now) < end);
        // A window that has begun (the CA wants the certificate replaced) is now or later.
        let begun = in_window(now - DAY, now + DAY, 0.0, now);
        assert_eq!(begun, now);
        assert_eq!(
            in_window(now - 3 * DAY, now - DAY, 0.5, now),
            now,
            "a past window: now"
        );
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let base = Duration::from_secs(60);
        assert_eq!(backoff(base, 1, 0.0), Duration::from_secs(30));
        assert_eq!(backoff(base, 1, 1.0), Duration::from_secs(60));
        assert_eq!(backoff(base, 2, 0.0), Duration::from_secs(60));
        assert_eq!(backoff(base, 3, 1.0), Duration::from_secs(240));
        for failures in 1..12 {
            let (low, high) = (backoff(base, failures, 0.0), backoff(base, failures, 1.0));
            assert_eq!(high, low * 2, "the draw spans the upper half");
            assert!(
                backoff(base, failures + 1, 0.0) >= low,
                "never shorter than before"
            );
        }
        assert_eq!(backoff(base, 40, 1.0), MAX_BACKOFF, "capped, no overflow");
        assert_eq!(
            backoff(Duration::from_secs(7200), 3, 1.0),
            Duration::from_secs(7200)
        );
        let floor = crate::config::MIN_RETRY_BACKOFF;
        assert!(backoff(floor, 1, 0.0) >= floor / 2, "never a tight loop");
    }
}
