//! Telemetry: what the gateway tells its operator. It depends on nothing
//! above it: callers hand it plain labels (route, reason, side), never their
//! own error or state types.
//!
//! ```text
//! metrics     every Prometheus metric (names in docs/metrics.md)
//! edge        PROXY headers, forward auth, client rate limits
//! labels      the label set of each metric family
//! relays      live accounting of relayed WebSockets
//! request_id  X-Request-Id kept or generated
//! logging     text or JSON log lines
//! ```

mod edge;
mod labels;
pub mod logging;
pub mod metrics;
pub mod relays;
pub mod request_id;
