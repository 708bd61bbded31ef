//! A rate with a burst, as a generic cell rate algorithm (GCRA): the
//! token bucket's arithmetic kept as one instant, the "theoretical arrival
//! time". A bucket of capacity `burst` refilled at `rate` units per second
//! admits `n` units at `now` when `max(tat, now) + cost(n)` is no more than
//! `cost(burst)` ahead of `now`.
//!
//! It is the relay's per-message check, so it costs one comparison and
//! one addition, allocates nothing and reads no clock: the caller passes
//! `now` (the relay reads the clock once per socket read).

use std::time::Duration;

use tokio::time::Instant;

/// One client's bucket for one limit.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    /// Units per second, sustained.
    per_second: u64,
    /// How far ahead of now `tat` may run: the cost of a full burst.
    tolerance: Duration,
    /// When the bucket would be full again, were nothing more taken.
    tat: Instant,
}

impl Rate {
    /// A full bucket of `burst` units refilled at `per_second` (both at
    /// least 1).
    pub fn new(per_second: u64, burst: u64, now: Instant) -> Rate {
        let per_second = per_second.max(1);
        Rate {
            per_second,
            tolerance: cost(burst.max(1), per_second),
            tat: now,
        }
    }

    /// The sustained rate, units per second.
    pub fn per_second(&self) -> u64 {
        self.per_second
    }

    /// Takes `n` units if the bucket holds them; takes nothing otherwise.
    pub fn try_take(&mut self, n: u64, now: Instant) -> bool {
        let tat = self.tat.max(now) + cost(n, self.per_second);
        if tat.saturating_duration_since(now) > self.tolerance {
            return false;
        }
        self.tat = tat;
        true
    }

    /// Takes `n` units whether or not the bucket holds them (bytes already
    /// read): the debt is paid by waiting until [`Rate::resume_at`].
    pub fn charge(&mut self, n: u64, now: Instant) {
        self.tat = self.tat.max(now) + cost(n, self.per_second);
    }

    /// When the bucket is out of debt, if it is in debt at `now`.
    pub fn resume_at(&self, now: Instant) -> Option<Instant> {
        let at = self.tat.checked_sub(self.tolerance)?;
        (at > now).then_some(at)
    }

    /// Units the bucket holds at `now` (0 while in debt).
    pub fn available(&self, now: Instant) -> u64 {
        let ahead = self.tat.saturating_duration_since(now);
        let room = self.tolerance.saturating_sub(ahead);
        (room.as_nanos() * u128::from(self.per_second) / 1_000_000_000) as u64
    }
}

/// The time `n` units take at `per_second`.
fn cost(n: u64, per_second: u64) -> Duration {
    let nanos = u128::from(n) * 1_000_000_000 / u128::from(per_second);
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate() {
        let start = Instant::now();
        let mut rate = Rate::new(10, 5, start);
        let taken = (0..20).filter(|_| rate.try_take(1, start)).count();
        assert_eq!(taken, 5, "the burst, all at once");
        assert!(!rate.try_take(1, start + Duration::from_millis(99)));
        assert!(rate.try_take(1, start + Duration::from_millis(100)));
        let later = start + Duration::from_secs(60);
        let taken = (0..20).filter(|_| rate.try_take(1, later)).count();
        assert_eq!(taken, 5, "a quiet spell refills no more than the burst");
    }

    #[test]
    fn a_charge_puts_the_bucket_in_debt_until_paid() {
        let start = Instant::now();
        let mut rate = Rate::new(1000, 1000, start);
        assert_eq!(rate.available(start), 1000);
        rate.charge(3000, start);
        assert_eq!(rate.available(start), 0);
        let resume = rate.resume_at(start).unwrap();
        assert_eq!(resume - start, Duration::from_secs(2));
        assert_eq!(rate.resume_at(resume), None);
        assert_eq!(rate.available(resume + Duration::from_millis(500)), 500);
    }

    #[test]
    fn many_units_at_once_need_room_for_all() {
        let start = Instant::now();
        let mut rate = Rate::new(10, 10, start);
        assert!(!rate.try_take(11, start));
        assert!(rate.try_take(10, start));
        assert!(!rate.try_take(1, start));
    }
}
