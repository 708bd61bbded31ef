//! Counters of the fallback, kept as atomics so the request path never
//! locks for them; the metrics endpoint reads a [`StatsSnapshot`].

use std::sync::atomic::{AtomicU64, Ordering};

use std::sync::{Arc, Mutex};

use tokio::time::Instant;

use super::Transport;
use crate::config::MessageRate;
use crate::http::error::ProxyError;
use crate::limits::rate::Rate;
use crate::telemetry::metrics::Metrics;

/// Fallback counters, shared by every session of a gateway.
#[derive(Debug, Default)]
pub struct FallbackStats {
    /// Sessions opened that asked for SSE downstream.
    sessions_sse: AtomicU64,
    /// Sessions opened that asked for long-poll downstream.
    sessions_longpoll: AtomicU64,
    /// Sessions currently open (opened minus ended).
    sessions_open: AtomicU64,
    /// Sessions ended by `fallback_session_timeout`.
    sessions_expired: AtomicU64,
    /// Messages applied to backends (client → backend), duplicates excluded.
    messages_to_backend: AtomicU64,
    /// Messages read from backends for clients (backend → client).
    messages_to_client: AtomicU64,
}

/// A point-in-time copy of [`FallbackStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatsSnapshot {
    /// Sessions opened for SSE.
    pub sessions_sse: u64,
    /// Sessions opened for long-poll.
    pub sessions_longpoll: u64,
    /// Sessions open now.
    pub sessions_open: u64,
    /// Sessions ended by the session timeout.
    pub sessions_expired: u64,
    /// Messages client → backend.
    pub messages_to_backend: u64,
    /// Messages backend → client.
    pub messages_to_client: u64,
}

impl FallbackStats {
    /// A session was opened for `transport`.
    pub fn opened(&self, transport: Transport) {
        let counter = match transport {
            Transport::Sse => &self.sessions_sse,
            Transport::LongPoll => &self.sessions_longpoll,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.sessions_open.fetch_add(1, Ordering::Relaxed);
    }

    /// A session ended; `expired` when the session timeout ended it.
    pub fn ended(&self, expired: bool) {
        self.sessions_open.fetch_sub(1, Ordering::Relaxed);
        if expired {
            self.sessions_expired.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A message went to a backend.
    pub fn to_backend(&self) {
        self.messages_to_backend.fetch_add(1, Ordering::Relaxed);
    }

    /// A message came from a backend.
    pub fn to_client(&self) {
        self.messages_to_client.fetch_add(1, Ordering::Relaxed);
    }

    /// The current values.
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            sessions_sse: get(&self.sessions_sse),
            sessions_longpoll: get(&self.sessions_longpoll),
            sessions_open: get(&self.sessions_open),
            sessions_expired: get(&self.sessions_expired),
            messages_to_backend: get(&self.messages_to_backend),
            messages_to_client: get(&self.messages_to_client),
        }
    }
}

/// One session's counters: the process-wide [`FallbackStats`] and the
/// Prometheus families labelled by route and transport, updated together
/// so the two can never disagree.
#[derive(Debug, Clone)]
pub struct SessionMeter {
    /// Process-wide atomics.
    stats: Arc<FallbackStats>,
    /// Prometheus families; `None` in unit tests without a gateway.
    metrics: Option<Arc<Metrics>>,
    /// The route's name, a metric label.
    route: Arc<str>,
    /// The transport the session was opened for, a metric label.
    transport: Transport,
    /// The route's `client_messages_per_second`, as this session's bucket.
    rate: Option<Arc<Mutex<Rate>>>,
}

impl SessionMeter {
    /// A meter for a session on `route` opened for `transport`.
    pub fn new(
        stats: Arc<FallbackStats>,
        metrics: Option<Arc<Metrics>>,
        route: &str,
        transport: Transport,
    ) -> Self {
        SessionMeter {
            stats,
            metrics,
            route: route.into(),
            transport,
            rate: None,
        }
    }

    /// The session's route name, for log lines.
    pub fn route(&self) -> &str {
        &self.route
    }

    /// The session's transport, for log lines.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// Holds the client's POSTed messages to `rate` (its burst available
    /// at once).
    pub fn with_message_rate(self, rate: Option<MessageRate>) -> Self {
        let bucket = rate.map(|r| {
            let bucket = Rate::new(u64::from(r.per_second), u64::from(r.burst), Instant::now());
            Arc::new(Mutex::new(bucket))
        });
        SessionMeter {
            rate: bucket,
            ..self
        }
    }

    /// Takes `n` messages from the session's bucket, or refuses the POST
    /// (429, nothing applied, the session stays open) and counts it.
    pub fn admit_messages(&self, n: usize) -> Result<(), ProxyError> {
        let Some(rate) = &self.rate else {
            return Ok(());
        };
        let mut bucket = rate.lock().unwrap_or_else(|e| e.into_inner());
        if bucket.try_take(n as u64, Instant::now()) {
            return Ok(());
        }
        if let Some(m) = &self.metrics {
            m.rate_limited(&self.route, "client_messages_per_second", "refused");
        }
        Err(ProxyError::MessageRate {
            per_second: bucket.per_second() as u32,
        })
    }

    /// The session was opened by a client speaking `http_version`.
    pub fn opened(&self, http_version: &'static str) {
        self.stats.opened(self.transport);
        if let Some(m) = &self.metrics {
            m.fallback_session_opened(&self.route, self.transport.label(), http_version);
        }
    }

    /// The session ended; `expired` when the session timeout ended it.
    pub fn ended(&self, expired: bool) {
        self.stats.ended(expired);
        if let Some(m) = &self.metrics {
            m.fallback_session_closed(&self.route, self.transport.label());
        }
    }

    /// A message went to the backend.
    pub fn to_backend(&self) {
        self.stats.to_backend();
        self.count_message("client_to_backend");
    }

    /// A message came from the backend.
    pub fn to_client(&self) {
        self.stats.to_client();
        self.count_message("backend_to_client");
    }

    fn count_message(&self, direction: &str) {
        if let Some(m) = &self.metrics {
            m.fallback_messages(&self.route, self.transport.label(), direction, 1);
        }
    }
}
