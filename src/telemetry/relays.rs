//! Live accounting of relayed WebSockets (relays) for the metrics.
//!
//! A relay counts messages and bytes in its own atomics ([`RelayStats`]).
//! Each running relay is registered here with those counters and what was
//! already added to the Prometheus counters; every scrape (and the relay's
//! end) adds only the difference. So counters move while a relay runs, and
//! the relay's hot path never touches a metric family. This module knows
//! nothing of the relay itself: its end arrives as plain values
//! ([`RelayEnded`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use std::time::Duration;

use super::labels::{CloseLabels, DirectionLabels, EndLabels, RouteLabel};
use super::metrics::{Metrics, WsFamilies};

/// `direction` label values, in [`Snapshot`] order.
const DIRECTIONS: [&str; 2] = ["client_to_backend", "backend_to_client"];

/// Messages and bytes per direction, in [`DIRECTIONS`] order.
type Snapshot = [(u64, u64); 2];

/// Message and byte counters of one relay, readable while it runs.
#[derive(Debug, Default)]
pub struct RelayStats {
    /// Complete messages forwarded from client to backend.
    pub client_to_backend_messages: AtomicU64,
    /// Payload bytes forwarded from client to backend.
    pub client_to_backend_bytes: AtomicU64,
    /// Complete messages forwarded from backend to client.
    pub backend_to_client_messages: AtomicU64,
    /// Payload bytes forwarded from backend to client.
    pub backend_to_client_bytes: AtomicU64,
    /// Of those bytes (either direction), the ones that went socket → pipe
    /// → socket with splice(2), never entering user space.
    pub spliced_bytes: AtomicU64,
}

/// How a relay ended, as the metrics record it.
#[derive(Debug, Clone, Copy)]
pub struct RelayEnded {
    /// The close code the client sent, if any.
    pub client_close: Option<u16>,
    /// The close code the backend sent, if any.
    pub backend_close: Option<u16>,
    /// The close code the gateway itself sent to the client, if any.
    pub sent_to_client: Option<u16>,
    /// The close code the gateway itself sent to the backend, if any.
    pub sent_to_backend: Option<u16>,
    /// Why it ended, as the `end` label (`close_handshake`, `client_gone`, ...).
    pub end: &'static str,
    /// The client's HTTP version, as the `http_version` label (`1.1`, `2`).
    pub http_version: &'static str,
    /// How long it ran.
    pub duration: Duration,
}

/// One running relay.
#[derive(Debug)]
struct Live {
    route: String,
    stats: Arc<RelayStats>,
    /// What has already been added to the Prometheus counters.
    flushed: Snapshot,
    /// The spliced bytes already added.
    flushed_spliced: u64,
}

/// Every running relay, by id.
#[derive(Debug, Default)]
pub(crate) struct LiveRelays {
    next_id: AtomicU64,
    relays: Mutex<HashMap<u64, Live>>,
}

impl LiveRelays {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Live>> {
        self.relays.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds every live relay's new messages and bytes to the counters.
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
    let spliced = load(&s.spliced_bytes);
    if spliced > live.flushed_spliced {
        let labels = route_label(&live.route);
        ws.spliced
            .get_or_create(&labels)
            .inc_by(spliced - live.flushed_spliced);
        live.flushed_spliced = spliced;
    }
}

/// A relay's place in the metrics: counted active from
/// [`RelayMeter::start`] until it is dropped (normally through
/// [`RelayMeter::finish`]).
#[derive(Debug)]
pub struct RelayMeter {
    metrics: Arc<Metrics>,
    id: u64,
    route: String,
}

impl RelayMeter {
    /// Registers a relay on `route` that counts into `stats`.
    pub fn start(metrics: &Arc<Metrics>, route: &str, stats: Arc<RelayStats>) -> Self {
        let live = metrics.live();
        let id = live.next_id.fetch_add(1, Ordering::Relaxed);
        let entry = Live {
            route: route.to_owned(),
            stats,
            flushed: [(0, 0); 2],
            flushed_spliced: 0,
        };
        live.lock().insert(id, entry);
        metrics.ws.active.get_or_create(&route_label(route)).inc();
        RelayMeter {
            metrics: metrics.clone(),
            id,
            route: route.to_owned(),
        }
    }

    /// The relay ended: its close codes, why it ended and how long it ran.
    pub fn finish(self, report: &RelayEnded) {
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
            end: report.end.to_owned(),
            http_version: report.http_version,
        };
        ws.ended.get_or_create(&end).inc();
        ws.duration
            .get_or_create(&route_label(&self.route))
            .observe(report.duration.as_secs_f64());
    }
}

impl Drop for RelayMeter {
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
