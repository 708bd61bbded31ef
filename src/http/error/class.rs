//! What each request-path error is: the status it answers with, the side
//! that caused it, its reason label (logs and metrics) and the limit it
//! enforces, if any.

use http::StatusCode;

use super::{OwnerFailure, ProxyError, Side};
use crate::limits::Limit;

impl ProxyError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        use ProxyError::*;
        match self {
            NoRoute | FallbackEndpoint | FallbackDisabled | SessionUnknown => StatusCode::NOT_FOUND,
            OriginNotAllowed { .. } | OriginMissing | SessionOriginMismatch => {
                StatusCode::FORBIDDEN
            }
            SubprotocolNotOffered { .. }
            | BadHandshake(_)
            | BadFallbackRequest(_)
            | H2cUpgrade
            | PlainHttpOnTls { .. }
            | MalformedVersion(_)
            | AuthorityMismatch => StatusCode::BAD_REQUEST,
            ExtendedConnect(fault) => fault.status(),
            Tunnel => StatusCode::NOT_IMPLEMENTED,
            SessionClosed => StatusCode::GONE,
            Owner(OwnerFailure::Timeout) => StatusCode::GATEWAY_TIMEOUT,
            Owner(_) => StatusCode::BAD_GATEWAY,
            NotSessionOwner => StatusCode::MISDIRECTED_REQUEST,
            PeerRefused(_) => StatusCode::UNAUTHORIZED,
            TooManySessions { .. } | MessageRate { .. } | TooManyWebSockets { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            AuthDenied(denial) => denial.status,
            AuthTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            AuthUnreachable { .. } | AuthBadAnswer { .. } => StatusCode::BAD_GATEWAY,
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
        if matches!(self, ProxyError::ShuttingDown | ProxyError::Owner(_)) {
            return Side::Gateway;
        }
        // A 501 answers what the client asked for, not a backend failure.
        if matches!(self, ProxyError::Tunnel | ProxyError::ExtendedConnect(_)) {
            return Side::Client;
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
            TooManyWebSockets { .. } => "websockets_per_client",
            MessageRate { .. } => "client_messages_per_second",
            AuthDenied(_) => "auth_denied",
            AuthUnreachable { .. } => "auth_unreachable",
            AuthTimeout { .. } => "auth_timeout",
            AuthBadAnswer { .. } => "auth_bad_answer",
            BodyTooLarge { .. } => "too_large",
            BadFallbackRequest(_) => "bad_request",
            OriginNotAllowed { .. } | OriginMissing | SessionOriginMismatch => "origin",
            SubprotocolNotOffered { .. } => "subprotocol",
            UnsupportedVersion(_) => "version",
            BadHandshake(_) | H2cUpgrade | AuthorityMismatch => "bad_request",
            MalformedVersion(_) => "version_malformed",
            ExtendedConnect(fault) => fault.reason(),
            Tunnel => "connect_tunnel",
            PlainHttpOnTls { .. } => "plain_http_on_tls",
            OverLimit(refusal) => refusal.reason(),
            NoBackend | BackendConnect { .. } => "backend_refused",
            BackendTls { .. } => "backend_tls",
            BackendConnectTimeout { .. } | BackendResponseTimeout { .. } => "backend_timeout",
            BackendProtocol { .. } => "backend_protocol",
            ShuttingDown => "draining",
            Owner(OwnerFailure::Timeout) => "owner_timeout",
            Owner(OwnerFailure::Refused) => "owner_refused",
            Owner(_) => "owner_unreachable",
            NotSessionOwner => "not_owner",
            PeerRefused(reason) => reason,
        }
    }

    /// The limit this refusal enforces, for `wsgate_limit_refusals_total`.
    pub fn limit(&self) -> Option<Limit> {
        match self {
            ProxyError::OverLimit(refusal) => Some(refusal.limit()),
            ProxyError::TooManySessions { .. } => Some(Limit::FallbackSessions),
            ProxyError::TooManyWebSockets { .. } => Some(Limit::WebSocketsPerClient),
            _ => None,
        }
    }
}
