//! The gateway's life from start to exit: start listeners and the admin
//! endpoints, become ready, take reloads, then drain in stages when asked
//! to stop — not ready, tell fallback sessions to reconnect (while still
//! accepting, so long-poll clients can collect that), stop accepting, let
//! HTTP requests in flight finish, close WebSockets with 1001 (spread over
//! `drain_spread`) — all bounded by `shutdown_grace`, after which what is
//! still open is cut and counted in the log.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::admin::{self, AdminState};
use super::drain::{Lifecycle, Phase};
use super::listeners::{ListenerSet, Serving};
use super::metrics::Metrics;
use super::reload::{ReloadSource, Reloader};
use crate::builtin;
use crate::config::Config;
use crate::fallback::bridge;
use crate::server::gateway::Gateway;
use crate::upstream::Connector;

/// After the grace ran out and relays were cut, how long to wait for their
/// tasks to notice before returning anyway.
const CUT_WAIT: Duration = Duration::from_secs(1);

/// Optional parts of a run; `RunOptions::default()` is what `crate::run` uses.
#[derive(Debug, Default)]
pub struct RunOptions {
    /// The admin listener, already bound (tests bind `127.0.0.1:0`). When
    /// `None` and the config has `[admin]`, its `bind` is bound here.
    pub admin: Option<TcpListener>,
    /// Where config reloads come from; `None` disables reload.
    pub reload: Option<ReloadSource>,
    /// Receives the shared gateway state once it exists, so tests and tools
    /// can watch live counts (relays, limits).
    pub observe: Option<tokio::sync::oneshot::Sender<Arc<Gateway>>>,
}

/// What drain waits for.
struct Drain {
    gateway: Arc<Gateway>,
    connections: TaskTracker,
    stop_accepting: CancellationToken,
}

/// Runs the gateway on already-bound public listeners (one per
/// `config.listeners` entry, same order) until `shutdown` completes, then
/// drains within `server.shutdown_grace`.
pub async fn run_with(
    config: Config,
    listeners: Vec<TcpListener>,
    options: RunOptions,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let internal = CancellationToken::new();
    let result = serve(config, listeners, options, shutdown, &internal).await;
    internal.cancel();
    result
}

/// Start, serve until `shutdown`, drain. `internal` stops background tasks
/// (certificate watchers, admin, built-in echo) once this returns.
async fn serve(
    config: Config,
    listeners: Vec<TcpListener>,
    options: RunOptions,
    shutdown: impl Future<Output = ()>,
    internal: &CancellationToken,
) -> io::Result<()> {
    let gateway = gateway(&config, internal).await?;
    if let Some(observer) = options.observe {
        let _ = observer.send(gateway.clone());
    }
    start_admin(&config, options.admin, &gateway, internal).await?;
    let drain = Drain {
        gateway: gateway.clone(),
        connections: TaskTracker::new(),
        stop_accepting: CancellationToken::new(),
    };
    let serving = Serving {
        gateway: gateway.clone(),
        connections: drain.connections.clone(),
        stop_accepting: drain.stop_accepting.clone(),
        internal: internal.clone(),
    };
    let set = ListenerSet::start(&config.listeners, listeners, serving)
        .map_err(|errors| io::Error::other(errors.join("\n")))?;
    let reloads = internal.child_token();
    if let Some(source) = options.reload {
        let reloader = Reloader {
            gateway: gateway.clone(),
            listeners: set,
            current: config,
        };
        tokio::spawn(reloader.run(source, reloads.clone()));
    }
    gateway.lifecycle.set_phase(Phase::Ready);
    shutdown.await;
    reloads.cancel();
    drain.run().await;
    Ok(())
}

/// The shared gateway state for `config`; the built-in echo server always
/// runs (on loopback) so a reload can add a `builtin:echo` route.
async fn gateway(config: &Config, internal: &CancellationToken) -> io::Result<Arc<Gateway>> {
    let builtin = builtin::start(internal.clone()).await?;
    let connector = Connector::new(Some(builtin)).with_metrics(Arc::new(Metrics::default()));
    let gateway = Gateway::new(config.routes.clone(), config.server.clone(), connector);
    gateway.lifecycle.configure(&config.server);
    Ok(Arc::new(gateway))
}

/// Starts `/metrics`, `/healthz`, `/readyz` on `bound`, else on
/// `[admin] bind`, else not at all.
async fn start_admin(
    config: &Config,
    bound: Option<TcpListener>,
    gateway: &Arc<Gateway>,
    internal: &CancellationToken,
) -> io::Result<()> {
    let listener = match (bound, &config.admin) {
        (Some(listener), _) => listener,
        (None, Some(admin)) => TcpListener::bind(admin.bind).await.map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot listen on {} (admin): {e}", admin.bind),
            )
        })?,
        (None, None) => return Ok(()),
    };
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "admin endpoints listening");
    }
    let state = AdminState {
        metrics: gateway.metrics.clone(),
        lifecycle: gateway.lifecycle.clone(),
    };
    tokio::spawn(admin::serve(listener, state, internal.clone()));
    Ok(())
}

impl Drain {
    /// The staged drain, bounded by the grace period.
    async fn run(self) {
        let lifecycle: &Lifecycle = &self.gateway.lifecycle;
        let grace = lifecycle.grace();
        tracing::info!(
            grace_ms = grace.as_millis() as u64,
            spread_ms = lifecycle.spread().as_millis() as u64,
            websockets = self.gateway.relays.len(),
            "draining"
        );
        let deadline = tokio::time::Instant::now() + grace;
        lifecycle.set_phase(Phase::Draining);
        self.end_fallback_sessions(grace).await;
        self.stop_accepting.cancel();
        self.gateway.shutdown.cancel();
        self.connections.close();
        self.gateway.relays.close();
        if tokio::time::timeout_at(deadline, self.wait()).await.is_ok() {
            tracing::info!("drained");
            return;
        }
        tracing::warn!(
            connections = self.connections.len(),
            websockets = self.gateway.relays.len(),
            fallback_sessions = lifecycle.fallback.len(),
            "shutdown grace ran out; cutting what is still open"
        );
        lifecycle.cut();
        let _ = tokio::time::timeout(CUT_WAIT, self.gateway.relays.wait()).await;
    }

    /// The first stage, which takes time only while fallback sessions are
    /// open: each is told 1012 while the listeners still accept, so that a
    /// long-poll client between two polls can collect it; waits until every
    /// client acknowledged, at most `SHUTDOWN_ACK_WAIT` (half the grace).
    async fn end_fallback_sessions(&self, grace: Duration) {
        let lifecycle: &Lifecycle = &self.gateway.lifecycle;
        lifecycle.fallback.close();
        lifecycle.fallback_drain.cancel();
        if lifecycle.fallback.is_empty() {
            return;
        }
        let bound = bridge::SHUTDOWN_ACK_WAIT.min(grace / 2);
        if tokio::time::timeout(bound, lifecycle.fallback.wait())
            .await
            .is_err()
        {
            tracing::info!(
                fallback_sessions = lifecycle.fallback.len(),
                "not every fallback client collected its 1012 in time"
            );
        }
    }

    /// Every connection, relay and fallback session has ended.
    async fn wait(&self) {
        self.connections.wait().await;
        self.gateway.relays.wait().await;
        self.gateway.lifecycle.fallback.wait().await;
    }
}
