//! Request-path errors and the one function that turns them into responses.
//!
//! Every failure a client can see is a [`ProxyError`]. Each variant knows its
//! status, which side caused it (for logs and metric labels) and its reason
//! label ([`class`]), and [`response`] holds the one function that turns it
//! into the client's answer, so no other code builds error responses.

use std::io;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};

use crate::http::h2::ConnectFault;
use crate::limits::Refusal;

/// An auth service's 401 or 403, for the client as is.
#[derive(Debug)]
pub struct AuthDenial {
    /// The auth service's status.
    pub status: StatusCode,
    /// Its end-to-end headers (`WWW-Authenticate`, `Set-Cookie`, ...).
    pub headers: HeaderMap,
    /// Its body, bounded.
    pub body: Bytes,
}

/// Which side of the gateway caused a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The downstream client sent something we refuse.
    Client,
    /// The upstream backend failed or misbehaved.
    Backend,
    /// The gateway itself refused (e.g. it is draining).
    Gateway,
}

impl Side {
    /// The side as logs and metric labels spell it.
    pub fn label(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Backend => "backend",
            Side::Gateway => "gateway",
        }
    }
}

/// Everything that can go wrong between receiving a request and answering it.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// No route matches the request's host and path.
    #[error("no route for this host and path")]
    NoRoute,
    /// The Origin header is not on the route's allowlist.
    #[error("origin {origin} is not allowed on this route")]
    OriginNotAllowed {
        /// The Origin the client sent.
        origin: String,
    },
    /// The route requires an Origin header and none was sent.
    #[error("missing Origin header (this route requires one)")]
    OriginMissing,
    /// The client offered none of the route's subprotocols.
    #[error("none of the offered subprotocols is allowed; allowed: {}", allowed.join(", "))]
    SubprotocolNotOffered {
        /// The route's allowed subprotocols, for the response body.
        allowed: Vec<String>,
    },
    /// `Sec-WebSocket-Version` is missing or not 13.
    #[error("unsupported WebSocket version {0:?}; only 13 is supported")]
    UnsupportedVersion(String),
    /// The request asks for an HTTP/2 cleartext upgrade (h2c smuggling).
    #[error("h2c upgrade refused: this gateway upgrades to WebSocket only; send the request without Upgrade: h2c and HTTP2-Settings")]
    H2cUpgrade,
    /// The upgrade request is malformed (method, HTTP version, key, headers).
    #[error("bad WebSocket handshake: {0}")]
    BadHandshake(&'static str),
    /// `Sec-WebSocket-Version` is not a version number at all (RFC 6455
    /// §4.2.1: a grammar violation is a 400, unlike an unknown version).
    #[error("malformed Sec-WebSocket-Version {0:?}")]
    MalformedVersion(String),
    /// An extended CONNECT (RFC 8441) failed its own checks.
    #[error("bad extended CONNECT: {0}")]
    ExtendedConnect(ConnectFault),
    /// A CONNECT without `:protocol`: a tunnel, which the gateway never opens.
    #[error("CONNECT tunnels are not supported; only WebSocket over HTTP/2 (RFC 8441) is")]
    Tunnel,
    /// An HTTP/2 request's `Host` names another host than its `:authority`.
    #[error("Host does not match :authority")]
    AuthorityMismatch,
    /// The route has no backends (a validated config never does this).
    #[error("no backend configured")]
    NoBackend,
    /// The backend refused or reset the TCP connection.
    #[error("backend {backend} unreachable: {source}")]
    BackendConnect {
        /// The backend as configured.
        backend: String,
        /// The connect error.
        source: io::Error,
    },
    /// Connecting to the backend took longer than `connect_timeout`.
    #[error("backend {backend} did not accept the connection within {timeout:?}")]
    BackendConnectTimeout {
        /// The backend as configured.
        backend: String,
        /// The timeout that passed.
        timeout: Duration,
    },
    /// The backend accepted but did not answer within `response_timeout`.
    #[error("backend {backend} did not answer within {timeout:?}")]
    BackendResponseTimeout {
        /// The backend as configured.
        backend: String,
        /// The timeout that passed.
        timeout: Duration,
    },
    /// The backend's answer broke HTTP or the WebSocket handshake rules.
    #[error("backend {backend} answered badly: {reason}")]
    BackendProtocol {
        /// The backend as configured.
        backend: String,
        /// What was wrong with the answer.
        reason: String,
    },
    /// A `/_wsgate/` path that names no fallback endpoint (or the wrong method).
    #[error("no such fallback endpoint")]
    FallbackEndpoint,
    /// A fallback session was asked for on a route without `fallback = true`.
    #[error("the fallback is not enabled on this route")]
    FallbackDisabled,
    /// The session id is unknown: never issued, expired, or already closed.
    #[error("unknown or expired fallback session")]
    SessionUnknown,
    /// The session was opened from another Origin than this request's.
    #[error("this fallback session belongs to another origin")]
    SessionOriginMismatch,
    /// The session's backend connection has already closed.
    #[error("the fallback session is closed")]
    SessionClosed,
    /// The client holds as many fallback sessions on the route as allowed.
    #[error("too many fallback sessions from this client (limit {limit})")]
    TooManySessions {
        /// The route's `fallback_sessions_per_client`.
        limit: u64,
    },
    /// A request body (or one message in it) is larger than allowed.
    #[error("request body too large (limit {limit} bytes)")]
    BodyTooLarge {
        /// The limit that was exceeded, in bytes.
        limit: u64,
    },
    /// A fallback request is malformed (query, batch, sequence numbers).
    #[error("bad fallback request: {0}")]
    BadFallbackRequest(String),
    /// The gateway is draining and takes no new WebSockets.
    #[error("the gateway is shutting down")]
    ShuttingDown,
    /// A connection or handshake limit is reached (503/429, `Retry-After`).
    #[error("over limit: {}", .0.reason())]
    OverLimit(Refusal),
    /// A plain HTTP request arrived on a TLS listener.
    #[error("this port speaks HTTPS; use {url}")]
    PlainHttpOnTls {
        /// The `https://` URL the client probably meant.
        url: String,
    },
    /// The instance that owns a fallback session (in a cluster) could not
    /// be reached, or did not answer in time.
    #[error("{0}")]
    Owner(OwnerFailure),
    /// A peer forwarded a request on a session this instance does not own.
    #[error("this instance does not own the fallback session")]
    NotSessionOwner,
    /// A request on the peer listener failed authentication; the label
    /// says why (`peer_bad_mac`, `peer_stale`, …).
    #[error("peer request refused: {0}")]
    PeerRefused(&'static str),
    /// The route's forward-auth service refused the request (401 or 403):
    /// its answer goes back to the client as is.
    #[error("refused by the auth service ({})", .0.status)]
    AuthDenied(Box<AuthDenial>),
    /// The forward-auth service could not be reached (refused, name not
    /// resolved, TLS failed).
    #[error("auth service {service} unreachable: {reason}")]
    AuthUnreachable {
        /// The auth URL as configured.
        service: String,
        /// Why.
        reason: String,
    },
    /// The forward-auth service did not answer within the route's
    /// `auth.timeout`.
    #[error("auth service {service} did not answer within {timeout:?}")]
    AuthTimeout {
        /// The auth URL as configured.
        service: String,
        /// The timeout that passed.
        timeout: Duration,
    },
    /// The forward-auth service answered something that neither admits
    /// nor refuses: a redirect, another status, garbage, a body too large.
    #[error("auth service {service} answered badly: {reason}")]
    AuthBadAnswer {
        /// The auth URL as configured.
        service: String,
        /// What was wrong.
        reason: String,
    },
    /// A fallback POST carried more messages than the route's
    /// `client_messages_per_second` allows now (429; the session stays).
    #[error("message rate over {per_second} per second; retry later")]
    MessageRate {
        /// The route's `client_messages_per_second`.
        per_second: u32,
    },
    /// The client holds as many WebSockets on the route as allowed.
    #[error("too many WebSockets from this client (limit {limit})")]
    TooManyWebSockets {
        /// The route's `websockets_per_client`.
        limit: u64,
    },
    /// The TLS handshake with a `wss://` / `https://` backend failed
    /// (certificate not trusted, wrong name, no common protocol, ...).
    #[error("TLS with backend {backend} failed: {reason}")]
    BackendTls {
        /// The backend as configured.
        backend: String,
        /// Why, as rustls put it.
        reason: String,
    },
}

/// Why a fallback request could not be forwarded to the instance that owns
/// its session. The messages name no address: peers are internal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OwnerFailure {
    /// Connecting to the owner failed.
    #[error("the instance that owns this fallback session cannot be reached")]
    Unreachable,
    /// The owner took longer than the forwarding bound to answer.
    #[error("the instance that owns this fallback session did not answer in time")]
    Timeout,
    /// The connection to the owner broke before it answered.
    #[error("the connection to the instance that owns this fallback session broke")]
    Broken,
    /// The owner refused the forwarded request's authentication (the
    /// instances disagree on the cluster secret, or their clocks on the time).
    #[error("the instance that owns this fallback session refused to serve it")]
    Refused,
}

