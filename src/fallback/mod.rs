//! The fallback for clients that cannot open a WebSocket: sessions over
//! plain HTTP (long-poll or SSE down, POST up), each bridged to an ordinary
//! WebSocket to the backend. The protocol is in docs/fallback.md.
//!
//! ```text
//! protocol    wire format: ids, events, batches
//! exchange    query strings, bounded bodies, response headers
//! open        POST /_wsgate/open: the WebSocket's admission, then a session
//! poll        GET …/poll and GET …/sse: events to the client
//! post        POST …/send and POST …/close: messages from the client
//! session     one session's buffers and sequence numbers
//! bridge      the task holding the backend WebSocket
//! store       where sessions live (a trait, for a later shared store)
//! lost        answers for a session whose owning instance is gone
//! stats       counters for metrics
//! ```
//!
//! The gateway's dispatch decides which [`Endpoint`] a request is and, for
//! an open, which route its target path picks, exactly as for an upgrade.
//! It also decides whether a session is this instance's to serve: the
//! fallback itself knows nothing of other instances, only how a new
//! session's id is spelled ([`IdSpelling`]).

pub mod bridge;
pub mod exchange;
pub mod lost;
pub mod open;
pub mod poll;
pub mod post;
pub mod protocol;
pub mod session;
pub mod stats;
pub mod store;

use std::fmt::Debug;
use std::sync::Arc;

use http::{header, HeaderValue, Method, Request, Response};

use crate::http::body::{full, Body};
use crate::http::error::ProxyError;
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

/// How a new session's id is written for the client. On its own an
/// instance writes the 128 bits as hex ([`PlainIds`]); in a cluster the id
/// also names its owner and carries a MAC, so another instance can forward
/// the session's requests.
pub trait IdSpelling: Send + Sync + Debug {
    /// The id the client uses for session `id`.
    fn spell(&self, id: &SessionId) -> String;
}

/// Ids as 32 lowercase hex digits, [`SessionId`]'s own form.
#[derive(Debug, Default)]
pub struct PlainIds;

impl IdSpelling for PlainIds {
    fn spell(&self, id: &SessionId) -> String {
        id.to_string()
    }
}

/// The fallback's process-wide state.
#[derive(Debug)]
pub struct Fallback {
    /// Open sessions.
    pub store: Arc<dyn SessionStore>,
    /// Counters for metrics.
    pub stats: Arc<FallbackStats>,
    /// How new sessions' ids are written.
    pub spelling: Arc<dyn IdSpelling>,
}

impl Default for Fallback {
    fn default() -> Self {
        Fallback {
            store: Arc::new(LocalStore::default()),
            stats: Arc::new(FallbackStats::default()),
            spelling: Arc::new(PlainIds),
        }
    }
}

/// Session endpoints (`/_wsgate/s/<id>/…`) are always the gateway's: a
/// session belongs to the process, not to the route table, so a reload that
/// turns the fallback off, removes the session's route or changes its
/// backends must not make open sessions unreachable.
const SESSION_PREFIX: &str = "/_wsgate/s/";

/// Whether the gateway answers this path itself: a session endpoint always,
/// any other `/_wsgate/` path while some route `offers` the fallback
/// (otherwise the path is routed as usual).
pub fn handles(path: &str, offered: bool) -> bool {
    path.starts_with(SESSION_PREFIX) || (offered && path.starts_with(PREFIX))
}

/// The fallback endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint<'a> {
    /// `GET /_wsgate/client.js`.
    ClientJs,
    /// `POST /_wsgate/open`.
    Open,
    /// `/_wsgate/s/<id>/<action>`.
    Session(&'a str, Action),
}

/// What a request does to an open session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `GET …/poll`.
    Poll,
    /// `GET …/sse`.
    Sse,
    /// `POST …/send`.
    Send,
    /// `POST …/close`.
    Close,
}

/// The endpoint a `/_wsgate/` request names, or a 404.
pub fn endpoint<'a>(method: &Method, path: &'a str) -> Result<Endpoint<'a>, ProxyError> {
    let rest = path.strip_prefix(PREFIX).unwrap_or_default();
    let segments: Vec<&str> = rest.split('/').collect();
    Ok(match (method, segments.as_slice()) {
        (&Method::GET, ["client.js"]) => Endpoint::ClientJs,
        (&Method::POST, ["open"]) => Endpoint::Open,
        (&Method::GET, ["s", id, "poll"]) => Endpoint::Session(id, Action::Poll),
        (&Method::GET, ["s", id, "sse"]) => Endpoint::Session(id, Action::Sse),
        (&Method::POST, ["s", id, "send"]) => Endpoint::Session(id, Action::Send),
        (&Method::POST, ["s", id, "close"]) => Endpoint::Session(id, Action::Close),
        _ => return Err(ProxyError::FallbackEndpoint),
    })
}

impl Fallback {
    /// Answers one request on a session of this instance.
    pub async fn serve(
        &self,
        id: SessionId,
        action: Action,
        req: Request<Body>,
    ) -> Result<Response<Body>, ProxyError> {
        let session = self.session_for(&id, &req)?;
        match action {
            Action::Poll => poll::poll(session, req).await,
            Action::Sse => poll::sse(session, req),
            Action::Send => post::send(session, req).await,
            Action::Close => post::close(session, req).await,
        }
    }

    /// The route of the session `id` names, if it is open: a refusal of a
    /// request on the session is logged and counted on that route.
    pub fn route_of(&self, id: &str) -> Option<String> {
        let session = SessionId::parse(id).and_then(|id| self.store.get(&id))?;
        Some(session.stats.route().to_owned())
    }

    /// The session a request names, if it exists and the request's Origin
    /// is the one that opened it.
    fn session_for(&self, id: &SessionId, req: &Request<Body>) -> Result<Arc<Session>, ProxyError> {
        let session = self.store.get(id).ok_or(ProxyError::SessionUnknown)?;
        session.check_origin(req.headers())?;
        session.touch();
        Ok(session)
    }
}

/// The JavaScript client; cacheable, it changes only with the gateway.
pub fn client_js() -> Response<Body> {
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
