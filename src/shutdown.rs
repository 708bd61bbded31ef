//! The drain, in one handle.
//!
//! Stopping without dropping users takes four stages, each with its own
//! signal here, and `run` calls one method per stage, in order:
//!
//! 1. [`begin`](Shutdown::begin): `/readyz` turns 503, new upgrades and
//!    fallback opens get 503, and fallback sessions tell their clients 1012
//!    ("reconnect") while the listeners still accept, so a long-poll client
//!    between two polls can collect it ([`sessions_told`](Shutdown::sessions_told)
//!    waits, at most [`SHUTDOWN_ACK_WAIT`] or half the grace);
//! 2. [`stop_accepting`](Shutdown::stop_accepting): the listeners close;
//! 3. [`close`](Shutdown::close): HTTP connections shut down gracefully and
//!    every relay closes both legs with 1001 after its share of
//!    `drain_spread`, so clients do not all reconnect in the same instant;
//! 4. [`cut`](Shutdown::cut): when `shutdown_grace` runs out, whatever is
//!    still open is dropped.
//!
//! What each stage waits for is tracked here too: client connections
//! (hyper lets go of a connection at its 101, so relays are tracked
//! separately) and fallback sessions.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use rand::Rng;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};
use tokio_util::task::TaskTracker;

use crate::config::ServerSettings;

/// How long the first stage keeps taking requests so that every fallback
/// client can collect its 1012 (capped at half of `shutdown_grace`). A live
/// long-poll client polls again at once and the bundled client retries a
/// failed poll after 0.1, 0.25, 0.5, 1 and 2 s; an event stream gets the
/// 1012 immediately.
pub const SHUTDOWN_ACK_WAIT: Duration = Duration::from_secs(5);

/// After the grace ran out and relays were cut, how long to wait for their
/// tasks to notice before returning anyway.
const CUT_WAIT: Duration = Duration::from_secs(1);

/// Where the process is in its life; `/readyz` answers 200 only in `Ready`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Listeners are not all bound yet.
    Starting = 0,
    /// Serving.
    Ready = 1,
    /// Shutting down: no new WebSockets, open ones being closed.
    Draining = 2,
}

/// The drain's state, shared by the accept loops, connections, relays,
/// fallback sessions and the admin endpoints; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

/// What every clone shares.
#[derive(Debug)]
struct Inner {
    /// The current [`Phase`], as its `u8`.
    phase: AtomicU8,
    /// `server.drain_spread` and `server.shutdown_grace`; replaced on reload.
    timing: RwLock<Timing>,
    /// Accepted client connections while hyper serves them.
    connections: TaskTracker,
    /// Upgraded WebSockets being relayed.
    relays: TaskTracker,
    /// Fallback sessions' bridges.
    sessions: TaskTracker,
    /// Stage 1: not ready, new WebSockets refused, sessions told 1012.
    draining: CancellationToken,
    /// Stage 2: accept loops stop and close their sockets.
    stop_accepting: CancellationToken,
    /// Stage 3: HTTP connections shut down gracefully, relays close with
    /// 1001; no client can collect a fallback event any more.
    closing: CancellationToken,
    /// Stage 4: the grace ran out; what is still open is cut.
    cut: CancellationToken,
    /// `run` returned: background tasks (certificate watchers, the admin
    /// endpoints, the built-in echo server) stop.
    stopped: CancellationToken,
}

/// The drain's two durations.
#[derive(Debug, Clone, Copy, Default)]
struct Timing {
    spread: Duration,
    grace: Duration,
}

impl Default for Inner {
    fn default() -> Self {
        Inner {
            phase: AtomicU8::new(Phase::Starting as u8),
            timing: RwLock::default(),
            connections: TaskTracker::new(),
            relays: TaskTracker::new(),
            sessions: TaskTracker::new(),
            draining: CancellationToken::new(),
            stop_accepting: CancellationToken::new(),
            closing: CancellationToken::new(),
            cut: CancellationToken::new(),
            stopped: CancellationToken::new(),
        }
    }
}

impl Shutdown {
    /// A handle whose drain follows `settings`.
    pub fn new(settings: &ServerSettings) -> Self {
        let shutdown = Shutdown::default();
        shutdown.configure(settings);
        shutdown
    }

    /// Takes `drain_spread` and `shutdown_grace` from (new) settings.
    pub fn configure(&self, settings: &ServerSettings) {
        *self.inner.timing.write().unwrap_or_else(|e| e.into_inner()) = Timing {
            spread: settings.drain_spread,
            grace: settings.shutdown_grace,
        };
    }

