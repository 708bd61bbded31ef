//! The gateway's lifecycle phase and the staggered WebSocket drain.
//!
//! On shutdown every relayed WebSocket is closed with 1001 on both legs. If
//! they all got it in the same instant, every client would reconnect (to the
//! next instance) in one burst; so each relay has its own shutdown token,
//! cancelled at a random moment within `server.drain_spread` after the drain
//! starts. A relay that is still running when `shutdown_grace` ends is cut
//! (its sockets dropped).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::RwLock;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use rand::Rng;
use tokio::time::Sleep;
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

    /// Runs one relay under the drain: `own` (the token the relay was given)
    /// is cancelled at a random moment within the spread once `drain`
    /// fires. Yields `None` when the relay was cut at the end of the grace.
    ///
    /// A hand-written future rather than an `async fn` with `select!`: the
    /// relay is held once, in place, and the spread timer exists only while
    /// a drain is under way, so an idle WebSocket carries neither a second
    /// copy of its relay nor a timer.
    pub fn supervise<'a, F: Future>(
        &'a self,
        drain: &'a CancellationToken,
        own: CancellationToken,
        relay: F,
    ) -> Supervised<'a, F> {
        Supervised {
            relay,
            drained: drain.cancelled(),
            cut: self.cut.cancelled(),
            lifecycle: self,
            own,
            close_at: None,
        }
    }
}

pin_project! {
    /// A relay run by [`Lifecycle::supervise`].
    pub struct Supervised<'a, F> {
        #[pin]
        relay: F,
        #[pin]
        drained: WaitForCancellationFuture<'a>,
        #[pin]
        cut: WaitForCancellationFuture<'a>,
        lifecycle: &'a Lifecycle,
        // The relay's own shutdown token.
        own: CancellationToken,
        // This relay's moment within the spread, once the drain started.
        close_at: Option<Pin<Box<Sleep>>>,
    }
}

impl<F: Future> Future for Supervised<'_, F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Poll::Ready(output) = this.relay.poll(cx) {
            return Poll::Ready(Some(output));
        }
        if this.cut.poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        if this.own.is_cancelled() {
            return Poll::Pending;
        }
        if this.close_at.is_none() && this.drained.as_mut().poll(cx).is_ready() {
            let moment = random_share(this.lifecycle.spread());
            *this.close_at = Some(Box::pin(tokio::time::sleep(moment)));
        }
        if let Some(close_at) = this.close_at {
            if close_at.as_mut().poll(cx).is_ready() {
                // Wakes the relay (it waits on `own`), which closes with 1001.
                this.own.cancel();
            }
        }
        Poll::Pending
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

    #[tokio::test(start_paused = true)]
    async fn relays_close_within_the_spread() {
        let lifecycle = std::sync::Arc::new(Lifecycle::default());
        *lifecycle.spread.write().unwrap() = Duration::from_secs(10);
        let drain = CancellationToken::new();
        let start = tokio::time::Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (lifecycle, drain) = (lifecycle.clone(), drain.clone());
            tasks.push(tokio::spawn(async move {
                let own = CancellationToken::new();
                let relay = own.clone().cancelled_owned();
                lifecycle.supervise(&drain, own, relay).await;
                tokio::time::Instant::now() - start
            }));
        }
        drain.cancel();
        let mut moments = Vec::new();
        for task in tasks {
            moments.push(task.await.unwrap());
        }
        assert!(moments.iter().all(|m| *m < Duration::from_secs(10)));
        moments.sort();
        assert!(
            moments[19] - moments[0] > Duration::from_secs(1),
            "{moments:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn cut_ends_a_relay_that_does_not_close() {
        let lifecycle = Lifecycle::default();
        let drain = CancellationToken::new();
        lifecycle.cut();
        let own = CancellationToken::new();
        let out = lifecycle
            .supervise(&drain, own, std::future::pending::<()>())
            .await;
        assert!(out.is_none());
    }
}
