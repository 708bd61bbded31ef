//! wsgate: a TLS-terminating reverse proxy built for WebSocket.
//!
//! Architecture map (one job per module):
//!
//! ```text
//! main.rs        CLI, tracing, exit codes — a thin shell over this library
//! config/        TOML file format → validated runtime Config
//! routing        host + whole-segment path prefix matching
//! server/        accept loops and the per-connection hyper service
//! tls/           TLS termination, certificate reload, backend TLS
//! ws/            handshake checks, backend dial, frame codec, relay
//! fallback/      long-poll / SSE sessions bridged to a backend WebSocket
//! proxy/         plain HTTP forwarding; the one place errors become responses
//! limits         connection, per-address and handshake limits
//! builtin        the in-process echo backend and demo page of the default config
//! ops/           metrics, admin endpoints, drain, hot reload, request ids, logs
//! ```
//!
//! A request flows: `server` accepts → `routing` picks a route → either
//! `ws::handshake` checks the upgrade, `ws::dial` opens the backend and
//! `ws::relay` pumps frames, or `proxy` forwards plain HTTP. `/_wsgate/`
//! requests go to `fallback` before routing when a route offers it. Every
//! request-path failure is a `proxy::error::ProxyError`, turned into a response
//! by one function.

pub mod builtin;
pub mod config;
pub mod fallback;
pub mod limits;
pub mod ops;
pub mod proxy;
pub mod routing;
pub mod server;
pub mod tls;
pub mod upstream;
pub mod ws;

use std::future::Future;
use std::io;

use tokio::net::TcpListener;

use config::Config;
pub use ops::run::{run_with, RunOptions};

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
