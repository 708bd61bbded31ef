//! The gateway's lifecycle phase and the staggered WebSocket drain.
//!
//! On shutdown every relayed WebSocket is closed with 1001 on both legs. If
//! they all got it in the same instant, every client would reconnect (to the
//! next instance) in one burst; so each relay is given a random delay within
//! `server.drain_spread` and, once the shutdown token fires, waits that long
//! on its own timer before closing (nothing per relay exists for the drain
//! until then). A relay that is still running when `shutdown_grace` ends is
//! cut (its sockets dropped).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::RwLock;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use rand::Rng;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};
use tokio_util::task::TaskTracker;

use crate::config::ServerSettings;

/// Where the process is in its life; `/readyz` answers 200 only in `Ready`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Listeners are not all bound yet.
    Starting = 0,
    /// Serving.
    Ready = 1,
    /// Shutting down: no new connections, open ones being closed.
    Draining = 2,
}

/// Lifecycle state shared by the accept loops, relays, fallback sessions and
/// the admin endpoints.
#[derive(Debug)]
pub struct Lifecycle {
    /// The current [`Phase`], as its `u8`.
    phase: AtomicU8,
    /// `server.drain_spread`; replaced on reload.
    spread: RwLock<Duration>,
    /// `server.shutdown_grace`; replaced on reload.
    grace: RwLock<Duration>,
    /// Cancelled when `shutdown_grace` runs out: whatever is still open is cut.
    cut: CancellationToken,
    /// Fallback sessions (long-poll / SSE). The fallback work spawns each
    /// session here and, when [`crate::server::gateway::Gateway::shutdown`]
    /// fires, tells its client to reconnect and ends the session; drain
    /// waits for them like for relays.
    pub fallback: TaskTracker,
    /// Cancelled first in the drain, while the listeners still accept:
    /// fallback sessions tell their clients to reconnect (1012) and new
    /// opens get 503. Separate from `Gateway::shutdown` because a long-poll
    /// client between two polls needs a listener to collect its 1012.
    pub fallback_drain: CancellationToken,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle {
            phase: AtomicU8::new(Phase::Starting as u8),
            spread: RwLock::new(Duration::ZERO),
            grace: RwLock::new(Duration::ZERO),
            cut: CancellationToken::new(),
            fallback: TaskTracker::new(),
            fallback_drain: CancellationToken::new(),
        }
    }
}

impl Lifecycle {
    /// The current phase.
    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            0 => Phase::Starting,
            1 => Phase::Ready,
            _ => Phase::Draining,
        }
    }

    /// Moves to `phase`.
    pub fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Release);
    }

    /// Takes `drain_spread` and `shutdown_grace` from (new) settings.
    pub fn configure(&self, settings: &ServerSettings) {
        *self.spread.write().unwrap_or_else(|e| e.into_inner()) = settings.drain_spread;
        *self.grace.write().unwrap_or_else(|e| e.into_inner()) = settings.shutdown_grace;
    }

    /// The window drain spreads WebSocket closes over.
    pub fn spread(&self) -> Duration {
        *self.spread.read().unwrap_or_else(|e| e.into_inner())
    }

    /// How long the drain may take before what is open is cut.
    pub fn grace(&self) -> Duration {
        *self.grace.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Cuts everything still open (the grace ran out).
    pub fn cut(&self) {
        self.cut.cancel();
    }

    /// A relay's share of the drain spread: how long after shutdown it
    /// closes, uniformly random within `server.drain_spread` (the spread
    /// in force when the relay started).
    pub fn drain_delay(&self) -> Duration {
        random_share(self.spread())
    }

    /// Runs one relay until it ends, or until the grace runs out (`None`:
    /// the relay was cut). The relay itself closes on shutdown, after its
    /// [`drain_delay`](Self::drain_delay).
    ///
    /// A hand-written future rather than an `async fn` with `select!`: the
    /// relay is held once, in place, beside one waiter.
    pub fn supervise<F: Future>(&self, relay: F) -> Supervised<'_, F> {
        Supervised {
            relay,
            cut: self.cut.cancelled(),
        }
    }
}

pin_project! {
    /// A relay run by [`Lifecycle::supervise`].
    pub struct Supervised<'a, F> {
        #[pin]
        relay: F,
        #[pin]
        cut: WaitForCancellationFuture<'a>,
    }
}

impl<F: Future> Future for Supervised<'_, F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(output) = this.relay.poll(cx) {
            return Poll::Ready(Some(output));
        }
        this.cut.poll(cx).map(|()| None)
    }
}

/// A uniformly random point in `[0, window)`.
fn random_share(window: Duration) -> Duration {
    if window.is_zero() {
        return Duration::ZERO;
    }
    window.mul_f64(rand::thread_rng().gen_range(0.0..1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drain_delays_fall_within_the_spread_and_differ() {
        let lifecycle = Lifecycle::default();
        *lifecycle.spread.write().unwrap() = Duration::from_secs(10);
        let mut delays: Vec<Duration> = (0..20).map(|_| lifecycle.drain_delay()).collect();
        assert!(delays.iter().all(|d| *d < Duration::from_secs(10)));
        delays.sort();
        assert!(
            delays[19] - delays[0] > Duration::from_secs(1),
            "{delays:?}"
        );
        *lifecycle.spread.write().unwrap() = Duration::ZERO;
        assert_eq!(lifecycle.drain_delay(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn cut_ends_a_relay_that_does_not_close() {
        let lifecycle = Lifecycle::default();
        lifecycle.cut();
        let out = lifecycle.supervise(std::future::pending::<()>()).await;
        assert!(out.is_none());
    }
}
