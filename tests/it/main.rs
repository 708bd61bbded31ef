//! The integration tests: one test crate with one module per area, so the
//! harness in `support/` is compiled once and the suite is linked once.
//!
//! Every test runs in this one process, next to tests of other modules:
//! none may rely on process-wide state of its own (a global tracing
//! subscriber, an environment variable, the process's fd or thread count).
//! Run one area with a filter, e.g. `cargo test --test it tls::`.

mod support;

mod bad_input;
mod browser_fallback;
mod cli;
mod deploy;
mod drain;
mod extensions;
mod fallback;
mod fallback_bad_input;
mod fallback_bench;
mod fallback_lifecycle;
mod handshake;
mod hostile;
mod http_proxy;
mod independent_clients;
mod layers;
mod limits;
mod logs;
mod metrics;
mod relay;
mod reload;
mod tls;
mod tls_check;
mod workers;
