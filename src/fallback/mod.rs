//! The fallback for clients that cannot open a WebSocket: sessions over
//! plain HTTP (long-poll or SSE down, POST up), each bridged to an ordinary
//! WebSocket to the backend. The protocol is in docs/fallback.md.
//!
//! ```text
//! protocol    wire format: ids, events, batches
//! exchange    query strings, bounded bodies, response headers
//! open        POST /_wsgate/open: the WebSocket path's checks, dial, session
//! downstream  GET …/poll and GET …/sse
//! upstream    POST …/send and POST …/close
//! session     one session's buffers and sequence numbers
//! bridge      the task holding the backend WebSocket
//! store       where sessions live (a trait, for a later shared store)
//! stats       counters for metrics
//! ```

pub mod bridge;
pub mod downstream;
pub mod exchange;
pub mod open;
pub mod protocol;
pub mod session;
pub mod stats;
pub mod store;
pub mod upstream;

use std::sync::Arc;

use http::{header, HeaderValue, Method, Request, Response};
use hyper::body::Incoming;

use crate::proxy::body::{full, Body};
use crate::proxy::error::ProxyError;
use crate::proxy::headers::ClientInfo;
use crate::server::gateway::{Gateway, RouteTable};
use protocol::SessionId;
use session::Session;
pub use stats::{FallbackStats, SessionMeter, StatsSnapshot};
use store::{LocalStore, SessionStore};

/// Every fallback URL starts with this; it is reserved by the gateway
/// whenever a route has `fallback = true`.
pub const PREFIX: &str = "/_wsgate/";

/// The JavaScript client, served at `/_wsgate/client.js`.
const CLIENT_JS: &str = include_str!("client.js");

/// How the client receives messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Server-Sent Events (`GET …/sse`).
    Sse,
    /// Long-polling (`GET …/poll`).
    LongPoll,
}

impl Transport {
    /// The transport's name in metric labels and the JS client's `transport`.
    pub fn label(self) -> &'static str {
        match self {
            Transport::Sse => "sse",
            Transport::LongPoll => "longpoll",
        }
    }
}

/// The fallback's process-wide state.
#[derive(Debug)]
pub struct Fallback {
    /// Open sessions.
    pub store: Arc<dyn SessionStore>,
    /// Counters for metrics.
    pub stats: Arc<FallbackStats>,
}

impl Default for Fallback {
    fn default() -> Self {
        Fallback {
            store: Arc::new(LocalStore::default()),
            stats: Arc::new(FallbackStats::default()),
        }
    }
}

/// Session endpoints (`/_wsgate/s/<id>/…`) are always the gateway's: a
/// session belongs to the process, not to the route table, so a reload that
/// turns the fallback off, removes the session's route or changes its
/// backends must not make open sessions unreachable.
const SESSION_PREFIX: &str = "/_wsgate/s/";

/// Whether the gateway answers this path itself: a session endpoint always,
/// any other `/_wsgate/` path while some route offers the fallback
/// (otherwise the path is routed as usual).
pub fn handles(table: &RouteTable, path: &str) -> bool {
    path.starts_with(SESSION_PREFIX)
        || (path.starts_with(PREFIX) && table.router.routes().iter().any(|r| r.fallback))
}

/// Answers one fallback request.
pub async fn handle(
    gateway: &Arc<Gateway>,
    req: Request<Incoming>,
    client: ClientInfo,
) -> Result<Response<Body>, ProxyError> {
    let path = req.uri().path().to_owned();
    let rest = path.strip_prefix(PREFIX).unwrap_or_default();
    let segments: Vec<&str> = rest.split('/').collect();
    match (req.method(), segments.as_slice()) {
        (&Method::GET, ["client.js"]) => Ok(client_js()),
        (&Method::POST, ["open"]) => open::open(gateway, req, client).await,
        (&Method::GET, ["s", id, "poll"]) => {
            downstream::poll(session_for(gateway, id, &req)?, req).await
        }
        (&Method::GET, ["s", id, "sse"]) => downstream::sse(session_for(gateway, id, &req)?, req),
        (&Method::POST, ["s", id, "send"]) => {
            upstream::send(session_for(gateway, id, &req)?, req).await
        }
        (&Method::POST, ["s", id, "close"]) => {
            upstream::close(session_for(gateway, id, &req)?, req).await
        }
        _ => Err(ProxyError::FallbackEndpoint),
    }
}

/// The session a request names, if it exists and the request's Origin is
/// the one that opened it.
fn session_for(
    gateway: &Gateway,
    id: &str,
    req: &Request<Incoming>,
) -> Result<Arc<Session>, ProxyError> {
    let session = SessionId::parse(id)
        .and_then(|id| gateway.fallback.store.get(&id))
        .ok_or(ProxyError::SessionUnknown)?;
    session.check_origin(req.headers())?;
    session.touch();
    Ok(session)
}

/// The JavaScript client; cacheable, it changes only with the gateway.
fn client_js() -> Response<Body> {
    let mut response = Response::new(full(CLIENT_JS));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}
