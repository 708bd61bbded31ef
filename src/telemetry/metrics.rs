//! Every Prometheus metric the gateway exports, in one registry.
//!
//! The request path calls small, named methods (`handshake`, `http_response`,
//! `backend_connect`, ...) so no other module knows metric names or label
//! sets. Relayed WebSockets are accounted live by [`super::relays`]: their
//! message and byte counters are folded in at every scrape, not only when a
//! relay ends, so a long-lived connection is visible while it runs. (The
//! metric names keep their `websocket_session` wording: they are a contract.)
//! Names and labels are documented in `docs/metrics.md`.

mod register;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use super::backends::{BackendGauges, BackendSample};
use super::certificates::{CertificateGauges, ServedCertificates};
use super::edge::EdgeFamilies;
use super::labels::{
    BackendLabel, BackendLabels, CloseLabels, DirectionLabels, EndLabels, FallbackLabels,
    HandshakeLabels, HealthCheckLabels, LimitLabels, OrderLabels, ReloadLabels, RouteLabel,
    SessionLabels, StatusLabels, TransportLabels,
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
    pub(crate) spliced: Family<RouteLabel, Counter>,
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
    backends: Arc<BackendGauges>,
    health_checks: Family<HealthCheckLabels, Counter>,
    http: Family<StatusLabels, Counter>,
    tls_failures: Counter<u64, AtomicU64>,
    tls_plain_http: Counter<u64, AtomicU64>,
    fallback_sessions: Family<SessionLabels, Counter>,
    fallback_active: Family<TransportLabels, Gauge>,
    fallback_messages: Family<FallbackLabels, Counter>,
    limit_refusals: Family<LimitLabels, Counter>,
    reloads: Family<ReloadLabels, Counter>,
    pub(crate) cluster: super::cluster::ClusterFamilies,
    certificates: CertificateGauges,
    acme_orders: Family<OrderLabels, Counter>,
    edge: EdgeFamilies,
    http2: http2::Http2Families,
}

impl Default for Metrics {
    fn default() -> Self {
        let ws = WsFamilies {
            active: Family::default(),
            messages: Family::default(),
            bytes: Family::default(),
            spliced: Family::default(),
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
            backends: Arc::default(),
            health_checks: Family::default(),
            http: Family::default(),
            tls_failures: Counter::default(),
            tls_plain_http: Counter::default(),
            fallback_sessions: Family::default(),
            fallback_active: Family::default(),
            fallback_messages: Family::default(),
            limit_refusals: Family::default(),
            reloads: Family::default(),
            cluster: Default::default(),
            certificates: CertificateGauges::default(),
            acme_orders: Family::default(),
            edge: EdgeFamilies::default(),
            http2: http2::Http2Families::default(),
        };
        metrics.register();
        metrics
    }
}

impl Metrics {
    /// The whole exposition in the OpenMetrics text format (which Prometheus
    /// scrapes), with live relays' counters folded in first.
    pub fn encode(&self) -> String {
        self.live.flush_all(&self.ws);
        self.certificates.refresh();
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

    /// Exports `wsgate_backend_up` and `wsgate_backend_connections_active`
    /// from the samples `source` gives at each scrape.
    pub fn watch_backends(&self, source: impl Fn() -> Vec<BackendSample> + Send + Sync + 'static) {
        self.backends.watch(Box::new(source));
    }

    /// Counts one health check of `backend` on `route`: `outcome` is `ok`,
    /// `bad_status`, `timeout`, `refused`, `tls` or `protocol`.
    pub fn health_check(&self, route: &str, backend: &str, outcome: &str) {
        let labels = HealthCheckLabels {
            route: route.to_owned(),
            backend: backend.to_owned(),
            outcome: outcome.to_owned(),
        };
        self.health_checks.get_or_create(&labels).inc();
    }

    /// Counts a failed client TLS handshake.
    pub fn tls_handshake_failed(&self) {
        self.tls_failures.inc();
    }

    /// Counts a plain HTTP request answered 400 on a TLS listener.
    pub fn plain_http_on_tls(&self) {
        self.tls_plain_http.inc();
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

    /// Reports the certificates `source` holds at every scrape, while it lives.
    pub fn watch_certificates(&self, source: std::sync::Weak<dyn ServedCertificates>) {
        self.certificates.watch(source);
    }

    /// Counts an ACME order: `issued` or `failed`.
    pub fn acme_order(&self, result: &'static str) {
        self.acme_orders
            .get_or_create(&OrderLabels { result })
            .inc();
    }

    /// The edge families ([`super::edge`]).
    pub(crate) fn edge(&self) -> &EdgeFamilies {
        &self.edge
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
