//! The per-request hyper service: classifies the request (WebSocket, plain
//! HTTP, or a refused h2c upgrade), picks the route, then hands it to the
//! WebSocket path or to HTTP forwarding, and turns errors into responses in
//! one place — counting those that enforce a limit.

use std::convert::Infallible;
use std::sync::Arc;

use http::{header, Request, Response};
use hyper::body::Incoming;
use tracing::Instrument;

use crate::fallback;
use crate::limits::Answer;
use crate::ops::drain::Phase;
use crate::ops::metrics::NO_ROUTE;
use crate::ops::request_id;
use crate::proxy::body::Body;
use crate::proxy::error::ProxyError;
use crate::proxy::forward::forward;
use crate::proxy::headers::ClientInfo;
use crate::server::gateway::Gateway;
use crate::ws::handshake::{is_h2c_request, is_websocket_request};
use crate::ws::session;

/// Handles one request; never fails at the hyper level. The request gets
/// an `X-Request-Id` (kept or generated) that reaches the backend, the
/// response and, through a span, every log line of the request.
pub async fn handle(
    gateway: Arc<Gateway>,
    mut req: Request<Incoming>,
    client: ClientInfo,
) -> Result<Response<Body>, Infallible> {
    let request_id = request_id::ensure(req.headers_mut());
    let span = tracing::info_span!("request", request_id = %String::from_utf8_lossy(request_id.as_bytes()));
    let kind = classify(req.headers());
    let websocket = matches!(kind, Ok(Kind::WebSocket));
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let mut route = None;
    let result = match kind {
        Ok(kind) => {
            dispatch(&gateway, req, client, kind, &mut route)
                .instrument(span.clone())
                .await
        }
        Err(refused) => Err(refused),
    };
    let route = route.as_deref().unwrap_or(NO_ROUTE);
    let status = result.as_ref().map_or_else(|e| e.status(), |r| r.status());
    if websocket {
        gateway
            .metrics
            .handshake(route, status.as_u16(), result.as_ref().err());
    }
    gateway.metrics.http_response(route, status.as_u16());
    if let Some(limit) = result.as_ref().err().and_then(ProxyError::limit) {
        gateway.metrics.limit_refused(limit, Answer::Answered);
    }
    let mut response = result.unwrap_or_else(|error| {
        let request = RejectedRequest {
            websocket,
            method: &method,
            path: &path,
            route,
        };
        span.in_scope(|| log_rejection(&error, &client, &request));
        error.to_response()
    });
    response
        .headers_mut()
        .insert(request_id::REQUEST_ID, request_id);
    Ok(response)
}

/// What a request asks the gateway for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// An upgrade to WebSocket: checked, never forwarded as plain HTTP.
    WebSocket,
    /// Anything else: forwarded with hop-by-hop headers (`Upgrade`) dropped.
    Http,
}

/// Decides, once and before routing, what the request is. An h2c upgrade
/// is refused (400) here, even next to `Upgrade: websocket`: it is the
/// request-smuggling vector, and no backend may be asked to honour it.
fn classify(headers: &http::HeaderMap) -> Result<Kind, ProxyError> {
    if is_h2c_request(headers) {
        Err(ProxyError::H2cUpgrade)
    } else if is_websocket_request(headers) {
        Ok(Kind::WebSocket)
    } else {
        Ok(Kind::Http)
    }
}

/// Routes the request and runs the matching path; `route_name` is set as
/// soon as a route matched, for the metrics.
async fn dispatch(
    gateway: &Arc<Gateway>,
    req: Request<Incoming>,
    client: ClientInfo,
    kind: Kind,
    route_name: &mut Option<String>,
) -> Result<Response<Body>, ProxyError> {
    let table = gateway.table();
    if fallback::handles(&table, req.uri().path()) {
        return fallback::handle(gateway, req, client).await;
    }
    let host = request_host(&req);
    let route = table
        .router
        .find(host.as_deref(), req.uri().path())
        .cloned()
        .ok_or(ProxyError::NoRoute)?;
    *route_name = Some(route.name.clone());
    if kind == Kind::WebSocket {
        // Draining starts (not ready, fallback clients told 1012) before the
        // relays are closed: an upgrade arriving then would only be cut.
        if gateway.lifecycle.phase() == Phase::Draining || gateway.shutdown.is_cancelled() {
            return Err(ProxyError::ShuttingDown);
        }
        session::upgrade(gateway, &table, &route, req, client).await
    } else {
        let balancer = table.balancer(&route);
        forward(&gateway.connector, &route, balancer, req, client).await
    }
}

/// The request's host: the absolute-form URI's authority wins over the Host
/// header (RFC 9112 §3.2.2).
pub(crate) fn request_host<B>(req: &Request<B>) -> Option<String> {
    if let Some(authority) = req.uri().authority() {
        return Some(authority.as_str().to_owned());
    }
    req.headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
}

/// What the rejection log line says about the request.
struct RejectedRequest<'a> {
    /// Whether it asked for a WebSocket upgrade.
    websocket: bool,
    method: &'a http::Method,
    path: &'a str,
    /// The matched route's name, or `NO_ROUTE`.
    route: &'a str,
}

/// One log line per refused request, with the reason and the side at fault.
fn log_rejection(error: &ProxyError, client: &ClientInfo, request: &RejectedRequest<'_>) {
    let kind = if request.websocket {
        "websocket handshake"
    } else {
        "http request"
    };
    tracing::warn!(
        client = %client.peer,
        route = request.route,
        method = %request.method,
        path = request.path,
        status = error.status().as_u16(),
        reason = error.reason(),
        side = ?error.side(),
        error = %error,
        "{kind} rejected"
    );
}
