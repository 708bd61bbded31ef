//! The integration tests: one test crate with one module per area, so the
//! harness in `support/` is compiled once and the suite is linked once.
//!
//! Every test runs in this one process, next to tests of other modules:
//! none may rely on process-wide state of its own (a global tracing
//! subscriber, an environment variable, the process's fd or thread count).
//! Run one area with a filter, e.g. `cargo test --test it tls::`.

mod support;

mod acme;
mod acme_bad_input;
mod auth;
mod bad_input;
mod balancing;
mod browser_errors;
mod browser_fallback;
mod browser_h2;
mod cli;
mod client_address;
mod cluster;
mod deploy;
mod drain;
mod extensions;
mod fallback;
mod fallback_bad_input;
mod fallback_bench;
mod fallback_lifecycle;
mod first_run;
mod handshake;
mod health;
mod hostile;
mod http2_clients;
mod http2_hostile;
mod http2_policies;
mod http2_proxy;
mod http2_websocket;
mod http_proxy;
mod independent_clients;
mod layers;
mod limits;
mod logs;
mod metrics;
mod plain_http_on_tls;
mod quick_start;
mod rate_limits;
mod relay;
mod reload;
mod tls;
mod tls_check;
mod workers;
