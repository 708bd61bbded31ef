//! `POST /_wsgate/open?path=/chat&protocol=…&transport=sse|longpoll`:
//! opens a session.
//!
//! The target path picks the route exactly as a WebSocket upgrade to that
//! path would, and the same Origin and subprotocol checks apply
//! (`ws::handshake::check_policy`). The backend is dialed with
//! `ws::dial::open`, so it sees the client's cookies, `Authorization` and
//! the forwarding headers; if it refuses, its status and body come back.
//! Once the drain has started, opens are refused (503) before anything is
//! dialed: the session would only be told to reconnect.

use std::sync::Arc;

use http::header::{self, HeaderMap};
use http::{request, Method, Request, Response, Uri, Version};
use hyper::body::Incoming;
use serde_json::json;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

use super::exchange::{json, query_pairs, query_value};
use super::session::{Session, SessionInit};
use super::{bridge, protocol::SessionId, SessionMeter, Transport, PREFIX};
use crate::config::Route;
use crate::proxy::body::Body;
use crate::proxy::error::ProxyError;
use crate::proxy::headers::ClientInfo;
use crate::server::gateway::Gateway;
use crate::server::service::request_host;
use crate::ws::dial::{self, DialOutcome};
use crate::ws::handshake::{check_policy, CheckedUpgrade};
use crate::ws::session::declined;

/// What the open request asks for.
struct OpenRequest {
    target: Uri,
    offered: Vec<String>,
    transport: Transport,
}

/// Opens a session and answers with its id and parameters.
pub async fn open(
    gateway: &Arc<Gateway>,
    req: Request<Incoming>,
    client: ClientInfo,
) -> Result<Response<Body>, ProxyError> {
    if gateway.lifecycle.fallback_drain.is_cancelled() {
        return Err(ProxyError::ShuttingDown);
    }
    let host = request_host(&req);
    let (parts, _) = req.into_parts();
    let ask = parse_open(&parts)?;
    let table = gateway.table();
    let route = table
        .router
        .find(host.as_deref(), ask.target.path())
        .cloned()
        .ok_or(ProxyError::NoRoute)?;
    if !route.fallback {
        return Err(ProxyError::FallbackDisabled);
    }
    let protocols = check_policy(&parts.headers, &ask.offered, &route, &client)?;
    let cap = route.fallback_settings.sessions_per_client;
    let store = gateway.fallback.store.clone();
    if store.count(route.index, client.peer.ip()) >= cap {
        return Err(ProxyError::TooManySessions { limit: cap });
    }
    let backend_req = backend_parts(&parts, ask.target);
    let checked = CheckedUpgrade {
        key: String::new(),
        protocols,
        extensions: None,
    };
    let balancer = table.balancer(&route);
    let outcome = dial::open(
        &gateway.connector,
        &route,
        balancer,
        &backend_req,
        &checked,
        &client,
    );
    let backend = match outcome.await? {
        DialOutcome::Upgraded(backend) => backend,
        DialOutcome::Declined(response) => return Ok(declined(response, &route, &client)),
    };
    let config = ws_config(&route);
    let ws = WebSocketStream::from_raw_socket(backend.io, Role::Client, Some(config)).await;
    let (session, upstream) = Session::new(SessionInit {
        id: SessionId::random(),
        origin: parts.headers.get(header::ORIGIN).cloned(),
        client_ip: client.peer.ip(),
        route_index: route.index,
        settings: route.fallback_settings.clone(),
        max_message: route.ws.max_message_size,
        stats: SessionMeter::new(
            gateway.fallback.stats.clone(),
            Some(gateway.metrics.clone()),
            &route.name,
            ask.transport,
        ),
    });
    store.insert(session.clone(), cap)?;
    session.stats.opened();
    let drain = bridge::Drain {
        started: gateway.lifecycle.fallback_drain.clone(),
        unreachable: gateway.shutdown.clone(),
    };
    bridge::spawn(
        &gateway.lifecycle.fallback,
        drain,
        store,
        session.clone(),
        ws,
        upstream,
    );
    tracing::info!(route = %route.name, client = %client.peer, session = %session.id, transport = ?ask.transport, backend = %backend.backend, "fallback session opened");
    let body = json!({
        "session": session.id.to_string(),
        "protocol": backend.protocol,
        "poll_hold_ms": route.fallback_settings.poll_hold.as_millis() as u64,
        "session_timeout_ms": route.fallback_settings.session_timeout.as_millis() as u64,
        "max_post": session.post_limit(),
    });
    let mut response = json(body.to_string(), parts.headers.get(header::ORIGIN));
    for cookie in backend.headers.get_all(header::SET_COOKIE) {
        response
            .headers_mut()
            .append(header::SET_COOKIE, cookie.clone());
    }
    Ok(response)
}

/// Reads `path`, `protocol` (repeatable or comma-separated) and `transport`.
fn parse_open(parts: &request::Parts) -> Result<OpenRequest, ProxyError> {
    let bad = |why: &str| ProxyError::BadFallbackRequest(why.to_string());
    let pairs = query_pairs(parts.uri.query())?;
    let path = query_value(&pairs, "path").ok_or_else(|| bad("missing path=<target path>"))?;
    let target: Uri = path
        .parse()
        .map_err(|_| bad("path is not a valid request target"))?;
    if !path.starts_with('/') || target.authority().is_some() || path.starts_with(PREFIX) {
        return Err(bad("path must be an absolute path outside /_wsgate/"));
    }
    let transport = match query_value(&pairs, "transport") {
        None | Some("longpoll") => Transport::LongPoll,
        Some("sse") => Transport::Sse,
        Some(_) => return Err(bad("transport must be sse or longpoll")),
    };
    let offered = pairs
        .iter()
        .filter(|(name, _)| name == "protocol")
        .flat_map(|(_, value)| value.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect();
    Ok(OpenRequest {
        target,
        offered,
        transport,
    })
}

/// The request `dial::open` turns into the backend's upgrade request: a GET
/// of the target with the client's end-to-end headers minus the POST body's.
fn backend_parts(parts: &request::Parts, target: Uri) -> request::Parts {
    let (mut backend, ()) = Request::new(()).into_parts();
    backend.method = Method::GET;
    backend.version = Version::HTTP_11;
    backend.uri = target;
    let mut headers: HeaderMap = parts.headers.clone();
    for name in [
        header::CONTENT_LENGTH,
        header::CONTENT_TYPE,
        header::TRANSFER_ENCODING,
    ] {
        headers.remove(name);
    }
    backend.headers = headers;
    backend
}

/// tungstenite limits matching the route's `max_message_size`.
fn ws_config(route: &Route) -> WebSocketConfig {
    let max = usize::try_from(route.ws.max_message_size).unwrap_or(usize::MAX);
    WebSocketConfig {
        max_message_size: Some(max),
        max_frame_size: Some(max),
        ..Default::default()
    }
}
