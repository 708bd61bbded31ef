//! A client's WebSocket end to end: admission, the client's answer (a 101
//! to an HTTP/1.1 upgrade, a 200 to an HTTP/2 extended CONNECT), then the
//! relay as a tracked task that the drain can see.
//!
//! Over HTTP/2 the client's side of the relay is hyper's upgraded stream:
//! DATA frames both ways, the stream's flow control as backpressure, and
//! the client's END_STREAM or RST_STREAM read as the client going away.
//! Everything else (frames, limits, pings, closes, the drain) is the same
//! relay as over TCP.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use tokio::net::TcpStream;

use crate::config::Route;
use crate::http::body::{empty, Body};
use crate::http::client::ClientInfo;
use crate::http::error::ProxyError;
use crate::http::h2::StreamHold;
use crate::limits::websockets::WebSocketSlot;
use crate::limits::ConnectionPermit;
use crate::shutdown::Shutdown;
use crate::telemetry::metrics::Metrics;
use crate::telemetry::relays::RelayMeter;
use crate::telemetry::request_id::REQUEST_ID;
use crate::upstream::{Balancer, Lease};
use crate::ws::admit::{Admission, Admitted, Opening};
use crate::ws::close::CLOSE_TIMEOUT;
use crate::ws::dial::BackendUpgrade;
use crate::ws::handshake::accept_key;
use crate::ws::relay::{relay, Leg, RelayConfig, RelayEnd, RelayReport, RelayStats};

/// What starting a relay needs from the gateway.
#[derive(Debug, Clone, Copy)]
pub struct Relays<'a> {
    /// Tracks the relay and tells it when to close.
    pub shutdown: &'a Shutdown,
    /// Where the relay is accounted.
    pub metrics: &'a Arc<Metrics>,
}

/// Answers a WebSocket request (an HTTP/1.1 upgrade, or an HTTP/2
/// extended CONNECT): an error, the backend's refusal, or the client's 101
/// or 200 with the relay started behind it.
pub async fn upgrade(
    admission: Admission<'_>,
    relays: Relays<'_>,
    route: &Arc<Route>,
    balancer: &Balancer,
    mut req: Request<Incoming>,
    client: ClientInfo,
) -> Result<Response<Body>, ProxyError> {
    let on_upgrade = hyper::upgrade::on(&mut req);
    let (parts, _) = req.into_parts();
    let extended = parts.method == Method::CONNECT;
    let opening = match extended {
        true => Opening::ExtendedConnect(&parts),
        false => Opening::Upgrade(&parts),
    };
    let admitted = admission.admit(route, balancer, opening, &client).await?;
    let (checked, backend, slot) = match admitted {
        Admitted::Upgraded {
            checked,
            backend,
            slot,
        } => (checked, backend, slot),
        Admitted::Declined(response) => return Ok(response),
    };
    let response = match extended {
        true => connect_established(&backend),
        false => switching_protocols(&checked.key, &backend),
    };
    let request_id = parts.headers.get(&REQUEST_ID).and_then(|v| v.to_str().ok());
    let context = RelayContext {
        route: route.clone(),
        client,
        request_id: request_id.unwrap_or_default().into(),
        _permit: parts.extensions.get::<Arc<ConnectionPermit>>().cloned(),
        _lease: None,
        _slot: slot,
        _stream: parts.extensions.get::<StreamHold>().cloned(),
    };
    relays.spawn(context, on_upgrade, *backend);
    Ok(response)
}

/// The client's 101: our accept value, the chosen subprotocol, the backend's
/// extension answer and its other end-to-end headers.
fn switching_protocols(client_key: &str, backend: &BackendUpgrade) -> Response<Body> {
    let mut response = Response::new(empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    accepted_headers(headers, backend);
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&accept_key(client_key)) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}

/// The client's 200 to an extended CONNECT (RFC 8441 §5): the same
/// headers as a 101 but `Upgrade`, `Connection` and `Sec-WebSocket-Accept`,
/// which HTTP/2 has no use for. Sent only now, after the backend's 101 was
/// checked, so a 200 always means an open WebSocket.
fn connect_established(backend: &BackendUpgrade) -> Response<Body> {
    let mut response = Response::new(empty());
    accepted_headers(response.headers_mut(), backend);
    response
}

/// The chosen subprotocol, the backend's extension answer and its other
/// end-to-end headers.
fn accepted_headers(headers: &mut HeaderMap, backend: &BackendUpgrade) {
    headers.extend(backend.headers.clone());
    if let Some(protocol) = backend
        .protocol
        .as_deref()
        .and_then(|p| HeaderValue::from_str(p).ok())
    {
        headers.insert(header::SEC_WEBSOCKET_PROTOCOL, protocol);
    }
    if let Some(extensions) = &backend.extensions {
        headers.insert(header::SEC_WEBSOCKET_EXTENSIONS, extensions.clone());
    }
}

