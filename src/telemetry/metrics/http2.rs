//! The HTTP/2 families: how connections ended, which streams were reset,
//! and which requests were refused before they reached the gateway's code.
//!
//! The server layer classifies; these take its plain labels.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::Metrics;
use crate::telemetry::labels::{Http2EndLabels, Http2RefusedLabels, Http2ResetLabels};

/// `wsgate_http2_connections_total{end}`,
/// `wsgate_http2_stream_resets_total{side, code}` and
/// `wsgate_http2_requests_refused_total{reason}`.
#[derive(Debug, Default)]
pub(super) struct Http2Families {
    ended: Family<Http2EndLabels, Counter>,
    resets: Family<Http2ResetLabels, Counter>,
    refused: Family<Http2RefusedLabels, Counter>,
}

impl Http2Families {
    /// Puts both families in the registry under their documented names.
    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register(
            "http2_connections",
            "HTTP/2 client connections ended, by why",
            self.ended.clone(),
        );
        registry.register(
            "http2_stream_resets",
            "HTTP/2 streams reset (RST_STREAM), by who sent it and its error code",
            self.resets.clone(),
        );
        registry.register(
            "http2_requests_refused",
            "HTTP/2 requests answered by h2 or hyper before they reached the gateway, by why",
            self.refused.clone(),
        );
    }
}

impl Metrics {
    /// Counts one HTTP/2 client connection that ended; `end` says why
    /// (`closed`, `idle`, `rapid_reset`, `ping_flood`, ...).
    pub fn http2_connection_ended(&self, end: &'static str) {
        let labels = Http2EndLabels { end };
        self.http2.ended.get_or_create(&labels).inc();
    }

    /// Counts one RST_STREAM: `side` is who sent it (`client` or
    /// `gateway`), `code` its error code's name (`cancel`,
    /// `refused_stream`, ...).
    pub fn http2_stream_reset(&self, side: &'static str, code: &'static str) {
        let labels = Http2ResetLabels { side, code };
        self.http2.resets.get_or_create(&labels).inc();
    }

    /// Counts one HTTP/2 request that h2 or hyper answered itself:
    /// `malformed` and `connect_body` (a 400 the watch put before their
    /// reset), `header_list_too_large` (h2's own 431).
    pub fn http2_request_refused(&self, reason: &'static str) {
        let labels = Http2RefusedLabels { reason };
        self.http2.refused.get_or_create(&labels).inc();
    }
}
