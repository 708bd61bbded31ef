//! Telemetry: what the gateway tells its operator. It depends on nothing
//! above it: callers hand it plain labels (route, reason, side), never their
//! own error or state types.
//!
//! ```text
//! metrics     every Prometheus metric (names in docs/metrics.md)
//! backends    backend gauges, read from the upstream registry at scrape
//! certificates  the expiry of every certificate served, read at each scrape
//! edge        PROXY headers, forward auth, client rate limits
//! labels      the label set of each metric family
//! cluster     the cluster's families: forwards, peer requests, refusals
//! relays      live accounting of relayed WebSockets
//! request_id  X-Request-Id kept or generated
//! logging     text or JSON log lines
//! ```

pub mod backends;
pub mod certificates;
pub mod cluster;
mod edge;
mod labels;
pub mod logging;
pub mod metrics;
pub mod relays;
pub mod request_id;
