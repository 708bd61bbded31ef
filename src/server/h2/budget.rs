//! Token budgets for the control frames a client may send: a burst, then a
//! steady rate. h2 answers SETTINGS and PING one at a time and bounds
//! resets of streams it has not handed over yet, so floods of them never
//! cost memory; they cost CPU per frame, which these budgets bound.

use std::time::Duration;

use tokio::time::Instant;

/// Client SETTINGS frames (not acknowledgements) allowed in a burst, and
/// per second after it. A client sends one at the start and rarely another.
pub(super) const SETTINGS_BUDGET: Budget = Budget::new(16, 1);

/// Client PINGs (not answers) allowed in a burst, and per second after it.
/// Browsers ping an idle connection now and then; tools that estimate
/// bandwidth ping once per round trip at most.
pub(super) const PING_BUDGET: Budget = Budget::new(100, 10);

/// Streams the client may reset in a burst, and per second after it: a
/// page navigation cancels a few dozen requests; the rapid-reset attack
/// (CVE-2023-44487) resets thousands a second. h2 itself counts resets of
/// streams not yet accepted (`max_pending_accept_reset_streams`); this
/// bounds resets of accepted ones, which each cost a request's start.
pub(super) const RESET_BUDGET: Budget = Budget::new(256, 64);

/// A token bucket: `burst` frames at once, `per_sec` a second after that.
#[derive(Debug, Clone, Copy)]
pub(super) struct Budget {
    pub(super) burst: u32,
    pub(super) per_sec: u32,
}

impl Budget {
    pub(super) const fn new(burst: u32, per_sec: u32) -> Budget {
        Budget { burst, per_sec }
    }
}

/// A [`Budget`]'s live state.
#[derive(Debug, Clone, Copy)]
pub(super) struct Bucket {
    budget: Budget,
    tokens: u32,
    /// When `tokens` was last topped up.
    since: Instant,
}

impl Bucket {
    pub(super) fn full(budget: Budget, now: Instant) -> Bucket {
        Bucket {
            budget,
            tokens: budget.burst,
            since: now,
        }
    }

    /// Takes one token; false when the budget is spent.
    pub(super) fn take(&mut self, now: Instant) -> bool {
        let per_token = Duration::from_secs(1) / self.budget.per_sec;
        let earned = (now - self.since).as_nanos() / per_token.as_nanos();
        if earned > 0 {
            let earned = u32::try_from(earned).unwrap_or(u32::MAX);
            self.tokens = self.tokens.saturating_add(earned).min(self.budget.burst);
            self.since = if self.tokens == self.budget.burst {
                now
            } else {
                self.since + per_token * earned
            };
        }
        match self.tokens.checked_sub(1) {
            Some(left) => {
                self.tokens = left;
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let start = Instant::now();
        let mut bucket = Bucket::full(Budget::new(3, 10), start);
        assert!((0..3).all(|_| bucket.take(start)));
        assert!(!bucket.take(start));
        assert!(!bucket.take(start + Duration::from_millis(99)));
        assert!(bucket.take(start + Duration::from_millis(100)));
        assert!(!bucket.take(start + Duration::from_millis(150)));
        let later = start + Duration::from_secs(60);
        assert!(
            (0..3).all(|_| bucket.take(later)),
            "refills up to the burst"
        );
        assert!(!bucket.take(later));
    }
}
