//! The check loop in paused time: a failing backend leaves rotation within
//! `interval × unhealthy_after`, comes back after `healthy_after` passes, a
//! check that never answers fails at `timeout`, and the stop token ends it.

use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{run, Outcome};
use crate::config::{Backend, HealthCheck, Probe};
use crate::upstream::state::{BackendState, Health};

fn check() -> HealthCheck {
    HealthCheck {
        path: "/healthz".into(),
        interval: Duration::from_secs(5),
        timeout: Duration::from_secs(1),
        unhealthy_after: 3,
        healthy_after: 2,
        probe: Probe::Http { expect: None },
    }
}

fn state() -> Arc<BackendState> {
    let state = BackendState::new("r", Backend::BuiltinEcho, "b".into(), "t".into());
    state.set_checked(true);
    Arc::new(state)
}

/// Runs the loop in the background with a probe answering `status`
/// (0: never answers); returns the times at which the verdict changed.
fn start(
    state: &Arc<BackendState>,
    status: &Arc<AtomicU16>,
    stop: &CancellationToken,
) -> Arc<Mutex<Vec<(Duration, Health)>>> {
    let changes = Arc::new(Mutex::new(Vec::new()));
    let (state, status, stop) = (state.clone(), status.clone(), stop.clone());
    let seen = changes.clone();
    let t0 = Instant::now();
    tokio::spawn(async move {
        let last = Mutex::new(state.health());
        let report = |_: Outcome| {
            let now = state.health();
            if std::mem::replace(&mut *last.lock().unwrap(), now) != now {
                seen.lock().unwrap().push((t0.elapsed(), now));
            }
        };
        let probe = || {
            let status = status.load(Ordering::SeqCst);
            async move {
                match status {
                    0 => std::future::pending().await,
                    s if s < 400 => Outcome::Passed(s),
                    s => Outcome::BadStatus(s),
                }
            }
        };
        run(probe, &state, &check(), report, &stop).await;
    });
    changes
}

#[tokio::test(start_paused = true)]
async fn a_503_leaves_rotation_within_interval_times_unhealthy_after_and_comes_back() {
    let (state, stop) = (state(), CancellationToken::new());
    let status = Arc::new(AtomicU16::new(503));
    let changes = start(&state, &status, &stop);
    let check = check();
    let bound = check.interval * check.unhealthy_after;
    tokio::time::sleep(bound).await;
    assert_eq!(state.health(), Health::Unhealthy);
    assert!(!state.available(Instant::now()));
    // Checks at 0, 5 and 10 s: the third failure decides, at 10 s.
    assert_eq!(
        changes.lock().unwrap()[0],
        (Duration::from_secs(10), Health::Unhealthy)
    );
    status.store(200, Ordering::SeqCst);
    tokio::time::sleep(check.interval * check.healthy_after).await;
    assert_eq!(state.health(), Health::Healthy);
    // Passes at 15 and 20 s.
    assert_eq!(
        changes.lock().unwrap()[1],
        (Duration::from_secs(20), Health::Healthy)
    );
    stop.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_check_that_never_answers_fails_at_its_timeout() {
    let (state, stop) = (state(), CancellationToken::new());
    let status = Arc::new(AtomicU16::new(0));
    start(&state, &status, &stop);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let view = state.view(Instant::now());
    let last = view.last_check.expect("the first check ended");
    assert_eq!(last.outcome, "timeout");
    assert_eq!(last.took, Duration::from_secs(1));
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(state.health(), Health::Unhealthy);
    stop.cancel();
}

#[tokio::test(start_paused = true)]
async fn the_stop_token_ends_the_checks() {
    let (state, stop) = (state(), CancellationToken::new());
    let probes = Arc::new(AtomicUsize::new(0));
    let counted = probes.clone();
    let token = stop.clone();
    let task = tokio::spawn(async move {
        let probe = || {
            counted.fetch_add(1, Ordering::SeqCst);
            async { Outcome::Passed(200) }
        };
        run(probe, &state, &check(), |_| {}, &token).await;
    });
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(probes.load(Ordering::SeqCst), 3, "at 0, 5 and 10 s");
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(1), task)
        .await
        .expect("the loop ends at once")
        .unwrap();
}
