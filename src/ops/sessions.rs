//! Live accounting of relayed WebSockets for the metrics.
//!
//! The relay counts messages and bytes in its own atomics ([`RelayStats`]).
//! Each running session is registered here with those counters and what was
//! already added to the Prometheus counters; every scrape (and the session's
//! end) adds only the difference. So counters move while a session runs,
//! and the relay's hot path never touches a metric family.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::metrics::{CloseLabels, DirectionLabels, EndLabels, Metrics, RouteLabel, WsFamilies};
use crate::ws::relay::{RelayEnd, RelayReport, RelayStats};

/// `direction` label values, in [`Snapshot`] order.
const DIRECTIONS: [&str; 2] = ["client_to_backend", "backend_to_client"];

/// Messages and bytes per direction, in [`DIRECTIONS`] order.
type Snapshot = [(u64, u64); 2];

/// One running session.
#[derive(Debug)]
struct Live {
    route: String,
    stats: Arc<RelayStats>,
    /// What has already been added to the Prometheus counters.
    flushed: Snapshot,
}

/// Every running session, by id.
#[derive(Debug, Default)]
pub(crate) struct LiveSessions {
    next_id: AtomicU64,
    sessions: Mutex<HashMap<u64, Live>>,
}

impl LiveSessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Live>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds every live session's new messages and bytes to the counters.
    pub(crate) fn flush_all(&self, ws: &WsFamilies) {
        for live in self.lock().values_mut() {
            flush(live, ws);
        }
    }
}

/// Adds what `live` relayed since its last flush.
fn flush(live: &mut Live, ws: &WsFamilies) {
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let s = &live.stats;
    let now: Snapshot = [
        (
            load(&s.client_to_backend_messages),
            load(&s.client_to_backend_bytes),
        ),
        (
            load(&s.backend_to_client_messages),
            load(&s.backend_to_client_bytes),
        ),
    ];
    for (i, direction) in DIRECTIONS.iter().enumerate() {
        let labels = DirectionLabels {
            route: live.route.clone(),
            direction: (*direction).to_owned(),
        };
        let (messages, bytes) = (now[i].0 - live.flushed[i].0, now[i].1 - live.flushed[i].1);
        if messages > 0 {
            ws.messages.get_or_create(&labels).inc_by(messages);
        }
        if bytes > 0 {
            ws.bytes.get_or_create(&labels).inc_by(bytes);
        }
    }
    live.flushed = now;
}

/// A relayed session's place in the metrics: counted active from
/// [`SessionMetrics::start`] until it is dropped (normally through
/// [`SessionMetrics::finish`]).
#[derive(Debug)]
pub struct SessionMetrics {
    metrics: Arc<Metrics>,
    id: u64,
    route: String,
}

impl SessionMetrics {
    /// Registers a session on `route` whose relay counts into `stats`.
    pub fn start(metrics: &Arc<Metrics>, route: &str, stats: Arc<RelayStats>) -> Self {
        let live = metrics.live();
        let id = live.next_id.fetch_add(1, Ordering::Relaxed);
        let entry = Live {
            route: route.to_owned(),
            stats,
            flushed: [(0, 0); 2],
        };
        live.lock().insert(id, entry);
        metrics.ws.active.get_or_create(&route_label(route)).inc();
        SessionMetrics {
            metrics: metrics.clone(),
            id,
            route: route.to_owned(),
        }
    }

    /// The session ended: its close codes, why it ended and how long it ran.
    pub fn finish(self, report: &RelayReport) {
        let ws = &self.metrics.ws;
        let closes = [
            (&ws.closes, "client", report.client_close),
            (&ws.closes, "backend", report.backend_close),
            (&ws.gateway_closes, "client", report.sent_to_client),
            (&ws.gateway_closes, "backend", report.sent_to_backend),
        ];
        for (family, side, code) in closes {
            let Some(code) = code else { continue };
            let labels = CloseLabels {
                route: self.route.clone(),
                side: side.to_owned(),
                code: code.to_string(),
            };
            family.get_or_create(&labels).inc();
        }
        let end = EndLabels {
            route: self.route.clone(),
            end: end_label(&report.end).to_owned(),
        };
        ws.ended.get_or_create(&end).inc();
        ws.duration
            .get_or_create(&route_label(&self.route))
            .observe(report.duration.as_secs_f64());
    }
}

impl Drop for SessionMetrics {
    fn drop(&mut self) {
        let removed = self.metrics.live().lock().remove(&self.id);
        if let Some(mut live) = removed {
            flush(&mut live, &self.metrics.ws);
        }
        let active = self
            .metrics
            .ws
            .active
            .get_or_create(&route_label(&self.route));
        active.dec();
    }
}

fn route_label(route: &str) -> RouteLabel {
    RouteLabel {
        route: route.to_owned(),
    }
}

/// The `end` label value of why a session ended.
pub fn end_label(end: &RelayEnd) -> &'static str {
    match end {
        RelayEnd::CloseHandshake { .. } => "close_handshake",
        RelayEnd::ClientGone => "client_gone",
        RelayEnd::BackendGone => "backend_gone",
        RelayEnd::ProtocolError { .. } => "protocol_error",
        RelayEnd::MessageTooBig { .. } => "message_too_big",
        RelayEnd::InvalidUtf8 { .. } => "invalid_utf8",
        RelayEnd::IdleTimeout => "idle_timeout",
        RelayEnd::PongTimeout => "pong_timeout",
        RelayEnd::Shutdown => "shutdown",
        RelayEnd::CloseTimeout { .. } => "close_timeout",
    }
}
