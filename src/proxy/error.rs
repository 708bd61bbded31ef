//! Request-path errors and the one function that turns them into responses.
//!
//! Every failure a client can see is a [`ProxyError`]. Each variant knows its
//! status, its short body, which side caused it (for logs and metric labels)
//! and its rejection reason label, so no other code builds error responses.

use std::io;
use std::time::Duration;

use http::{header, HeaderValue, Response, StatusCode};

use crate::proxy::body::{full, Body};

/// Which side of the gateway caused a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The downstream client sent something we refuse.
    Client,
    /// The upstream backend failed or misbehaved.
    Backend,
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
    /// A connection or handshake limit is reached (503/429, `Retry-After`).
    #[error("over limit: {}", .0.reason())]
    OverLimit(crate::limits::Refusal),
    /// `wss://` / `https://` backends need backend TLS support.
    #[error("backend {backend} needs TLS, which this build does not dial yet")]
    BackendTlsUnsupported {
        /// The backend as configured.
        backend: String,
    },
}

impl ProxyError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        use ProxyError::*;
        match self {
            NoRoute => StatusCode::NOT_FOUND,
            OriginNotAllowed { .. } | OriginMissing => StatusCode::FORBIDDEN,
            SubprotocolNotOffered { .. } | BadHandshake(_) => StatusCode::BAD_REQUEST,
            UnsupportedVersion(_) => StatusCode::UPGRADE_REQUIRED,
            OverLimit(refusal) => refusal.status(),
            BackendConnectTimeout { .. } | BackendResponseTimeout { .. } => {
                StatusCode::GATEWAY_TIMEOUT
            }
            NoBackend
            | BackendConnect { .. }
            | BackendProtocol { .. }
            | BackendTlsUnsupported { .. } => StatusCode::BAD_GATEWAY,
        }
    }

    /// Which side caused the error.
    pub fn side(&self) -> Side {
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
            NoRoute => "no_route",
            OriginNotAllowed { .. } | OriginMissing => "origin",
            SubprotocolNotOffered { .. } => "subprotocol",
            UnsupportedVersion(_) => "version",
            BadHandshake(_) => "bad_request",
            OverLimit(refusal) => refusal.reason(),
            NoBackend | BackendConnect { .. } | BackendTlsUnsupported { .. } => "backend_refused",
            BackendConnectTimeout { .. } | BackendResponseTimeout { .. } => "backend_timeout",
            BackendProtocol { .. } => "backend_protocol",
        }
    }

    /// The response the client gets. Backend details stay in the log: the
    /// client learns the kind of failure, not our internal addresses.
    pub fn to_response(&self) -> Response<Body> {
        if let ProxyError::OverLimit(refusal) = self {
            return refusal.to_response();
        }
        let body = match self.side() {
            Side::Client => format!("{self}\n"),
            Side::Backend => format!("{}\n", self.status().canonical_reason().unwrap_or("")),
        };
        let mut response = Response::new(full(body));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if matches!(self, ProxyError::UnsupportedVersion(_)) {
            headers.insert(
                header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static("13"),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_reasons() {
        let cases: Vec<(ProxyError, u16, &str, Side)> = vec![
            (ProxyError::NoRoute, 404, "no_route", Side::Client),
            (ProxyError::OriginMissing, 403, "origin", Side::Client),
            (
                ProxyError::SubprotocolNotOffered {
                    allowed: vec!["a".into()],
                },
                400,
                "subprotocol",
                Side::Client,
            ),
            (
                ProxyError::UnsupportedVersion("8".into()),
                426,
                "version",
                Side::Client,
            ),
            (
                ProxyError::BadHandshake("x"),
                400,
                "bad_request",
                Side::Client,
            ),
            (
                ProxyError::BackendConnectTimeout {
                    backend: "b".into(),
                    timeout: Duration::from_secs(1),
                },
                504,
                "backend_timeout",
                Side::Backend,
            ),
            (
                ProxyError::BackendProtocol {
                    backend: "b".into(),
                    reason: "r".into(),
                },
                502,
                "backend_protocol",
                Side::Backend,
            ),
        ];
        for (err, status, reason, side) in cases {
            assert_eq!(err.status().as_u16(), status, "{err}");
            assert_eq!(err.reason(), reason, "{err}");
            assert_eq!(err.side(), side, "{err}");
        }
    }

    #[test]
    fn version_error_advertises_13() {
        let r = ProxyError::UnsupportedVersion("8".into()).to_response();
        assert_eq!(r.headers()[header::SEC_WEBSOCKET_VERSION], "13");
        let e = ProxyError::BackendConnect {
            backend: "ws://10.0.0.5:9000".into(),
            source: io::Error::from(io::ErrorKind::ConnectionRefused),
        };
        assert_eq!(e.to_response().status(), StatusCode::BAD_GATEWAY);
    }
}
