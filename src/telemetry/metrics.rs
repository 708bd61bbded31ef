//! Every Prometheus metric the gateway exports, in one registry.
//!
//! The request path calls small, named methods (`handshake`, `http_response`,
//! `backend_connect`, ...) so no other module knows metric names or label
//! sets. Relayed WebSockets are accounted live by [`super::relays`]: their
//! message and byte counters are folded in at every scrape, not only when a
//! relay ends, so a long-lived connection is visible while it runs. (The
//! metric names keep their `websocket_session` wording: they are a contract.)
//! Names and labels are documented in `docs/metrics.md`.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use super::labels::{
    BackendLabel, BackendLabels, CloseLabels, DirectionLabels, EndLabels, FallbackLabels,
    HandshakeLabels, LimitLabels, ReloadLabels, RouteLabel, SessionLabels, StatusLabels,
    TransportLabels,
};
use super::relays::LiveRelays;

mod http2;

/// Route label of requests that matched no route.
pub const NO_ROUTE: &str = "<none>";

/// Histogram buckets for relay durations: 0.1 s to ~4.5 h.
fn relay_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.1, 3.0, 12))
}

/// Histogram buckets for backend connect latency: 0.5 ms to ~8 s.
fn connect_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 15))
}

/// The WebSocket relay families, shared with [`super::relays`].
#[derive(Debug)]
pub(crate) struct WsFamilies {
    pub(crate) active: Family<RouteLabel, Gauge>,
    pub(crate) messages: Family<DirectionLabels, Counter>,
    pub(crate) bytes: Family<DirectionLabels, Counter>,
    pub(crate) closes: Family<CloseLabels, Counter>,
    pub(crate) gateway_closes: Family<CloseLabels, Counter>,
    pub(crate) ended: Family<EndLabels, Counter>,
    pub(crate) duration: Family<RouteLabel, Histogram, fn() -> Histogram>,
}

/// The gateway's metrics: one per process, shared by every connection and
/// kept across config reloads.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    handshakes: Family<HandshakeLabels, Counter>,
    pub(crate) ws: WsFamilies,
    live: LiveRelays,
    connect_latency: Family<BackendLabel, Histogram, fn() -> Histogram>,
    connect_errors: Family<BackendLabels, Counter>,
    http: Family<StatusLabels, Counter>,
    tls_failures: Counter<u64, AtomicU64>,
    fallback_sessions: Family<SessionLabels, Counter>,
    fallback_active: Family<TransportLabels, Gauge>,
    fallback_messages: Family<FallbackLabels, Counter>,
    limit_refusals: Family<LimitLabels, Counter>,
    reloads: Family<ReloadLabels, Counter>,
    http2: http2::Http2Families,
}

impl Default for Metrics {
    fn default() -> Self {
        let ws = WsFamilies {
            active: Family::default(),
            messages: Family::default(),
            bytes: Family::default(),
            closes: Family::default(),
            gateway_closes: Family::default(),
            ended: Family::default(),
            duration: Family::new_with_constructor(relay_buckets as fn() -> Histogram),
        };
        let mut metrics = Metrics {
            registry: Registry::with_prefix("wsgate"),
            handshakes: Family::default(),
            ws,
            live: LiveRelays::default(),
            connect_latency: Family::new_with_constructor(connect_buckets as fn() -> Histogram),
            connect_errors: Family::default(),
            http: Family::default(),
            tls_failures: Counter::default(),
            fallback_sessions: Family::default(),
            fallback_active: Family::default(),
            fallback_messages: Family::default(),
            limit_refusals: Family::default(),
            reloads: Family::default(),
            http2: http2::Http2Families::default(),
        };
        metrics.register();
        metrics
    }
}

impl Metrics {
    /// Puts every family in the registry under its documented name.
    fn register(&mut self) {
        self.register_websocket();
        self.register_gateway();
        self.http2.register(&mut self.registry);
    }

    /// The families of WebSocket upgrades and relays.
    fn register_websocket(&mut self) {
        let r = &mut self.registry;
        r.register(
            "websocket_handshakes",
            "WebSocket upgrade requests by outcome and rejection reason",
            self.handshakes.clone(),
        );
        r.register(
            "websocket_connections_active",
            "WebSockets being relayed now",
            self.ws.active.clone(),
        );
        r.register(
            "websocket_messages",
            "Messages relayed, by direction",
            self.ws.messages.clone(),
        );
        r.register(
            "websocket_bytes",
            "Payload bytes relayed, by direction",
            self.ws.bytes.clone(),
        );
        r.register(
            "websocket_close_codes",
            "Close codes sent by clients and backends",
            self.ws.closes.clone(),
        );
        r.register(
            "websocket_gateway_close_codes",
            "Close codes the gateway itself sent, by receiving side",
            self.ws.gateway_closes.clone(),
        );
        r.register(
            "websocket_sessions_ended",
            "Relayed sessions ended, by why",
            self.ws.ended.clone(),
        );
        r.register(
            "websocket_session_duration_seconds",
            "How long relayed sessions lasted",
            self.ws.duration.clone(),
        );
    }

