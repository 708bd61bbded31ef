//! Assembly: the gateway's life from start to exit. Start listeners and the
//! admin endpoints, become ready, take reloads, then drain in the stages the
//! [`Shutdown`] handle names, in order — all bounded by `shutdown_grace`,
//! after which what is still open is cut and counted in the log.
//!
//! ```text
//! listeners   the public listener set, changeable at run time
//! reload      SIGHUP / file-change reload with full validation
//! check       a config validated in full, certificates included
//! process     the runtimes, the signals, the listeners bound
//! quick       `wsgate proxy`: a config built from flags, no file
//! workers     thread-per-core: where connections are accepted and served
//! ```

pub mod check;
mod listeners;
pub mod process;
pub mod quick;
pub mod reload;
pub mod workers;

use std::future::Future;
use std::io;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::builtin;
use crate::cluster::Cluster;
use crate::config::{Config, HostPattern, OriginPolicy, Route};
use crate::gateway::Gateway;
use crate::server::admin::{self, AdminState};
use crate::shutdown::Shutdown;
use crate::telemetry::metrics::Metrics;
use crate::upstream::{backend_label, Connector};
use listeners::ListenerSet;
use reload::{ReloadSource, Reloader};

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
    /// The runtimes that accept and serve connections; by default only the
    /// one `run_with` runs on.
    pub workers: workers::Workers,
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
    let drain = Shutdown::new(&config.server);
    let result = serve(config, listeners, options, shutdown, &drain).await;
    drain.finish();
    result
}

/// Start, serve until `stop`, drain.
async fn serve(
    config: Config,
    listeners: Vec<TcpListener>,
    options: RunOptions,
    stop: impl Future<Output = ()>,
    shutdown: &Shutdown,
) -> io::Result<()> {
    let gateway = gateway(&config, shutdown).await?;
    config.routes.iter().for_each(log_route);
    if let Some(observer) = options.observe {
        let _ = observer.send(gateway.clone());
    }
    start_admin(&config, options.admin, &gateway).await?;
    start_peers(&config, &gateway).await?;
    let set = ListenerSet::start(
        &config.listeners,
        listeners,
        gateway.clone(),
        options.workers,
    )
    .map_err(|errors| io::Error::other(errors.join("\n")))?;
    let reloads = shutdown.stopped().child_token();
    if let Some(source) = options.reload {
        let reloader = Reloader {
            gateway: gateway.clone(),
            listeners: set,
            current: config,
        };
        tokio::spawn(reloader.run(source, reloads.clone()));
    }
    shutdown.ready();
    stop.await;
    reloads.cancel();
    drain(shutdown).await;
    Ok(())
}

/// The shared gateway state for `config`; the built-in echo server always
/// runs (on loopback) so a reload can add a `builtin:echo` route.
async fn gateway(config: &Config, shutdown: &Shutdown) -> io::Result<Arc<Gateway>> {
    let builtin = builtin::start(shutdown.stopped().clone()).await?;
    let connector = Connector::new(Some(builtin)).with_metrics(Arc::new(Metrics::default()));
    let routes = config.routes.clone();
    let metrics = connector.metrics().clone();
    let mut gateway = Gateway::new(routes, config.server.clone(), connector, shutdown.clone());
    if let Some(settings) = &config.cluster {
        let closing = shutdown.closing().clone();
        gateway = gateway.with_cluster(Cluster::new(settings, metrics, closing));
    }
    Ok(Arc::new(gateway))
}

/// One start-up line per route: what it matches and where it goes.
fn log_route(route: &Route) {
    let host = match &route.host {
        HostPattern::Any => "*".to_string(),
        HostPattern::Exact(host) => host.clone(),
        HostPattern::Suffix(suffix) => format!("*{suffix}"),
    };
    let origins = match &route.origins {
        OriginPolicy::SameOrigin => "same-origin".to_string(),
        OriginPolicy::Any => "*".to_string(),
        OriginPolicy::List(list) => list.len().to_string() + " listed",
    };
    let backends: Vec<String> = route.backends.iter().map(backend_label).collect();
    tracing::info!(
        route = %route.name,
        host,
        path = %route.path,
        backends = %backends.join(","),
        origins,
        fallback = route.fallback,
        "route"
    );
}

/// Binds `[cluster] bind` and serves other instances' forwarded requests
/// on it; nothing without `[cluster]`.
async fn start_peers(config: &Config, gateway: &Arc<Gateway>) -> io::Result<()> {
    let Some(cluster) = &config.cluster else {
        return Ok(());
    };
    let listener = TcpListener::bind(cluster.bind).await.map_err(|e| {
        let why = format!("cannot listen on {} (cluster.bind): {e}", cluster.bind);
        io::Error::new(e.kind(), why)
    })?;
    let addr = listener.local_addr().unwrap_or(cluster.bind);
    tracing::info!(%addr, advertise = %cluster.advertise, "cluster peer listener listening");
    tokio::spawn(crate::server::peer::accept_loop(listener, gateway.clone()));
    Ok(())
}

/// Starts `/metrics`, `/healthz`, `/readyz`, `/backends` on `bound`, else on
/// `[admin] bind`, else not at all.
async fn start_admin(
    config: &Config,
    bound: Option<TcpListener>,
    gateway: &Gateway,
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
        shutdown: gateway.shutdown.clone(),
        backends: gateway.backends.clone(),
    };
    let stop = gateway.shutdown.stopped().clone();
    tokio::spawn(admin::serve(listener, state, stop));
    Ok(())
}

/// The drain, stage by stage, bounded by the grace period.
async fn drain(shutdown: &Shutdown) {
    let grace = shutdown.grace();
    let (_, websockets, _) = shutdown.open();
    tracing::info!(
        grace_ms = grace.as_millis() as u64,
        spread_ms = shutdown.spread().as_millis() as u64,
        websockets,
        "draining"
    );
    let deadline = tokio::time::Instant::now() + grace;
    shutdown.begin();
    let untold = shutdown.sessions_told().await;
    if untold > 0 {
        tracing::info!(
            fallback_sessions = untold,
            "not every fallback client collected its 1012 in time"
        );
    }
    shutdown.stop_accepting();
    shutdown.close();
    if tokio::time::timeout_at(deadline, shutdown.ended())
        .await
        .is_ok()
    {
        tracing::info!("drained");
        return;
    }
    let (connections, websockets, fallback_sessions) = shutdown.open();
    tracing::warn!(
        connections,
        websockets,
        fallback_sessions,
        "shutdown grace ran out; cutting what is still open"
    );
    shutdown.cut().await;
}
