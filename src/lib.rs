//! wsgate: a TLS-terminating reverse proxy built for WebSocket.
//!
//! Architecture map (one job per module):
//!
//! ```text
//! main.rs        CLI, tracing, exit codes — a thin shell over this library
//! config/        TOML file format → validated runtime Config
//! routing        host + whole-segment path prefix matching
//! server/        accept loops and the per-connection hyper service
//! ws/            handshake checks, backend dial, frame codec, relay
//! proxy/         plain HTTP forwarding; the one place errors become responses
//! limits         connection, per-address and handshake limits
//! builtin        the in-process echo backend and demo page of the default config
//! ```
//!
//! A request flows: `server` accepts → `routing` picks a route → either
//! `ws::handshake` checks the upgrade, `ws::dial` opens the backend and
//! `ws::relay` pumps frames, or `proxy` forwards plain HTTP. Every
//! request-path failure is a `proxy::error::ProxyError`, turned into a response
//! by one function.

pub mod builtin;
pub mod config;
pub mod limits;
pub mod proxy;
pub mod routing;
pub mod server;
pub mod upstream;
pub mod ws;

use std::future::Future;
use std::io;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use config::{Backend, Config};
use server::gateway::Gateway;
use upstream::Connector;

/// Runs the gateway on already-bound listeners (one per `config.listeners`
/// entry, same order) until `shutdown` completes, then drains: stop
/// accepting, let in-flight HTTP requests finish, close every relayed
/// WebSocket with 1001, all within `server.shutdown_grace`.
pub async fn run(
    config: Config,
    listeners: Vec<TcpListener>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    run_observed(config, listeners, shutdown, |_| {}).await
}

/// [`run`], handing the shared gateway state to `observe` once it exists, so
/// tests and tools can watch live counts (relays, limits).
pub async fn run_observed(
    config: Config,
    listeners: Vec<TcpListener>,
    shutdown: impl Future<Output = ()>,
    observe: impl FnOnce(Arc<Gateway>),
) -> io::Result<()> {
    let internal = CancellationToken::new();
    let uses_builtin = config
        .routes
        .iter()
        .any(|r| r.backends.contains(&Backend::BuiltinEcho));
    let builtin = match uses_builtin {
        true => Some(builtin::start(internal.clone()).await?),
        false => None,
    };
    let grace = config.server.shutdown_grace;
    let gateway = Arc::new(Gateway::new(
        config.routes,
        config.server,
        Connector::new(builtin),
    ));
    observe(gateway.clone());
    let stop_accepting = CancellationToken::new();
    let connections = TaskTracker::new();
    for listener in listeners {
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, "listening");
        }
        let accept = server::accept_loop(
            listener,
            gateway.clone(),
            stop_accepting.clone(),
            connections.clone(),
        );
        tokio::spawn(accept);
    }
    shutdown.await;
    tracing::info!(grace_ms = grace.as_millis() as u64, "draining");
    stop_accepting.cancel();
    gateway.shutdown.cancel();
    connections.close();
    gateway.relays.close();
    let drained = async {
        connections.wait().await;
        gateway.relays.wait().await;
    };
    if tokio::time::timeout(grace, drained).await.is_err() {
        tracing::warn!(
            connections = connections.len(),
            websockets = gateway.relays.len(),
            "shutdown grace ran out; cutting what is still open"
        );
    }
    internal.cancel();
    Ok(())
}
