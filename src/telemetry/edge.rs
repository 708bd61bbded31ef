//! The metrics of the policies at the edge: PROXY protocol headers,
//! forward-auth subrequests and client rate limits. Kept beside
//! [`super::metrics`] so that its families stay in one place.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::labels::{RateLabels, ResultLabel, RouteResultLabels};
use super::metrics::Metrics;

/// The edge families.
#[derive(Debug, Default)]
pub(crate) struct EdgeFamilies {
    proxy_headers: Family<ResultLabel, Counter>,
    auth: Family<RouteResultLabels, Counter>,
    rate_limited: Family<RateLabels, Counter>,
}

impl EdgeFamilies {
    /// Puts every family in the registry under its documented name.
    pub(crate) fn register(&self, r: &mut Registry) {
        r.register(
            "proxy_protocol_headers",
            "PROXY protocol headers read or refused, by result",
            self.proxy_headers.clone(),
        );
        r.register(
            "auth_requests",
            "Forward-auth subrequests, by route and result",
            self.auth.clone(),
        );
        r.register(
            "client_rate_limited",
            "Clients held to a route's rate limit, by limit and action",
            self.rate_limited.clone(),
        );
    }
}

impl Metrics {
    /// Counts one connection's PROXY header outcome: `accepted`, `local`
    /// (the balancer named no client), or the refusal (`untrusted`,
    /// `missing`, `truncated`, `oversized`, `invalid`, `timeout`).
    pub fn proxy_header(&self, result: &'static str) {
        let labels = ResultLabel { result };
        self.edge().proxy_headers.get_or_create(&labels).inc();
    }

    /// Counts one forward-auth subrequest on `route` by `result`: `allowed`,
    /// `denied`, or the failure's reason label.
    pub fn auth_request(&self, route: &str, result: &'static str) {
        let labels = RouteResultLabels {
            route: route.to_owned(),
            result,
        };
        self.edge().auth.get_or_create(&labels).inc();
    }

    /// Counts one client held to a rate limit on `route`: `limit` is the
    /// key (`client_messages_per_second`, `client_bytes_per_second`),
    /// `action` what the gateway did (`closed`, `refused`, `paused`).
    pub fn rate_limited(&self, route: &str, limit: &'static str, action: &'static str) {
        self.rate_limited_by(route, limit, action, 1);
    }

    /// Like [`Metrics::rate_limited`], `n` times at once.
    pub fn rate_limited_by(&self, route: &str, limit: &'static str, action: &'static str, n: u64) {
        let labels = RateLabels {
            route: route.to_owned(),
            limit,
            action,
        };
        self.edge().rate_limited.get_or_create(&labels).inc_by(n);
    }
}
