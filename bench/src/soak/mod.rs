//! The client side of the soak test (`soak`, driven by `scripts/soak.sh`):
//! thousands of WebSocket connections and a few hundred fallback sessions
//! with checked traffic, while the script kills and restarts backends.
//!
//! ```text
//! ws        WebSocket connections: sequenced echoes, churn, vanishing mid-frame
//! fallback  long-poll and SSE sessions: every acknowledged message accounted for
//! gateway   the gateway's file descriptors, RSS and /metrics
//! ```
//!
//! Every figure is a counter in [`Tally`]; every broken expectation is a
//! [`Failures`] entry, and any entry fails the run. What is *expected* to go
//! wrong (a connection whose backend was killed gets close 1011 and loses
//! what it had in flight) is counted, not failed, but only within
//! [`Chaos::window`] of a backend kill the script announced with SIGUSR1.

pub mod fallback;
pub mod gateway;
pub mod ws;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// How many failure descriptions are kept for the summary.
const FAILURES_KEPT: usize = 20;

/// A small, fast, seedable PRNG (SplitMix64); the soak needs jitter, not
/// cryptography.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded from `seed` and the clock.
    pub fn new(seed: u64) -> Rng {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ nanos)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// `true` with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    /// Uniform in `lo..=hi`.
    pub fn duration(&mut self, lo: Duration, hi: Duration) -> Duration {
        let span = hi.saturating_sub(lo).as_millis() as u64;
        lo + Duration::from_millis(self.below(span + 1))
    }
}

/// Declares [`Tally`]: one relaxed atomic counter per figure, listed in
/// declaration order by [`Tally::figures`].
macro_rules! tally {
    ($($(#[doc = $doc:expr])* $name:ident,)*) => {
        /// Every figure of one phase of the soak.
        #[derive(Debug, Default)]
        pub struct Tally {
            $($(#[doc = $doc])* pub $name: AtomicU64,)*
        }

        impl Tally {
            /// `(name, value)` of every counter, in declaration order.
            pub fn figures(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name.load(Relaxed)),)*]
            }
        }
    };
}

tally! {
    /// WebSocket upgrades that got a 101.
    ws_connects,
    /// Upgrades answered 502 within a kill window (the backend died
    /// mid-handshake); retried. Any other refusal or connect error fails.
    ws_refused_502,
    /// Messages sent on WebSocket connections.
    ws_sent,
    /// Messages echoed back, checked: in order, whole, on the right connection.
    ws_echoed,
    /// Connections closed by the gateway with 1011 within a kill window.
    ws_backend_closes,
    /// Connections the gateway ended inside a frame within a kill window:
    /// the killed backend's echo was cut short, no close can follow it.
    ws_cut_by_kill,
    /// Messages in flight on the connections of both (legitimately lost).
    ws_lost_in_flight,
    /// Connections closed cleanly by the client at the end of their lifetime.
    ws_churn_closes,
    /// Connections closed cleanly when the phase ended.
    ws_final_closes,
    /// Clients that wrote half a frame and closed the socket (FIN).
    ws_vanished_fin,
    /// Clients that wrote half a frame and reset the socket (RST).
    ws_vanished_rst,
    /// Messages in flight on vanished connections (the client left).
    ws_abandoned_at_vanish,
    /// Messages in flight on connections that failed a check.
    ws_unechoed_at_failure,
    /// Pings from the gateway answered with a pong.
    ws_pongs,
    /// WebSocket connections open now.
    ws_held,
    /// Fallback sessions opened with long-poll.
    fb_opened_longpoll,
    /// Fallback sessions opened with SSE.
    fb_opened_sse,
    /// Opens answered 502 within a kill window; retried. Any other
    /// refusal or error fails.
    fb_open_refused,
    /// Sessions ended by the client's close, echoed back by the backend.
    fb_closed_clean,
    /// Sessions ended by close event 1011 (backend lost) within a kill window.
    fb_backend_lost,
    /// Sessions the client abandoned (stopped polling, no close).
    fb_abandoned,
    /// Half-written POSTs sent on abandoning (body cut off, socket closed).
    fb_half_posts,
    /// Messages put in a POST /send.
    fb_sent,
    /// Messages the gateway acknowledged (`acked` in the POST answer).
    fb_acked,
    /// Acknowledged messages echoed back, checked: in order, once each.
    fb_acked_echoed,
    /// Acknowledged messages not echoed, on sessions that ended with 1011.
    fb_lost_with_backend,
    /// Acknowledged messages not echoed on abandoned sessions (client left).
    fb_abandoned_acked,
    /// Messages refused with 410 because the backend was already gone.
    fb_refused_closed,
    /// Events delivered again (seq already seen) and dropped by the client.
    fb_redelivered,
    /// Polls that acknowledged less than the client had received.
    fb_stale_acks,
    /// Polls the client dropped mid-request and repeated.
    fb_dropped_polls,
    /// SSE streams the client dropped and reopened from an older id.
    fb_dropped_streams,
    /// POSTs sent a second time; the gateway must apply nothing twice.
    fb_duplicate_posts,
    /// Long-poll requests answered.
    fb_polls,
    /// SSE streams opened (first and reconnects).
    fb_streams,
    /// POSTs retried after a transport error or timeout.
    fb_post_retries,
    /// Closed sessions checked to be forgotten (404 after the close was acked).
    fb_forgotten,
    /// Fallback sessions open now.
    fb_active,
}

impl Tally {
    /// Adds one to a counter.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    /// Subtracts one from a gauge.
    pub fn drop_one(counter: &AtomicU64) {
        counter.fetch_sub(1, Relaxed);
    }
}

/// Broken expectations: counted by kind, the first few kept verbatim.
#[derive(Debug, Default)]
pub struct Failures {
    by_kind: Mutex<BTreeMap<&'static str, u64>>,
    first: Mutex<Vec<String>>,
}

impl Failures {
    /// Records one failure of `kind`, described by `detail`.
    pub fn record(&self, kind: &'static str, detail: String) {
        *lock(&self.by_kind).entry(kind).or_default() += 1;
        let mut first = lock(&self.first);
        if first.len() < FAILURES_KEPT {
            first.push(format!("{kind}: {detail}"));
        }
    }

    /// Total failures.
    pub fn total(&self) -> u64 {
        lock(&self.by_kind).values().sum()
    }

    /// Counts by kind.
    pub fn by_kind(&self) -> Vec<(&'static str, u64)> {
        lock(&self.by_kind).iter().map(|(k, v)| (*k, *v)).collect()
    }

    /// The first failures, verbatim.
    pub fn first(&self) -> Vec<String> {
        lock(&self.first).clone()
    }
}

/// Backend kills announced by the script (SIGUSR1 just before each kill).
#[derive(Debug)]
pub struct Chaos {
    kills: Mutex<Vec<Instant>>,
    /// How long after a kill a 1011 counts as caused by it.
    pub window: Duration,
}

impl Chaos {
    /// No kills yet.
    pub fn new(window: Duration) -> Chaos {
        Chaos {
            kills: Mutex::new(Vec::new()),
            window,
        }
    }

    /// A kill is about to happen.
    pub fn record(&self) {
        lock(&self.kills).push(Instant::now());
    }

    /// Kills announced so far.
    pub fn count(&self) -> usize {
        lock(&self.kills).len()
    }

    /// The latest kill announced, if any.
    pub fn last(&self) -> Option<Instant> {
        lock(&self.kills).last().copied()
    }

    /// Whether a kill was announced within the window before now.
    pub fn recent(&self) -> bool {
        let now = Instant::now();
        lock(&self.kills)
            .iter()
            .rev()
            .any(|&t| now.saturating_duration_since(t) <= self.window)
    }
}

/// Round-trip times in power-of-two buckets of microseconds: bounded
/// memory for millions of samples, percentiles within a factor of two.
#[derive(Debug)]
pub struct Histogram {
    buckets: [AtomicU64; 40],
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl Histogram {
    /// Records one sample.
    pub fn record(&self, d: Duration) {
        let us = d.as_micros().max(1) as u64;
        let bucket = (64 - us.leading_zeros() as usize).min(39);
        self.buckets[bucket].fetch_add(1, Relaxed);
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Relaxed)).sum()
    }

    /// The upper bound of the bucket holding percentile `p` (0–100).
    pub fn percentile(&self, p: f64) -> Duration {
        let total = self.count();
        let rank = ((p / 100.0) * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b.load(Relaxed);
            if seen >= rank {
                return Duration::from_micros(1u64 << i);
            }
        }
        Duration::ZERO
    }
}