impl Relays<'_> {
    /// Starts the relay once hyper hands over the client connection.
    ///
    /// Only what the relay and its log line need moves into the task (it
    /// lives as long as the WebSocket); the 101's headers are dropped here,
    /// and both streams are taken out of hyper's wrapper.
    fn spawn(&self, context: RelayContext, on_upgrade: OnUpgrade, backend: BackendUpgrade) {
        let config = relay_config(&context.route, &backend, self.shutdown);
        let (shutdown, metrics) = (self.shutdown.clone(), self.metrics.clone());
        let BackendUpgrade {
            io: backend_io,
            backend: backend_label,
            lease,
            ..
        } = backend;
        let context = RelayContext {
            _lease: Some(lease),
            ..context
        };
        let task = async move {
            let upgraded = match on_upgrade.await {
                Ok(upgraded) => upgraded,
                Err(e) => {
                    let (route, client) = (&context.route.name, context.client.addr);
                    tracing::info!(%route, %client, error = %e, "client left before the upgrade completed");
                    return;
                }
            };
            let stats = Arc::new(RelayStats::default());
            let route = &context.route.name;
            let meter = RelayMeter::start(&metrics, route, stats.clone());
            // Built inline: a relay held in a local would be stored twice.
            let supervised = shutdown.supervise(relay(
                Leg::<TcpStream>::new(upgraded),
                backend_io,
                config,
                stats.clone(),
                shutdown.closing().clone(),
            ));
            match supervised.await {
                Some(report) => {
                    log_relay_end(&context, &backend_label, &stats, &report);
                    meter.finish(&report.ended(context.client.http.label()));
                    count_rate_limits(&metrics, route, &report);
                }
                None => {
                    let client = context.client.addr;
                    tracing::warn!(%route, %client, "websocket cut: shutdown grace ran out")
                }
            }
        };
        self.shutdown.track_relay(task);
    }
}

/// The relay's limits and timers: the route's, the backend's negotiated
/// extension, and this relay's share of the drain spread.
fn relay_config(route: &Route, backend: &BackendUpgrade, shutdown: &Shutdown) -> RelayConfig {
    RelayConfig {
        max_message_size: route.ws.max_message_size,
        idle_timeout: route.ws.idle_timeout,
        ping_interval: route.ws.ping_interval,
        pong_timeout: route.ws.pong_timeout,
        close_timeout: CLOSE_TIMEOUT,
        drain_delay: shutdown.drain_delay(),
        deflate: backend.deflate,
        validate_utf8: route.ws.validate_utf8,
        client_messages: route.edge.messages_per_second,
        client_bytes_per_second: route.edge.bytes_per_second,
    }
}

/// What a relay's log lines say about it. The request id is kept as a
/// field rather than a tracing span: a span held for the connection's whole
/// life costs about half a kilobyte per idle WebSocket.
struct RelayContext {
    /// The route that accepted the upgrade.
    route: Arc<Route>,
    /// The client.
    client: ClientInfo,
    /// The upgrade request's `X-Request-Id`.
    request_id: Box<str>,
    /// The client connection's limit slot, held as long as the relay.
    _permit: Option<Arc<ConnectionPermit>>,
    /// Counts the relay on its backend (`least_conn`) while it runs; set
    /// when the relay starts.
    _lease: Option<Lease>,
    /// Its place under the route's `websockets_per_client`.
    _slot: Option<Box<WebSocketSlot>>,
    /// Over HTTP/2: the stream's hold, so the connection carrying the relay
    /// never counts as idle.
    _stream: Option<StreamHold>,
}

/// Counts, on `/metrics`, a relay closed for its message rate and the
/// pauses its byte rate imposed.
fn count_rate_limits(metrics: &Metrics, route: &str, report: &RelayReport) {
    if report.end == RelayEnd::RateLimited {
        metrics.rate_limited(route, "client_messages_per_second", "closed");
    }
    if report.client_pauses > 0 {
        let limit = "client_bytes_per_second";
        metrics.rate_limited_by(route, limit, "paused", report.client_pauses);
    }
}

/// The one log line per finished relay.
fn log_relay_end(context: &RelayContext, backend: &str, stats: &RelayStats, report: &RelayReport) {
    let count = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
    tracing::info!(
        route = %context.route.name,
        client = %context.client.addr,
        request_id = %context.request_id,
        http_version = context.client.http.label(),
        backend,
        duration_ms = report.duration.as_millis() as u64,
        msgs_in = count(&stats.client_to_backend_messages),
        bytes_in = count(&stats.client_to_backend_bytes),
        msgs_out = count(&stats.backend_to_client_messages),
        bytes_out = count(&stats.backend_to_client_bytes),
        // Close codes as numbers; a close that never came is left out.
        client_close = report.client_close,
        backend_close = report.backend_close,
        sent_to_client = report.sent_to_client,
        sent_to_backend = report.sent_to_backend,
        end = report.end.to_string(),
        "websocket session ended"
    );
}