    /// The families of backends, HTTP, TLS, the fallback, limits and reloads.
    fn register_gateway(&mut self) {
        let r = &mut self.registry;
        r.register(
            "backend_connect_duration_seconds",
            "Time to connect to a backend (TLS included), successful connects",
            self.connect_latency.clone(),
        );
        r.register(
            "backend_connect_errors",
            "Failed backend connects, by backend and reason",
            self.connect_errors.clone(),
        );
        r.register(
            "http_requests",
            "Requests answered, by route and status class",
            self.http.clone(),
        );
        r.register(
            "tls_handshake_failures",
            "Client TLS handshakes that failed",
            self.tls_failures.clone(),
        );
        r.register(
            "fallback_sessions",
            "Fallback sessions opened, by transport and the client's HTTP version",
            self.fallback_sessions.clone(),
        );
        r.register(
            "fallback_sessions_active",
            "Fallback sessions open now, by transport",
            self.fallback_active.clone(),
        );
        r.register(
            "fallback_messages",
            "Messages carried by fallback sessions, by transport and direction",
            self.fallback_messages.clone(),
        );
        r.register(
            "limit_refusals",
            "Clients refused or cut by a limit, by limit and answer",
            self.limit_refusals.clone(),
        );
        r.register(
            "config_reloads",
            "Config reload attempts, by result",
            self.reloads.clone(),
        );
    }

    /// The whole exposition in the OpenMetrics text format (which Prometheus
    /// scrapes), with live relays' counters folded in first.
    pub fn encode(&self) -> String {
        self.live.flush_all(&self.ws);
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Records one WebSocket upgrade request: `status` is the answer the
    /// client got (101 = accepted; 200 for a WebSocket over HTTP/2), `refusal`
    /// the reason label if the gateway refused it itself; `http_version` is
    /// the client's (`1.1` or `2`).
    pub fn handshake(
        &self,
        route: &str,
        http_version: &'static str,
        status: u16,
        refusal: Option<&str>,
    ) {
        let accepted = match http_version {
            "2" => 200,
            _ => 101,
        };
        let (outcome, reason) = match (status, refusal) {
            (_, Some(reason)) => ("rejected", reason),
            (s, None) if s == accepted => ("accepted", "ok"),
            _ => ("rejected", "backend_status"),
        };
        let labels = HandshakeLabels {
            route: route.to_owned(),
            outcome: outcome.to_owned(),
            reason: reason.to_owned(),
            http_version,
        };
        self.handshakes.get_or_create(&labels).inc();
    }

    /// Records one answered request (plain HTTP and upgrades alike) by the
    /// class of its status, `1xx` to `5xx`.
    pub fn http_response(&self, route: &str, status: u16) {
        let labels = StatusLabels {
            route: route.to_owned(),
            class: format!("{}xx", status / 100),
        };
        self.http.get_or_create(&labels).inc();
    }

    /// Records one backend connect attempt: its latency when it succeeded,
    /// its reason when it failed.
    pub fn backend_connect(&self, backend: &str, took: Duration, failure: Option<&str>) {
        match failure {
            None => {
                let labels = BackendLabel {
                    backend: backend.to_owned(),
                };
                self.connect_latency
                    .get_or_create(&labels)
                    .observe(took.as_secs_f64());
            }
            Some(reason) => {
                let labels = BackendLabels {
                    backend: backend.to_owned(),
                    reason: reason.to_owned(),
                };
                self.connect_errors.get_or_create(&labels).inc();
            }
        }
    }

    /// Counts a failed client TLS handshake.
    pub fn tls_handshake_failed(&self) {
        self.tls_failures.inc();
    }

    /// Counts a fallback session opened on `route` over `transport`
    /// (`longpoll` or `sse`) by a client speaking `http_version`; call
    /// [`Metrics::fallback_session_closed`] when it ends.
    pub fn fallback_session_opened(
        &self,
        route: &str,
        transport: &str,
        http_version: &'static str,
    ) {
        let opened = SessionLabels {
            route: route.to_owned(),
            transport: transport.to_owned(),
            http_version,
        };
        self.fallback_sessions.get_or_create(&opened).inc();
        let labels = transport_labels(route, transport);
        self.fallback_active.get_or_create(&labels).inc();
    }

    /// A fallback session counted by [`Metrics::fallback_session_opened`] ended.
    pub fn fallback_session_closed(&self, route: &str, transport: &str) {
        let labels = transport_labels(route, transport);
        self.fallback_active.get_or_create(&labels).dec();
    }

    /// Counts `n` messages carried by a fallback session; `direction` is
    /// `client_to_backend` or `backend_to_client`.
    pub fn fallback_messages(&self, route: &str, transport: &str, direction: &str, n: u64) {
        let labels = FallbackLabels {
            route: route.to_owned(),
            transport: transport.to_owned(),
            direction: direction.to_owned(),
        };
        self.fallback_messages.get_or_create(&labels).inc_by(n);
    }

    /// Counts one client refused or cut by a limit: `limit` names the
    /// bound, `answer` whether it got an HTTP answer (`answered`) or a
    /// closed connection (`closed`).
    pub fn limit_refused(&self, limit: &'static str, answer: &'static str) {
        let labels = LimitLabels { limit, answer };
        self.limit_refusals.get_or_create(&labels).inc();
    }

    /// Counts a config reload attempt: `applied` or `rejected`.
    pub fn config_reload(&self, result: &str) {
        let labels = ReloadLabels {
            result: result.to_owned(),
        };
        self.reloads.get_or_create(&labels).inc();
    }

    /// The registry running relays register with.
    pub(crate) fn live(&self) -> &LiveRelays {
        &self.live
    }
}

/// `{route, transport}`.
fn transport_labels(route: &str, transport: &str) -> TransportLabels {
    TransportLabels {
        route: route.to_owned(),
        transport: transport.to_owned(),
    }
}