/// Records a message lost with a killed backend: `oldest` is when the
/// oldest lost message of a connection or session was sent. Keeps the
/// largest (announcement − send) in milliseconds; negative means every lost
/// message was sent after the kill was announced.
pub fn lost_since(max: &AtomicI64, chaos: &Chaos, oldest: Instant) {
    let Some(kill) = chaos.last() else {
        return;
    };
    let ms = match kill.checked_duration_since(oldest) {
        Some(before) => before.as_millis() as i64,
        None => -(oldest.duration_since(kill).as_millis() as i64),
    };
    max.fetch_max(ms, Relaxed);
}

/// What every client task of a phase shares.
#[derive(Debug)]
pub struct Ctx {
    /// The phase's figures.
    pub tally: Tally,
    /// WebSocket echo round trips.
    pub ws_rtt: Histogram,
    /// Fallback echo round trips (POST sent → event received).
    pub fb_rtt: Histogram,
    /// Oldest message lost with a killed backend, WebSocket: how long
    /// before the kill's announcement it was sent (see [`lost_since`]).
    pub ws_lost_age_ms: AtomicI64,
    /// The same for acknowledged fallback messages.
    pub fb_lost_age_ms: AtomicI64,
    /// The phase's broken expectations.
    pub failures: Failures,
    /// Kills announced by the script (shared by all phases).
    pub chaos: std::sync::Arc<Chaos>,
    /// Vanish tickets: a connection that takes one vanishes mid-frame.
    pub vanish_tokens: AtomicU64,
}

impl Ctx {
    /// A fresh phase.
    pub fn new(chaos: std::sync::Arc<Chaos>) -> Ctx {
        Ctx {
            tally: Tally::default(),
            ws_rtt: Histogram::default(),
            fb_rtt: Histogram::default(),
            ws_lost_age_ms: AtomicI64::new(i64::MIN),
            fb_lost_age_ms: AtomicI64::new(i64::MIN),
            failures: Failures::default(),
            chaos,
            vanish_tokens: AtomicU64::new(0),
        }
    }

    /// Takes a vanish ticket if there is one.
    pub fn take_vanish_token(&self) -> bool {
        self.vanish_tokens
            .fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1))
            .is_ok()
    }
}

/// Locks a mutex, ignoring poisoning (a panicking task is already a failure).
pub fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
