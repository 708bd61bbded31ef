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
//! builtin        the in-process echo backend and demo page of the default config
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
pub mod proxy;
pub mod routing;
pub mod server;
pub mod tls;
pub mod upstream;
pub mod ws;

use std::future::Future;
use std::io;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use config::{Backend, Config, Listener};
use server::gateway::Gateway;
use server::Frontend;
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
    let internal = CancellationToken::new();
    let frontends = frontends(&config.listeners, &internal).inspect_err(|_| internal.cancel())?;
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
    let stop_accepting = CancellationToken::new();
    let connections = TaskTracker::new();
    for (listener, frontend) in listeners.into_iter().zip(frontends) {
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, tls = matches!(frontend, Frontend::Tls(_)), "listening");
        }
        let accept = server::accept_loop(
            listener,
            frontend,
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

/// What each listener does with its connections, TLS loaded and reload
/// watchers started (they stop with `stop`). A certificate that does not
/// load fails start-up with every problem named.
fn frontends(listeners: &[Listener], stop: &CancellationToken) -> io::Result<Vec<Frontend>> {
    let mut frontends = Vec::new();
    let mut errors = Vec::new();
    for (i, listener) in listeners.iter().enumerate() {
        let at = format!("listeners[{i}].tls");
        let frontend = match (&listener.tls, listener.redirect_https) {
            (None, None) => Frontend::Plain,
            (None, Some(port)) => Frontend::RedirectHttps(port),
            (Some(tls), _) => match tls::listener::TlsListener::load(tls, &at) {
                Ok((loaded, warnings)) => {
                    warnings.iter().for_each(|w| tracing::warn!("{w}"));
                    let loaded = Arc::new(loaded);
                    let resolver = loaded.resolver().clone();
                    tls::reload::spawn_watcher(tls.clone(), at, resolver, stop.clone());
                    Frontend::Tls(loaded)
                }
                Err(e) => {
                    errors.extend(e);
                    continue;
                }
            },
        };
        frontends.push(frontend);
    }
    match errors.is_empty() {
        true => Ok(frontends),
        false => Err(io::Error::other(errors.join("\n"))),
    }
}
