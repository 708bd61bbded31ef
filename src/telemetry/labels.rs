//! The label sets of the metric families: one struct per set, so a family
//! can only be given the labels it is documented with.

use prometheus_client::encoding::EncodeLabelSet;

/// `{route}`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RouteLabel {
    pub(crate) route: String,
}

/// `{route, outcome, reason, http_version}` of a WebSocket handshake.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct HandshakeLabels {
    pub(crate) route: String,
    pub(crate) outcome: String,
    pub(crate) reason: String,
    pub(crate) http_version: &'static str,
}

/// `{route, direction}`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct DirectionLabels {
    pub(crate) route: String,
    pub(crate) direction: String,
}

/// `{route, side, code}`: a close code and who sent it.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CloseLabels {
    pub(crate) route: String,
    pub(crate) side: String,
    pub(crate) code: String,
}

/// `{route, end, http_version}`: why a relay ended.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct EndLabels {
    pub(crate) route: String,
    pub(crate) end: String,
    pub(crate) http_version: &'static str,
}

/// `{backend}`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct BackendLabel {
    pub(crate) backend: String,
}

/// `{backend, reason}`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct BackendLabels {
    pub(crate) backend: String,
    pub(crate) reason: String,
}

/// `{route, backend}`: one backend of one route.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RouteBackendLabels {
    pub(crate) route: String,
    pub(crate) backend: String,
}

/// `{route, backend, outcome}` of a health check.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct HealthCheckLabels {
    pub(crate) route: String,
    pub(crate) backend: String,
    pub(crate) outcome: String,
}

/// `{route, class}` of an HTTP response (`2xx` ...).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct StatusLabels {
    pub(crate) route: String,
    pub(crate) class: String,
}

/// `{route, transport}` of a fallback session.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct TransportLabels {
    pub(crate) route: String,
    pub(crate) transport: String,
}

/// `{route, transport, http_version}` of a fallback session opened.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct SessionLabels {
    pub(crate) route: String,
    pub(crate) transport: String,
    pub(crate) http_version: &'static str,
}

/// `{end}` of an HTTP/2 connection: why it ended.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Http2EndLabels {
    pub(crate) end: &'static str,
}

/// `{reason}` of an HTTP/2 request h2 or hyper refused before it reached
/// the gateway's code.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Http2RefusedLabels {
    pub(crate) reason: &'static str,
}

/// `{side, code}` of an HTTP/2 stream reset: who sent the RST_STREAM and
/// its error code.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Http2ResetLabels {
    pub(crate) side: &'static str,
    pub(crate) code: &'static str,
}

/// `{route, transport, direction}` of fallback messages.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct FallbackLabels {
    pub(crate) route: String,
    pub(crate) transport: String,
    pub(crate) direction: String,
}

/// `{limit, answer}` of a refusal: which bound, and whether the client
/// got an HTTP answer or a closed connection.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct LimitLabels {
    pub(crate) limit: &'static str,
    pub(crate) answer: &'static str,
}

/// `{name}` of a certificate: a name it serves.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct NameLabel {
    pub(crate) name: String,
}

/// `{result}` of an ACME order: `issued` or `failed`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct OrderLabels {
    pub(crate) result: &'static str,
}

/// `{result}` of a config reload.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ReloadLabels {
    pub(crate) result: String,
}

/// `{peer}`: an instance of the cluster, by its advertised address.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct PeerLabel {
    pub(crate) peer: String,
}

/// `{peer, result}` of a forwarded request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct PeerResultLabels {
    pub(crate) peer: String,
    pub(crate) result: String,
}

/// `{reason}` of a cluster refusal.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ReasonLabel {
    pub(crate) reason: &'static str,
}

/// `{result}`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ResultLabel {
    pub(crate) result: &'static str,
}

/// `{route, result}`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RouteResultLabels {
    pub(crate) route: String,
    pub(crate) result: &'static str,
}

/// `{route, limit, action}` of a client held to a rate limit.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RateLabels {
    pub(crate) route: String,
    pub(crate) limit: &'static str,
    pub(crate) action: &'static str,
}
