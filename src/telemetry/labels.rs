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

/// `{result}` of a config reload.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ReloadLabels {
    pub(crate) result: String,
}
