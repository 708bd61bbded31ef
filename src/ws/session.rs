//! One WebSocket session end to end: checks, backend dial, the client's 101,
//! then the relay as a tracked task that shutdown can see and drain.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use tokio::net::TcpStream;

use crate::config::Route;
use crate::limits::ConnectionPermit;
use crate::ops::request_id::REQUEST_ID;
use crate::ops::sessions::SessionMetrics;
use crate::proxy::body::{boxed, empty, Body};
use crate::proxy::error::ProxyError;
use crate::proxy::headers::{strip_hop_by_hop, ClientInfo};
use crate::server::gateway::{Gateway, RouteTable};
use crate::upstream::BackendStream;
use crate::ws::dial::{self, BackendUpgrade, DialOutcome};
use crate::ws::handshake::{self, accept_key};
use crate::ws::relay::{relay, Leg, RelayConfig, RelayReport, RelayStats};

/// How long the gateway waits for a close reply before dropping the TCP.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Answers an upgrade request: an error response, the backend's refusal, or
/// a 101 with the relay started behind it.
pub async fn upgrade(
    gateway: &Arc<Gateway>,
    table: &RouteTable,
    route: &Arc<Route>,
    mut req: Request<Incoming>,
    client: ClientInfo,
) -> Result<Response<Body>, ProxyError> {
    let on_upgrade = hyper::upgrade::on(&mut req);
    let (parts, _) = req.into_parts();
    let checked = handshake::check(&parts, route, &client)?;
    // Held until the 101 or the error goes out: upgrades in progress are bounded.
    let _handshake = gateway
        .limits
        .begin_handshake()
        .map_err(ProxyError::OverLimit)?;
    let permit = parts.extensions.get::<Arc<ConnectionPermit>>().cloned();
    let balancer = table.balancer(route);
    let outcome = dial::open(
        &gateway.connector,
        route,
        balancer,
        &parts,
        &checked,
        &client,
    )
    .await?;
    let backend = match outcome {
        DialOutcome::Upgraded(backend) => backend,
        DialOutcome::Declined(response) => return Ok(declined(response, route, &client)),
    };
    let response = switching_protocols(&checked.key, &backend);
    let request_id = parts.headers.get(&REQUEST_ID).and_then(|v| v.to_str().ok());
    let context = SessionContext {
        route: route.clone(),
        client,
        request_id: request_id.unwrap_or_default().into(),
        _permit: permit,
    };
    spawn_relay(gateway, context, on_upgrade, backend);
    Ok(response)
}

/// The backend refused the upgrade: its status, headers and body go back.
pub(crate) fn declined(
    response: Response<Incoming>,
    route: &Route,
    client: &ClientInfo,
) -> Response<Body> {
    tracing::info!(route = %route.name, client = %client.peer, status = response.status().as_u16(), reason = "backend_status", "backend declined WebSocket upgrade");
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    Response::from_parts(parts, boxed(body))
}

/// The client's 101: our accept value, the chosen subprotocol, the backend's
/// extension answer and its other end-to-end headers.
fn switching_protocols(client_key: &str, backend: &BackendUpgrade) -> Response<Body> {
    let mut response = Response::new(empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.extend(backend.headers.clone());
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&accept_key(client_key)) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
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
    response
}

/// Starts the relay once hyper hands over the client connection.
///
/// Only what the relay and its log line need moves into the task (it lives
/// as long as the WebSocket); the 101's headers are dropped here, and both
/// streams are taken out of hyper's wrapper.
fn spawn_relay(
    gateway: &Arc<Gateway>,
    context: SessionContext,
    on_upgrade: OnUpgrade,
    backend: BackendUpgrade,
) {
    let relays = gateway.relays.clone();
    let route = &context.route;
    let config = RelayConfig {
        max_message_size: route.ws.max_message_size,
        idle_timeout: route.ws.idle_timeout,
        ping_interval: route.ws.ping_interval,
        pong_timeout: route.ws.pong_timeout,
        close_timeout: CLOSE_TIMEOUT,
        drain_delay: gateway.lifecycle.drain_delay(),
        deflate: backend.deflate,
        validate_utf8: route.ws.validate_utf8,
    };
    let gateway = gateway.clone();
    let BackendUpgrade {
        io: backend_io,
        backend: backend_label,
        ..
    } = backend;
    let backend_io = Leg::<BackendStream>::new(backend_io.into_inner());
    let session = async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(e) => {
                let (route, client) = (&context.route.name, context.client.peer);
                tracing::info!(%route, %client, error = %e, "client left before the upgrade completed");
                return;
            }
        };
        let stats = Arc::new(RelayStats::default());
        let route = &context.route.name;
        let accounted = SessionMetrics::start(&gateway.metrics, route, stats.clone());
        // Built inline: a relay held in a local would be stored twice.
        let supervised = gateway.lifecycle.supervise(relay(
            Leg::<TcpStream>::new(upgraded),
            backend_io,
            config,
            stats.clone(),
            gateway.shutdown.clone(),
        ));
        match supervised.await {
            Some(report) => {
                log_session_end(&context, &backend_label, &stats, &report);
                accounted.finish(&report);
            }
            None => {
                let client = context.client.peer;
                tracing::warn!(%route, %client, "websocket cut: shutdown grace ran out")
            }
        }
    };
    relays.spawn(session);
}

/// What a session's log lines say about it. The request id is kept as a
/// field rather than a tracing span: a span held for the connection's whole
/// life costs about half a kilobyte per idle WebSocket.
struct SessionContext {
    /// The route that accepted the upgrade.
    route: Arc<Route>,
    /// The client.
    client: ClientInfo,
    /// The upgrade request's `X-Request-Id`.
    request_id: Box<str>,
    /// The client connection's limit slot, held as long as the relay.
    _permit: Option<Arc<ConnectionPermit>>,
}

/// The one log line per finished WebSocket session.
fn log_session_end(
    context: &SessionContext,
    backend: &str,
    stats: &RelayStats,
    report: &RelayReport,
) {
    let count = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
    tracing::info!(
        route = %context.route.name,
        client = %context.client.peer,
        request_id = %context.request_id,
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