    fn timing(&self) -> Timing {
        *self.inner.timing.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The window relays spread their 1001 closes over.
    pub fn spread(&self) -> Duration {
        self.timing().spread
    }

    /// How long the drain may take before what is open is cut.
    pub fn grace(&self) -> Duration {
        self.timing().grace
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        match self.inner.phase.load(Ordering::Acquire) {
            0 => Phase::Starting,
            1 => Phase::Ready,
            _ => Phase::Draining,
        }
    }

    /// Every listener is bound: `/readyz` answers 200.
    pub fn ready(&self) {
        self.inner
            .phase
            .store(Phase::Ready as u8, Ordering::Release);
    }

    /// Whether the drain has begun: new WebSockets and sessions get 503.
    pub fn is_draining(&self) -> bool {
        self.inner.draining.is_cancelled()
    }

    /// Cancelled when the drain begins (stage 1).
    pub fn draining(&self) -> &CancellationToken {
        &self.inner.draining
    }

    /// Cancelled when the listeners stop accepting (stage 2).
    pub fn accepting_stopped(&self) -> &CancellationToken {
        &self.inner.stop_accepting
    }

    /// Cancelled when open connections are to close (stage 3).
    pub fn closing(&self) -> &CancellationToken {
        &self.inner.closing
    }

    /// Cancelled once `run` returned: background tasks end.
    pub fn stopped(&self) -> &CancellationToken {
        &self.inner.stopped
    }

    /// Serves an accepted client connection as a task the drain waits for.
    pub fn track_connection(&self, connection: impl Future<Output = ()> + Send + 'static) {
        self.inner.connections.spawn(connection);
    }

    /// Runs a fallback session's bridge as a task the drain waits for.
    pub fn track_session(&self, session: impl Future<Output = ()> + Send + 'static) {
        self.inner.sessions.spawn(session);
    }

    /// Runs an upgraded WebSocket's relay as a task the drain waits for.
    pub fn track_relay(&self, relay: impl Future<Output = ()> + Send + 'static) {
        self.inner.relays.spawn(relay);
    }

    /// The relays' tracker, for tools and tests that watch live counts.
    pub fn relays(&self) -> &TaskTracker {
        &self.inner.relays
    }

    /// A relay's share of the drain spread: how long after stage 3 it
    /// closes, uniformly random within `server.drain_spread` (the spread
    /// in force when the relay started).
    pub fn drain_delay(&self) -> Duration {
        random_share(self.timing().spread)
    }

    /// Runs one relay until it ends, or until the grace runs out (`None`:
    /// the relay was cut). The relay itself closes at stage 3, after its
    /// [`drain_delay`](Self::drain_delay).
    ///
    /// A hand-written future rather than an `async fn` with `select!`: the
    /// relay is held once, in place, beside one waiter.
    pub fn supervise<F: Future>(&self, relay: F) -> Supervised<'_, F> {
        Supervised {
            relay,
            cut: self.inner.cut.cancelled(),
        }
    }

    /// Stage 1: not ready; new WebSockets and sessions are refused, and
    /// every fallback session tells its client to reconnect.
    pub fn begin(&self) {
        self.inner
            .phase
            .store(Phase::Draining as u8, Ordering::Release);
        self.inner.sessions.close();
        self.inner.draining.cancel();
    }

    /// Waits until every fallback session has ended (its client collected
    /// its 1012), at most [`SHUTDOWN_ACK_WAIT`] or half the grace. Returns
    /// the sessions still open when the wait ran out.
    pub async fn sessions_told(&self) -> usize {
        let sessions = &self.inner.sessions;
        let bound = SHUTDOWN_ACK_WAIT.min(self.grace() / 2);
        let _ = tokio::time::timeout(bound, sessions.wait()).await;
        sessions.len()
    }

    /// Stage 2: every accept loop stops and closes its socket.
    pub fn stop_accepting(&self) {
        self.inner.stop_accepting.cancel();
    }

    /// Stage 3: HTTP connections finish their requests and close, relays
    /// close with 1001 after their share of the spread.
    pub fn close(&self) {
        self.inner.closing.cancel();
        self.inner.connections.close();
        self.inner.relays.close();
    }

    /// Resolves once every connection, relay and fallback session ended.
    pub async fn ended(&self) {
        self.inner.connections.wait().await;
        self.inner.relays.wait().await;
        self.inner.sessions.wait().await;
    }

    /// What is still open: connections, relays, fallback sessions.
    pub fn open(&self) -> (usize, usize, usize) {
        let inner = &self.inner;
        (
            inner.connections.len(),
            inner.relays.len(),
            inner.sessions.len(),
        )
    }

    /// Stage 4: cuts everything still open, then gives the relays' tasks
    /// [`CUT_WAIT`] to notice.
    pub async fn cut(&self) {
        self.inner.cut.cancel();
        let _ = tokio::time::timeout(CUT_WAIT, self.inner.relays.wait()).await;
    }

    /// `run` is over: background tasks stop.
    pub fn finish(&self) {
        self.inner.stopped.cancel();
    }
}

pin_project! {
    /// A relay run by [`Shutdown::supervise`].
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

    fn with_spread(spread: Duration) -> Shutdown {
        let shutdown = Shutdown::default();
        *shutdown.inner.timing.write().unwrap() = Timing {
            spread,
            grace: Duration::from_secs(30),
        };
        shutdown
    }

    #[test]
    fn drain_delays_fall_within_the_spread_and_differ() {
        let shutdown = with_spread(Duration::from_secs(10));
        let mut delays: Vec<Duration> = (0..20).map(|_| shutdown.drain_delay()).collect();
        assert!(delays.iter().all(|d| *d < Duration::from_secs(10)));
        delays.sort();
        assert!(
            delays[19] - delays[0] > Duration::from_secs(1),
            "{delays:?}"
        );
        assert_eq!(with_spread(Duration::ZERO).drain_delay(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn cut_ends_a_relay_that_does_not_close() {
        let shutdown = Shutdown::default();
        shutdown.cut().await;
        let out = shutdown.supervise(std::future::pending::<()>()).await;
        assert!(out.is_none());
    }

    #[test]
    fn stages_move_the_phase_and_fire_their_signals_in_order() {
        let shutdown = Shutdown::default();
        assert_eq!(shutdown.phase(), Phase::Starting);
        shutdown.ready();
        assert_eq!(shutdown.phase(), Phase::Ready);
        shutdown.begin();
        assert_eq!(shutdown.phase(), Phase::Draining);
        assert!(shutdown.is_draining() && !shutdown.accepting_stopped().is_cancelled());
        shutdown.stop_accepting();
        assert!(!shutdown.closing().is_cancelled());
        shutdown.close();
        assert!(shutdown.closing().is_cancelled() && !shutdown.stopped().is_cancelled());
    }
}
