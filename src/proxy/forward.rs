//! Forwards a non-upgrade request to a route's backend and streams the
//! response back; bodies stream in both directions without buffering.
//!
//! A route with `auth` asks its auth service first ([`crate::auth`]).
//! Each request dials its own backend connection (as nginx does by default);
//! a backend that refuses is skipped for the next, exactly as for WebSockets.
//! A backend cannot switch protocols on a forwarded request: its 101 is 502.
//! The request counts on its backend (`least_conn`) until its response body
//! has been sent, and its answer carries the sticky cookie when the route
//! balances by cookie.

use http::{HeaderMap, Request, Response, StatusCode, Version};
use hyper::body::Incoming;

use crate::auth::{apply, authorize};
use crate::config::Route;
use crate::http::body::{boxed, Body};
use crate::http::client::ClientInfo;
use crate::http::error::ProxyError;
use crate::http::headers::{add_forwarding, strip_hop_by_hop};
use crate::upstream::{http1_sender, Balancer, Connector};

/// Sends `req` to one of the route's backends and returns its response.
pub async fn forward(
    connector: &Connector,
    route: &Route,
    balancer: &Balancer,
    req: Request<Incoming>,
    client: ClientInfo,
) -> Result<Response<Body>, ProxyError> {
    let (parts, body) = req.into_parts();
    let vouched = match &route.edge.auth {
        Some(auth) => authorize(connector, route, auth, &parts, &client).await?,
        None => HeaderMap::new(),
    };
    let plan = balancer.plan(&parts.headers, &client);
    let (stream, lease) = connector.connect_any(route, &plan).await?;
    let backend = lease.state().label.clone();
    let mut sender = http1_sender(stream, &backend).await?;
    let mut request = backend_request(Request::from_parts(parts, body), &client);
    apply(request.headers_mut(), route.edge.auth.as_ref(), &vouched);
    let response = tokio::time::timeout(route.response_timeout, sender.send_request(request))
        .await
        .map_err(|_| ProxyError::BackendResponseTimeout {
            backend: backend.clone(),
            timeout: route.response_timeout,
        })?
        .map_err(|e| ProxyError::backend_protocol(&backend, &e))?;
    refuse_unasked_switch(&response, &backend)?;
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    if let Some(cookie) = plan.set_cookie(&lease) {
        parts.headers.append(http::header::SET_COOKIE, cookie);
    }
    Ok(Response::from_parts(parts, lease.hold(boxed(body))))
}

/// A plain request never asks for an upgrade (the gateway strips
/// `Upgrade`), so a backend answering 101 is broken or is trying to open a
/// tunnel past the gateway: 502, and nothing of what follows is relayed.
fn refuse_unasked_switch<B>(response: &Response<B>, backend: &str) -> Result<(), ProxyError> {
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        return Ok(());
    }
    Err(ProxyError::BackendProtocol {
        backend: backend.to_string(),
        reason: "101 Switching Protocols to a request that asked for no upgrade".into(),
    })
}

/// The request as the backend sees it: origin-form URI, HTTP/1.1,
/// end-to-end headers plus forwarding headers, the body streamed through.
fn backend_request(req: Request<Incoming>, client: &ClientInfo) -> Request<Incoming> {
    let (mut parts, body) = req.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    if !parts.headers.contains_key(http::header::HOST) {
        if let Some(authority) = parts.uri.authority() {
            if let Ok(host) = authority.as_str().parse() {
                parts.headers.insert(http::header::HOST, host);
            }
        }
    }
    add_forwarding(&mut parts.headers, client);
    let path = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    parts.uri = path.parse().unwrap_or_default();
    parts.version = Version::HTTP_11;
    Request::from_parts(parts, body)
}
