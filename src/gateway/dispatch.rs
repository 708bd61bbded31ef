//! Per-request dispatch: classifies the request (WebSocket by HTTP/1.1
//! upgrade or HTTP/2 extended CONNECT, plain HTTP, or a refused h2c upgrade
//! or CONNECT tunnel), gives an HTTP/2 request its HTTP/1.1 `Host` and
//! `Cookie`, picks the route, then hands it to the upgrade, the fallback or
//! plain forwarding, and turns errors into responses in one place —
//! counting those that enforce a limit.

use std::convert::Infallible;
use std::sync::Arc;

use http::{header, Method, Request, Response, Version};
use hyper::body::Incoming;
use tracing::Instrument;

use super::Gateway;
use crate::fallback::open::OpenRequest;
use crate::fallback::{self, Endpoint};
use crate::http::body::Body;
use crate::http::client::{request_host, ClientInfo};
use crate::http::error::ProxyError;
use crate::http::h2;
use crate::limits::Answer;
use crate::proxy::forward::forward;
use crate::telemetry::metrics::NO_ROUTE;
use crate::telemetry::request_id;
use crate::ws::handshake::{is_h2c_request, is_websocket_request};
use crate::ws::upgrade::upgrade;

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
    let kind = classify(&mut req);
    let extended_connect = req.extensions().get::<hyper::ext::Protocol>().is_some();
    let websocket = matches!(kind, Ok(Kind::WebSocket)) || extended_connect;
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    // A refusal of the fallback's endpoints is readable by the page (CORS).
    let fallback_path = path.starts_with(fallback::PREFIX)
        && fallback::handles(&path, gateway.table().offers_fallback());
    let readable = if fallback_path {
        req.headers().get(header::ORIGIN).cloned()
    } else {
        None
    };
    let mut route = None;
    let result = match kind {
        Ok(kind) => {
            dispatch(&gateway, req, client, kind, &mut route)
                .instrument(span.clone())
                .await
        }
        Err(refused) => Err(refused),
    };
    let request = RequestLine {
        websocket,
        http_version: client.http.label(),
        method: &method,
        path: &path,
        route: route.as_deref().unwrap_or(NO_ROUTE),
    };
    count(&gateway, &request, &result);
    let mut response = result.unwrap_or_else(|error| {
        span.in_scope(|| log_rejection(&error, &client, &request));
        error.to_readable_response(readable.as_ref())
    });
    response
        .headers_mut()
        .insert(request_id::REQUEST_ID, request_id);
    Ok(response)
}

/// Counts the answer on `/metrics`: every request by status class, upgrades
/// by outcome, and refusals that enforce a limit.
fn count(
    gateway: &Gateway,
    request: &RequestLine<'_>,
    result: &Result<Response<Body>, ProxyError>,
) {
    let status = result.as_ref().map_or_else(|e| e.status(), |r| r.status());
    let error = result.as_ref().err();
    let metrics = &gateway.metrics;
    if request.websocket {
        metrics.handshake(
            request.route,
            request.http_version,
            status.as_u16(),
            error.map(ProxyError::reason),
        );
    }
    metrics.http_response(request.route, status.as_u16());
    if let Some(limit) = error.and_then(ProxyError::limit) {
        metrics.limit_refused(limit.label(), Answer::Answered.label());
    }
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
/// request-smuggling vector, and no backend may be asked to honour it. A
/// CONNECT is a WebSocket when it carries `:protocol` (RFC 8441; admission
/// checks which protocol), otherwise a tunnel the gateway never opens (501).
/// An HTTP/2 request gets the `Host` and `Cookie` of its HTTP/1.1 form.
fn classify(req: &mut Request<Incoming>) -> Result<Kind, ProxyError> {
    if req.version() == Version::HTTP_2 {
        let (uri, headers) = (req.uri().clone(), req.headers_mut());
        h2::normalize(&uri, headers)?;
    }
    if req.method() == Method::CONNECT {
        return match req.extensions().get::<hyper::ext::Protocol>() {
            Some(_) => Ok(Kind::WebSocket),
            None => Err(ProxyError::Tunnel),
        };
    }
    if is_h2c_request(req.headers()) {
        Err(ProxyError::H2cUpgrade)
    } else if is_websocket_request(req.headers()) {
        Ok(Kind::WebSocket)
    } else {
        Ok(Kind::Http)
    }
}

/// Routes the request and runs the matching path; `route_name` is set as
/// soon as a route matched, for the metrics.
async fn dispatch(
    gateway: &Gateway,
    req: Request<Incoming>,
    client: ClientInfo,
    kind: Kind,
    route_name: &mut Option<String>,
) -> Result<Response<Body>, ProxyError> {
    let table = gateway.table();
    if fallback::handles(req.uri().path(), table.offers_fallback()) {
        return Box::pin(dispatch_fallback(gateway, &table, req, client, route_name)).await;
    }
    let host = request_host(&req);
    let route = table
        .router
        .find(host.as_deref(), req.uri().path())
        .cloned()
        .ok_or(ProxyError::NoRoute)?;
    *route_name = Some(route.name.clone());
    let balancer = table.balancer(&route);
    match kind {
        Kind::WebSocket => {
            let (admission, relays) = (gateway.admission(), gateway.relays());
            upgrade(admission, relays, &route, balancer, req, client).await
        }
        Kind::Http => Box::pin(forward(&gateway.connector, &route, balancer, req, client)).await,
    }
}

/// A `/_wsgate/` request: the client script, a session open (routed by its
/// target path, like an upgrade to that path), or a request on a session.
async fn dispatch_fallback(
    gateway: &Gateway,
    table: &super::RouteTable,
    req: Request<Incoming>,
    client: ClientInfo,
    route_name: &mut Option<String>,
) -> Result<Response<Body>, ProxyError> {
    let path = req.uri().path().to_owned();
    match fallback::endpoint(req.method(), &path)? {
        Endpoint::ClientJs => Ok(fallback::client_js()),
        Endpoint::Session(id, action) => {
            *route_name = gateway.fallback.route_of(id);
            super::session::serve(gateway, id, action, req, client).await
        }
        Endpoint::Open => {
            let host = request_host(&req);
            let (parts, _) = req.into_parts();
            let ask = OpenRequest::parse(&parts)?;
            let route = table
                .router
                .find(host.as_deref(), ask.target.path())
                .ok_or(ProxyError::NoRoute)?;
            *route_name = Some(route.name.clone());
            let balancer = table.balancer(route);
            let opener = gateway.opener();
            opener.open(route, balancer, parts, ask, client).await
        }
    }
}

/// What the log line and the metrics say about a request.
struct RequestLine<'a> {
    /// Whether it asked for a WebSocket (upgrade or extended CONNECT).
    websocket: bool,
    /// The client's HTTP version label (`1.1`, `2`).
    http_version: &'static str,
    method: &'a http::Method,
    path: &'a str,
    /// The matched route's name, or `NO_ROUTE`.
    route: &'a str,
}

/// One log line per refused request, with the reason and the side at fault.
fn log_rejection(error: &ProxyError, client: &ClientInfo, request: &RequestLine<'_>) {
    let kind = if request.websocket {
        "websocket handshake"
    } else {
        "http request"
    };
    tracing::warn!(
        client = %client.addr,
        route = request.route,
        method = %request.method,
        path = request.path,
        status = error.status().as_u16(),
        reason = error.reason(),
        side = error.side().label(),
        http_version = request.http_version,
        error = %error,
        "{kind} rejected"
    );
}
