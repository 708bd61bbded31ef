//! Tools for benchmarking wsgate side by side with nginx and HAProxy:
//! a load generator (`loadgen`), an echo backend (`echo`) and the table
//! printer (`report`), driven by `bench/run.sh`; and the soak driver
//! (`soak`), driven by `scripts/soak.sh`.
//!
//! ```text
//! frame    the slice of RFC 6455 framing both tools need
//! client   connect (TCP or TLS), upgrade, count echoed messages
//! h2ws     WebSockets over HTTP/2 (RFC 8441), several per connection
//! procfs   CPU time and RSS of the proxy under test
//! stats    latency percentiles and result lines
//! modes    the load generator's measurements
//! soak     the soak driver's WebSocket and fallback clients, checks, figures
//! ```

pub mod client;
pub mod frame;
pub mod h2ws;
pub mod modes;
pub mod procfs;
pub mod soak;
pub mod stats;
