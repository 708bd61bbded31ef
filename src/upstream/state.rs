//! One backend's live state: how many connections it holds, what its health
//! checks and failed dials say, and whether it takes new connections.
//!
//! A state belongs to the [`Registry`](super::Registry), not to a route
//! table, so a backend that survives a reload keeps its count and health.
//! Connections are counted by [`Lease`]s: a lease is taken when a backend
//! is tried and released when it is dropped, so no exit path of a request,
//! relay or fallback session can leak a count.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use http_body_util::BodyExt;
use tokio::time::Instant;

use crate::config::Backend;
use crate::http::body::Body;

/// How long a backend that refused a dial, or did not accept in time, gets
/// no new connections (unless every backend of its route is out).
pub const UNREACHABLE_FOR: Duration = Duration::from_secs(10);

/// What the active health checks say about a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// The route has no `[routes.health]`.
    Unchecked,
    /// Checked, but no verdict yet: in rotation, like a healthy backend.
    Unknown,
    /// Passing.
    Healthy,
    /// Failed `unhealthy_after` checks in a row: no new connections.
    Unhealthy,
}

impl Health {
    /// The name `/backends` shows.
    pub fn name(self) -> &'static str {
        match self {
            Health::Unchecked => "unchecked",
            Health::Unknown => "unknown",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
        }
    }
}

/// Consecutive check results of the same kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Streak {
    /// No check yet (or the checks were reset).
    Empty,
    /// This many passed in a row.
    Passed(u32),
    /// This many failed in a row.
    Failed(u32),
}

/// The thresholds of `[routes.health]`.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    /// Failed checks in a row that make a backend unhealthy.
    pub unhealthy_after: u32,
    /// Passed checks in a row that make an unhealthy backend healthy.
    pub healthy_after: u32,
}

/// The last health check of a backend.
#[derive(Debug, Clone)]
pub struct CheckRecord {
    /// When it ended.
    pub at: Instant,
    /// Its outcome label (`ok`, `bad_status`, `timeout`, ...).
    pub outcome: &'static str,
    /// The status the backend answered, if it answered.
    pub status: Option<u16>,
    /// How long it took.
    pub took: Duration,
}

/// What is known about a backend's health.
#[derive(Debug)]
struct Record {
    /// The checks' verdict.
    health: Health,
    /// The results leading to the next verdict.
    streak: Streak,
    /// The most recent check.
    last_check: Option<CheckRecord>,
    /// A failed dial keeps the backend out until then.
    unreachable_until: Option<Instant>,
}

/// One backend of one route, as the balancer, the checks and the admin
/// endpoint see it.
#[derive(Debug)]
pub struct BackendState {
    /// The route's name (part of the identity).
    pub route: String,
    /// The backend as configured.
    pub backend: Backend,
    /// How logs, metrics and `/backends` name it (the URL as written).
    pub label: String,
    /// The opaque value of the sticky cookie that names this backend.
    pub token: String,
    /// Connections counted now: leases alive.
    active: AtomicUsize,
    /// Health, checks and failed dials.
    record: Mutex<Record>,
}

/// What `/backends` and the metrics show of a backend, at one moment.
#[derive(Debug, Clone)]
pub struct StateView {
    /// Whether it takes new connections.
    pub available: bool,
    /// The checks' verdict.
    pub health: Health,
    /// Connections counted now.
    pub active: usize,
    /// Time left out of rotation after a failed dial.
    pub unreachable_for: Option<Duration>,
    /// The most recent check.
    pub last_check: Option<CheckRecord>,
}

impl BackendState {
    /// A fresh state: no connection, no check yet.
    pub fn new(route: &str, backend: Backend, label: String, token: String) -> Self {
        BackendState {
            route: route.to_string(),
            backend,
            label,
            token,
            active: AtomicUsize::new(0),
            record: Mutex::new(Record {
                health: Health::Unchecked,
                streak: Streak::Empty,
                last_check: None,
                unreachable_until: None,
            }),
        }
    }

    fn record(&self) -> MutexGuard<'_, Record> {
        self.record.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Connections counted now.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// Whether it takes new connections at `now`: not unhealthy and not
    /// out after a failed dial.
    pub fn available(&self, now: Instant) -> bool {
        let record = self.record();
        record.health != Health::Unhealthy && record.unreachable_until.map_or(true, |t| now >= t)
    }

    /// The checks' verdict.
    pub fn health(&self) -> Health {
        self.record().health
    }

    /// Everything at `now`, for `/backends` and the metrics.
    pub fn view(&self, now: Instant) -> StateView {
        let record = self.record();
        let unreachable_for = record
            .unreachable_until
            .filter(|t| *t > now)
            .map(|t| t - now);
        StateView {
            available: record.health != Health::Unhealthy && unreachable_for.is_none(),
            health: record.health,
            active: self.active(),
            unreachable_for,
            last_check: record.last_check.clone(),
        }
    }

    /// Whether checks run (a reload may add or remove `[routes.health]`).
    /// Turning them off forgets their verdict; turning them on starts from
    /// `Unknown`, so a backend stays in rotation until checks say otherwise.
    pub fn set_checked(&self, checked: bool) {
        let mut record = self.record();
        match (checked, record.health) {
            (false, _) => {
                record.health = Health::Unchecked;
                record.streak = Streak::Empty;
            }
            (true, Health::Unchecked) => record.health = Health::Unknown,
            (true, _) => {}
        }
    }

    /// Records a health check; returns the new verdict when it changed.
    pub fn checked(&self, check: CheckRecord, passed: bool, limits: Thresholds) -> Option<Health> {
        let mut record = self.record();
        let (health, streak) = verdict(record.health, record.streak, passed, limits);
        if passed {
            // The backend answers: a failed dial is history.
            record.unreachable_until = None;
        }
        record.streak = streak;
        record.last_check = Some(check);
        let before = std::mem::replace(&mut record.health, health);
        drop(record);
        (before != health).then(|| {
            self.log_verdict(health);
            health
        })
    }

