//! Operations: everything that keeps the gateway observable and lets it
//! change or stop without dropping users.
//!
//! ```text
//! run         the lifecycle: start, ready, reloads, staged drain
//! listeners   the public listener set, changeable at run time
//! reload      SIGHUP / file-change reload with full validation
//! drain       readiness phase and the staggered 1001 closes
//! admin       /metrics, /healthz, /readyz and the `wsgate health` probe
//! metrics     every Prometheus metric (names in docs/metrics.md)
//! sessions    live accounting of relayed WebSockets
//! request_id  X-Request-Id kept or generated
//! logging     text or JSON log lines
//! ```

pub mod admin;
pub mod drain;
mod listeners;
pub mod logging;
pub mod metrics;
pub mod reload;
pub mod request_id;
pub mod run;
pub mod sessions;