impl OwnerFailure {
    /// The label of this failure in logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            OwnerFailure::Unreachable => "unreachable",
            OwnerFailure::Timeout => "timeout",
            OwnerFailure::Broken => "broken",
            OwnerFailure::Refused => "refused",
        }
    }
}

impl ProxyError {
    /// A backend connection failed while the gateway read or wrote it
    /// itself (the WebSocket handshake): `BackendTls` when rustls caused it
    /// (in TLS 1.3 a backend refuses our client certificate only after the
    /// handshake, on the first read), else `BackendProtocol`.
    pub fn backend_io(backend: &str, error: &std::io::Error) -> Self {
        Self::backend_failure(backend, error)
    }

    /// A backend broke HTTP (hyper's error names how), or its TLS layer
    /// failed under hyper, as for [`ProxyError::backend_io`].
    pub fn backend_protocol(backend: &str, error: &hyper::Error) -> Self {
        Self::backend_failure(backend, error)
    }

    /// A TLS failure if rustls caused `error` (in TLS 1.3 a backend refuses
    /// our client certificate only after the handshake, on the first read),
    /// a protocol failure otherwise.
    fn backend_failure(backend: &str, error: &(dyn std::error::Error + 'static)) -> Self {
        let backend = backend.to_string();
        match tls_cause(error) {
            Some(tls) => ProxyError::BackendTls {
                backend,
                reason: tls.to_string(),
            },
            None => ProxyError::BackendProtocol {
                backend,
                reason: error.to_string(),
            },
        }
    }
}

/// The rustls error somewhere in `error`'s chain of causes, if any.
fn tls_cause<'e>(error: &'e (dyn std::error::Error + 'static)) -> Option<&'e rustls::Error> {
    let mut cause = Some(error);
    while let Some(current) = cause {
        if let Some(tls) = current.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        // An io::Error's `source()` skips the error it wraps; look inside.
        let wrapped = current
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>());
        if wrapped.is_some() {
            return wrapped;
        }
        cause = current.source();
    }
    None
}

pub mod class;
pub mod response;
#[cfg(test)]
mod tests;