    /// A dial to it was refused or timed out: out of rotation for
    /// [`UNREACHABLE_FOR`].
    pub fn unreachable(&self, now: Instant) {
        let mut record = self.record();
        let was_out = record.unreachable_until.is_some_and(|t| now < t);
        record.unreachable_until = Some(now + UNREACHABLE_FOR);
        drop(record);
        if !was_out {
            tracing::warn!(route = %self.route, backend = %self.label, out_for_ms = UNREACHABLE_FOR.as_millis() as u64, "backend unreachable: no new connections for a while");
        }
    }

    /// The log line of a new verdict.
    fn log_verdict(&self, health: Health) {
        let (route, backend, open) = (&self.route, &self.label, self.active());
        match health {
            Health::Unhealthy => {
                tracing::warn!(%route, %backend, open, "backend unhealthy: no new connections; its open connections are left alone")
            }
            _ => {
                tracing::info!(%route, %backend, health = health.name(), "backend healthy: back in rotation")
            }
        }
    }
}

/// The verdict and streak after one more check.
fn verdict(health: Health, streak: Streak, passed: bool, limits: Thresholds) -> (Health, Streak) {
    let streak = match (passed, streak) {
        (true, Streak::Passed(n)) => Streak::Passed(n.saturating_add(1)),
        (true, _) => Streak::Passed(1),
        (false, Streak::Failed(n)) => Streak::Failed(n.saturating_add(1)),
        (false, _) => Streak::Failed(1),
    };
    let health = match (health, streak) {
        // A backend already in rotation is confirmed by its first pass.
        (Health::Unknown | Health::Unchecked, Streak::Passed(_)) => Health::Healthy,
        (Health::Unhealthy, Streak::Passed(n)) if n >= limits.healthy_after => Health::Healthy,
        (Health::Unhealthy, _) => Health::Unhealthy,
        (_, Streak::Failed(n)) if n >= limits.unhealthy_after => Health::Unhealthy,
        (Health::Unchecked, _) => Health::Unknown,
        (health, _) => health,
    };
    (health, streak)
}

/// One counted connection to a backend: the count goes up when the lease
/// is taken and down when it is dropped, whatever ends the connection.
#[derive(Debug)]
pub struct Lease(Arc<BackendState>);

impl Lease {
    /// Counts a connection to `state` for as long as the lease lives.
    pub fn new(state: Arc<BackendState>) -> Lease {
        state.active.fetch_add(1, Ordering::Relaxed);
        Lease(state)
    }

    /// The backend this lease counts on.
    pub fn state(&self) -> &Arc<BackendState> {
        &self.0
    }

    /// A response body that holds the lease until it is dropped: a plain
    /// request counts until its response has been sent (or abandoned).
    pub fn hold(self, body: Body) -> Body {
        body.map_frame(move |frame| {
            let _held = &self;
            frame
        })
        .boxed()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Thresholds = Thresholds {
        unhealthy_after: 2,
        healthy_after: 3,
    };

    fn state() -> BackendState {
        let state = BackendState::new("r", Backend::BuiltinEcho, "b".into(), "t".into());
        state.set_checked(true);
        state
    }

    fn check(state: &BackendState, passed: bool) -> Option<Health> {
        let record = CheckRecord {
            at: Instant::now(),
            outcome: if passed { "ok" } else { "bad_status" },
            status: None,
            took: Duration::ZERO,
        };
        state.checked(record, passed, LIMITS)
    }

    #[test]
    fn unhealthy_after_the_failures_in_a_row_and_back_after_the_passes() {
        let state = state();
        assert_eq!(state.health(), Health::Unknown);
        assert_eq!(check(&state, false), None, "one failure is not enough");
        assert_eq!(check(&state, true), Some(Health::Healthy));
        assert_eq!(check(&state, false), None);
        assert_eq!(check(&state, false), Some(Health::Unhealthy));
        assert!(!state.available(Instant::now()));
        assert_eq!(check(&state, true), None);
        assert_eq!(check(&state, false), None, "a failure restarts the count");
        assert_eq!(check(&state, true), None);
        assert_eq!(check(&state, true), None);
        assert_eq!(check(&state, true), Some(Health::Healthy));
        assert!(state.available(Instant::now()));
    }

    #[test]
    fn turning_checks_off_forgets_the_verdict() {
        let state = state();
        check(&state, false);
        check(&state, false);
        assert_eq!(state.health(), Health::Unhealthy);
        state.set_checked(false);
        assert_eq!(state.health(), Health::Unchecked);
        assert!(state.available(Instant::now()));
        state.set_checked(true);
        assert_eq!(state.health(), Health::Unknown);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_dial_keeps_a_backend_out_for_a_while_and_a_passed_check_ends_it() {
        let state = state();
        state.unreachable(Instant::now());
        assert!(!state.available(Instant::now()));
        tokio::time::advance(UNREACHABLE_FOR).await;
        assert!(state.available(Instant::now()));
        state.unreachable(Instant::now());
        check(&state, true);
        assert!(state.available(Instant::now()));
    }

    #[test]
    fn leases_count_while_they_live() {
        let state = Arc::new(state());
        let a = Lease::new(state.clone());
        let b = Lease::new(state.clone());
        assert_eq!(state.active(), 2);
        drop(a);
        let body = b.hold(crate::http::body::empty());
        assert_eq!(state.active(), 1, "held by the body");
        drop(body);
        assert_eq!(state.active(), 0);
    }
}
