//! wsgate: a TLS-terminating reverse proxy built for WebSocket.
//!
//! Layers, top to bottom. Each module imports only from the layers below
//! it (`tests/it/layers.rs` reads `src/` and fails on any edge that points
//! up or sideways into a cycle):
//!
//! ```text
//! run         assembly: bind, serve, reload, the drain's stages in order
//! server      accept loops, per-connection serving (HTTP/1.1, HTTP/2 on TLS),
//!             over-limit refusals, admin
//! gateway     per-request dispatch: upgrade | fallback | plain; narrow contexts
//! cluster     owner forwarding of fallback requests between instances
//! builtin     the in-process echo backend and demo page of the default config
//! fallback    long-poll / SSE sessions bridged to a backend WebSocket
//! proxy       plain HTTP forwarding
//! ws          admission (checks, handshake slot, dial), the 101, frames, relay
//! auth        forward auth: the subrequest that admits a request first
//! upstream    reaching backends: balancing over live backend state (counts,
//!             health checks), connector, backend TLS
//! acme        automatic certificates: orders, challenges, cache, renewal
//! tls         listener certificates: files, SNI, handshake, reload
//! telemetry   metrics, live relays, request ids, logging (plain labels)
//! shutdown    one handle, one method per drain stage
//! http        body, headers, client info, the request-path error and the
//!             one function that turns it into a response; HTTP/2 requests
//!             in the HTTP/1.1 shapes the paths expect
//! limits      connection, per-address and handshake limits
//! net         socket helpers
//! routing     host + whole-segment path prefix matching
//! config      TOML file format → validated runtime Config
//! ```
//!
//! A request flows down once: `server` accepts and serves the connection →
//! `gateway` classifies and routes it → `ws::admit` checks an upgrade (an
//! HTTP/1.1 upgrade, an HTTP/2 extended CONNECT, or a fallback open), takes a
//! handshake slot and dials through `upstream` →
//! `ws::relay` pumps frames (or `fallback` bridges the session); a plain
//! request goes to `proxy`. Every request-path failure is an
//! `http::error::ProxyError`, turned into a response by one function.

pub mod acme;
pub mod auth;
pub mod builtin;
pub mod cluster;
pub mod config;
pub mod fallback;
pub mod gateway;
pub mod http;
pub mod limits;
pub mod net;
pub mod proxy;
pub mod routing;
pub mod run;
pub mod server;
pub mod shutdown;
pub mod telemetry;
pub mod tls;
pub mod upstream;
pub mod ws;

use std::future::Future;
use std::io;

use tokio::net::TcpListener;

use config::Config;
pub use run::{run_with, RunOptions};

/// Runs the gateway on already-bound listeners (one per `config.listeners`
/// entry, same order) until `shutdown` completes, then drains: stop
/// accepting, let in-flight HTTP requests finish, close every relayed
/// WebSocket with 1001, all within `server.shutdown_grace`. The admin
/// endpoints run when the config has `[admin]`; there is no reload (see
/// [`run_with`]).
pub async fn run(
    config: Config,
    listeners: Vec<TcpListener>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    run_with(config, listeners, RunOptions::default(), shutdown).await
}
