//! Request-path errors and the one function that turns them into responses.
//!
//! Every failure a client can see is a [`ProxyError`]. Each variant knows its
//! status, its short body, which side caused it (for logs and metric labels)
//! and its rejection reason label, so no other code builds error responses.

use std::io;
use std::time::Duration;

use http::{header, HeaderValue, Response, StatusCode};

use crate::http::body::{full, Body};
use crate::limits::{Limit, Refusal, RETRY_AFTER_SECS};

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

impl ProxyError {
    /// A backend connection failed while the gateway read or wrote it
    /// itself (the WebSocket handshake): TLS if rustls caused it (in TLS
    /// 1.3 a backend refuses our client certificate only after the
    /// handshake, on the first read), a protocol failure otherwise.
    pub fn backend_io(backend: &str, error: &std::io::Error) -> Self {
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

    /// A backend broke HTTP (hyper's error names how) — or its TLS layer
    /// failed under hyper, as for [`ProxyError::backend_io`].
    pub fn backend_protocol(backend: &str, error: &hyper::Error) -> Self {
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

    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        use ProxyError::*;
        match self {
            NoRoute | FallbackEndpoint | FallbackDisabled | SessionUnknown => StatusCode::NOT_FOUND,
            OriginNotAllowed { .. } | OriginMissing | SessionOriginMismatch => {
                StatusCode::FORBIDDEN
            }
            SubprotocolNotOffered { .. } | BadHandshake(_) | BadFallbackRequest(_) | H2cUpgrade => {
                StatusCode::BAD_REQUEST
            }
            SessionClosed => StatusCode::GONE,
            TooManySessions { .. } => StatusCode::TOO_MANY_REQUESTS,
            BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            UnsupportedVersion(_) => StatusCode::UPGRADE_REQUIRED,
            ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            OverLimit(refusal) => refusal.status(),
            BackendConnectTimeout { .. } | BackendResponseTimeout { .. } => {
                StatusCode::GATEWAY_TIMEOUT
            }
            NoBackend | BackendConnect { .. } | BackendProtocol { .. } | BackendTls { .. } => {
                StatusCode::BAD_GATEWAY
            }
        }
    }

    /// Which side caused the error.
    pub fn side(&self) -> Side {
        if matches!(self, ProxyError::ShuttingDown) {
            return Side::Gateway;
        }
        // Load comes from clients, however the gateway answers it.
        if let ProxyError::OverLimit(_) = self {
            return Side::Client;
        }
        if self.status().is_server_error() {
            Side::Backend
        } else {
            Side::Client
        }
    }

    /// The rejection reason, as used in logs and metric labels.
    pub fn reason(&self) -> &'static str {
        use ProxyError::*;
        match self {
            NoRoute | FallbackEndpoint => "no_route",
            FallbackDisabled => "fallback_disabled",
            SessionUnknown => "session_unknown",
            SessionClosed => "session_closed",
            TooManySessions { .. } => "session_cap",
            BodyTooLarge { .. } => "too_large",
            BadFallbackRequest(_) => "bad_request",
            OriginNotAllowed { .. } | OriginMissing | SessionOriginMismatch => "origin",
            SubprotocolNotOffered { .. } => "subprotocol",
            UnsupportedVersion(_) => "version",
            BadHandshake(_) | H2cUpgrade => "bad_request",
            OverLimit(refusal) => refusal.reason(),
            NoBackend | BackendConnect { .. } => "backend_refused",
            BackendTls { .. } => "backend_tls",
            BackendConnectTimeout { .. } | BackendResponseTimeout { .. } => "backend_timeout",
            BackendProtocol { .. } => "backend_protocol",
            ShuttingDown => "draining",
        }
    }

    /// The limit this refusal enforces, for `wsgate_limit_refusals_total`.
    pub fn limit(&self) -> Option<Limit> {
        match self {
            ProxyError::OverLimit(refusal) => Some(refusal.limit()),
            ProxyError::TooManySessions { .. } => Some(Limit::FallbackSessions),
            _ => None,
        }
    }

    /// The response the client gets. Backend details stay in the log: the
    /// client learns the kind of failure, not our internal addresses.
    pub fn to_response(&self) -> Response<Body> {
        let body = match self {
            ProxyError::OverLimit(refusal) => format!("over limit: {}\n", refusal.reason()),
            _ => match self.side() {
                Side::Client | Side::Gateway => format!("{self}\n"),
                Side::Backend => format!("{}\n", self.status().canonical_reason().unwrap_or("")),
            },
        };
        let mut response = Response::new(full(body));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        match self {
            ProxyError::UnsupportedVersion(_) => {
                headers.insert(
                    header::SEC_WEBSOCKET_VERSION,
                    HeaderValue::from_static("13"),
                );
            }
            // Limits: say when to try again.
            ProxyError::TooManySessions { .. } | ProxyError::OverLimit(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
            }
            _ => {}
        }
        response
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

#[cfg(test)]
mod tests;
