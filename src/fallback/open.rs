//! `POST /_wsgate/open?path=/chat&protocol=…&transport=sse|longpoll`:
//! opens a session.
//!
//! The gateway's dispatch picks the route from the target path exactly as a
//! WebSocket upgrade to that path would. Admission is the WebSocket's own
//! ([`crate::ws::admit`]): the same drain, Origin and subprotocol checks, the
//! same handshake slot and dial, so the backend sees the client's cookies,
//! `Authorization` and the forwarding headers, and a refusal comes back with
//! its status and body. Only the per-client session cap is the fallback's.

use std::sync::Arc;

use http::header::{self, HeaderMap};
use http::{request, Method, Request, Response, Uri, Version};
use serde_json::json;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

use super::exchange::{json, query_pairs, query_value};
use super::session::{Session, SessionInit};
use super::{bridge, protocol::SessionId, Fallback, SessionMeter, Transport, PREFIX};
use crate::config::Route;
use crate::http::body::Body;
use crate::http::client::ClientInfo;
use crate::http::cors;
use crate::http::error::ProxyError;
use crate::shutdown::Shutdown;
use crate::telemetry::metrics::Metrics;
use crate::upstream::{Balancer, Lease};
use crate::ws::admit::{Admission, Admitted, Opening};
use crate::ws::dial::BackendIo;

/// What the open request asks for.
#[derive(Debug)]
pub struct OpenRequest {
    /// The path (and query) the session's WebSocket opens on the backend.
    pub target: Uri,
    /// The subprotocols the client offers.
    offered: Vec<String>,
    /// How the client receives messages.
    transport: Transport,
}

/// What opening a session needs from the gateway.
#[derive(Debug, Clone, Copy)]
pub struct Opener<'a> {
    /// The WebSocket's admission.
    pub admission: Admission<'a>,
    /// Where sessions live.
    pub fallback: &'a Fallback,
    /// Where sessions are counted.
    pub metrics: &'a Arc<Metrics>,
    /// Tracks the session's bridge and tells it of the drain.
    pub shutdown: &'a Shutdown,
}

impl Opener<'_> {
    /// Opens a session on `route` and answers with its id and parameters.
    pub async fn open(
        &self,
        route: &Route,
        balancer: &Balancer,
        parts: request::Parts,
        ask: OpenRequest,
        client: ClientInfo,
    ) -> Result<Response<Body>, ProxyError> {
        if !route.fallback {
            return Err(ProxyError::FallbackDisabled);
        }
        let cap = route.fallback_settings.sessions_per_client;
        if self.fallback.store.count(route.index, client.addr.ip()) >= cap {
            return Err(ProxyError::TooManySessions { limit: cap });
        }
        let backend_req = backend_parts(&parts, ask.target.clone());
        let opening = Opening::Fallback {
            request: &backend_req,
            offered: &ask.offered,
        };
        let admitted = self.admission.admit(route, balancer, opening, &client);
        let backend = match admitted.await? {
            Admitted::Upgraded { backend, .. } => backend,
            Admitted::Declined(response) => return Ok(readable(response, &parts)),
        };
        let session = self
            .start(route, &parts, &ask, &client, (backend.io, backend.lease))
            .await?;
        tracing::info!(route = %route.name, client = %client.addr, session = %session.id, transport = ask.transport.label(), backend = %backend.backend, http_version = client.http.label(), "fallback session opened");
        let spelled = self.fallback.spelling.spell(&session.id);
        Ok(opened(
            &session,
            spelled,
            route,
            &parts,
            backend.protocol,
            &backend.headers,
        ))
    }

    /// Makes the session and starts its bridge on the backend WebSocket.
    async fn start(
        &self,
        route: &Route,
        parts: &request::Parts,
        ask: &OpenRequest,
        client: &ClientInfo,
        (io, lease): (BackendIo, Lease),
    ) -> Result<Arc<Session>, ProxyError> {
        let (session, inbox) = Session::new(SessionInit {
            id: SessionId::random(),
            origin: parts.headers.get(header::ORIGIN).cloned(),
            client_ip: client.addr.ip(),
            route_index: route.index,
            settings: route.fallback_settings.clone(),
            max_message: route.ws.max_message_size,
            stats: SessionMeter::new(
                self.fallback.stats.clone(),
                Some(self.metrics.clone()),
                &route.name,
                ask.transport,
            )
            .with_message_rate(route.edge.messages_per_second),
        });
        let store = self.fallback.store.clone();
        store.insert(session.clone(), route.fallback_settings.sessions_per_client)?;
        session.stats.opened(client.http.label());
        let ws = WebSocketStream::from_raw_socket(io, Role::Client, Some(ws_config(route)));
        let backend = bridge::Backend {
            ws: ws.await,
            lease,
        };
        bridge::spawn(self.shutdown, store, session.clone(), backend, inbox);
        Ok(session)
    }
}

/// The open's answer: the session id and its parameters, and the cookies
/// the backend's 101 set.
fn opened(
    session: &Session,
    spelled: String,
    route: &Route,
    parts: &request::Parts,
    protocol: Option<String>,
    backend_headers: &HeaderMap,
) -> Response<Body> {
    let body = json!({
        "session": spelled,
        "protocol": protocol,
        "poll_hold_ms": route.fallback_settings.poll_hold.as_millis() as u64,
        "session_timeout_ms": route.fallback_settings.session_timeout.as_millis() as u64,
        "max_post": session.post_limit(),
    });
    let mut response = json(body.to_string(), parts.headers.get(header::ORIGIN));
    for cookie in backend_headers.get_all(header::SET_COOKIE) {
        response
            .headers_mut()
            .append(header::SET_COOKIE, cookie.clone());
    }
    response
}

/// A backend's own refusal of the open (say 401), readable by the page:
/// its Origin passed the route's policy, as for a session it would get.
fn readable(mut response: Response<Body>, parts: &request::Parts) -> Response<Body> {
    if let Some(origin) = parts.headers.get(header::ORIGIN) {
        cors::allow_origin(response.headers_mut(), origin);
    }
    response
}

impl OpenRequest {
    /// Reads `path`, `protocol` (repeatable or comma-separated) and
    /// `transport` from the open's query.
    pub fn parse(parts: &request::Parts) -> Result<OpenRequest, ProxyError> {
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
}

/// The request admission turns into the backend's upgrade request: a GET
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
