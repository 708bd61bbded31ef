//! The public listeners as a set that config reload can change while the
//! gateway runs: listeners that appear are bound, listeners that disappear
//! stop accepting, listeners whose settings changed (TLS, redirect) keep
//! their socket and restart their accept loop with the new settings.
//! Connections already accepted are never touched: the drain tracks them,
//! not the listener. When the drain
//! starts every socket is closed, so new clients are refused at once.
//!
//! Each listener runs one accept loop per [worker](super::workers), each
//! holding a duplicate of the one socket, so a connection is served on the
//! worker that accepted it.

use std::net::SocketAddr;
use std::sync::Arc;

use std::net::TcpListener as StdListener;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::workers::Workers;
use crate::acme::Acme;
use crate::config::Listener;
use crate::gateway::Gateway;
use crate::server::{self, Frontend};
use crate::telemetry::certificates::ServedCertificates;
use crate::tls;
use crate::tls::listener::TlsListener;

/// One listener with its accept loop running.
#[derive(Debug)]
struct Running {
    /// Its settings, to see whether a reload changed them.
    config: Listener,
    /// The address it actually bound (port 0 resolved).
    addr: SocketAddr,
    /// Stops the accept loop (which then hands the socket back) and the TLS
    /// certificate watcher.
    stop: CancellationToken,
    /// The accept loops, one per worker; each yields its copy of the socket
    /// when stopped by a reload, and `None` once the drain closed it.
    tasks: Vec<JoinHandle<Option<StdListener>>>,
}

/// The running public listeners, in config order.
#[derive(Debug)]
pub(crate) struct ListenerSet {
    /// What every listener serves; its drain handle stops them.
    gateway: Arc<Gateway>,
    /// The runtimes accept loops (and so connections) run on.
    workers: Workers,
    running: Vec<Running>,
}

impl ListenerSet {
    /// Starts accept loops on already-bound sockets (one per `configs` entry).
    pub(crate) fn start(
        configs: &[Listener],
        bound: Vec<TcpListener>,
        gateway: Arc<Gateway>,
        workers: Workers,
    ) -> Result<Self, Vec<String>> {
        let mut set = ListenerSet {
            gateway,
            workers,
            running: Vec::new(),
        };
        let bound = bound
            .into_iter()
            .map(|l| l.into_std())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| vec![format!("cannot take over a listener: {e}")])?;
        let prepared = prepare(configs.iter().enumerate().zip(bound), &set.gateway)?;
        for (config, listener, frontend, stop) in prepared {
            set.running
                .push(set.spawn(config, listener, frontend, stop));
        }
        Ok(set)
    }

    /// The addresses listened on, in config order.
    pub(crate) fn addrs(&self) -> Vec<SocketAddr> {
        self.running.iter().map(|r| r.addr).collect()
    }

    /// Makes the running set match `configs`. New sockets are bound and new
    /// TLS settings loaded before anything changes: if one fails, nothing
    /// changes and every problem is returned.
    pub(crate) async fn apply(&mut self, configs: &[Listener]) -> Result<(), Vec<String>> {
        let mut to_prepare = Vec::new();
        for (i, config) in configs.iter().enumerate() {
            let unchanged = self.running.iter().any(|r| &r.config == config);
            if !unchanged {
                to_prepare.push((i, config));
            }
        }
        let sockets = self.sockets_for(&to_prepare).await?;
        let prepared = prepare(to_prepare.into_iter().zip(sockets), &self.gateway)?;
        let mut old: Vec<Running> = std::mem::take(&mut self.running);
        let mut fresh = prepared.into_iter();
        for config in configs {
            if let Some(pos) = old.iter().position(|r| &r.config == config) {
                self.running.push(old.remove(pos));
            } else if let Some((config, listener, frontend, stop)) = fresh.next() {
                // `None`: the drain began meanwhile, there is nothing to serve.
                if let Some(listener) = self.take_socket(&mut old, &config, listener).await {
                    self.running
                        .push(self.spawn(config, listener, frontend, stop));
                }
            }
        }
        for removed in old {
            tracing::info!(addr = %removed.addr, "listener removed by reload");
            removed.stop.cancel();
        }
        Ok(())
    }

    /// A socket for each listener to (re)start: `None` where a running
    /// listener on the same address will hand its socket over, else bound now.
    async fn sockets_for(
        &self,
        configs: &[(usize, &Listener)],
    ) -> Result<Vec<Option<StdListener>>, Vec<String>> {
        let mut sockets = Vec::new();
        let mut errors = Vec::new();
        for (i, config) in configs {
            if self.running.iter().any(|r| r.config.bind == config.bind) {
                sockets.push(None);
                continue;
            }
            match TcpListener::bind(config.bind)
                .await
                .and_then(|l| l.into_std())
            {
                Ok(listener) => sockets.push(Some(listener)),
                Err(e) => errors.push(format!(
                    "listeners[{i}].bind: cannot listen on {}: {e}",
                    config.bind
                )),
            }
        }
        match errors.is_empty() {
            true => Ok(sockets),
            false => Err(errors),
        }
    }

    /// The socket for `config`: the freshly bound one, or the one the
    /// running listener on the same address hands back once stopped
    /// (`None` if the drain closed it first).
    async fn take_socket(
        &self,
        old: &mut Vec<Running>,
        config: &Listener,
        bound: Option<StdListener>,
    ) -> Option<StdListener> {
        if let Some(listener) = bound {
            return Some(listener);
        }
        let pos = old.iter().position(|r| r.config.bind == config.bind);
        let running = old.remove(pos.expect("a running listener on this address"));
        running.stop.cancel();
        tracing::info!(addr = %running.addr, "listener settings changed by reload");
        let mut socket = None;
        for task in running.tasks {
            // Every copy refers to the same socket: keep one, close the rest.
            let copy = task.await.expect("accept loops do not panic");
            socket = socket.or(copy);
        }
        socket
    }

    /// Starts the accept loops of one listener, one per worker.
    fn spawn(
        &self,
        config: Listener,
        listener: StdListener,
        frontend: Frontend,
        stop: CancellationToken,
    ) -> Running {
        let addr = listener.local_addr().unwrap_or(config.bind);
        let workers = self.workers.count();
        tracing::info!(%addr, tls = matches!(frontend, Frontend::Tls(_)), workers, "listening");
        let stop_accepting = self.gateway.shutdown.accepting_stopped();
        let accept_stop = stop_accepting.child_token();
        let (removed, drained) = (stop.clone(), accept_stop.clone());
        tokio::spawn(async move {
            tokio::select! {
                () = removed.cancelled() => drained.cancel(),
                () = drained.cancelled() => {}
            }
        });
        let edge = server::Edge::new(&config);
        let mut copies = Vec::new();
        for _ in 1..self.workers.count() {
            match listener.try_clone() {
                Ok(copy) => copies.push(copy),
                Err(e) => {
                    tracing::warn!(%addr, error = %e, "cannot share the listener with another worker")
                }
            }
        }
        copies.insert(0, listener);
        let tasks = copies
            .into_iter()
            .enumerate()
            .map(|(i, socket)| {
                let accept = accept_on_worker(
                    socket,
                    frontend.clone(),
                    edge.clone(),
                    self.gateway.clone(),
                    accept_stop.clone(),
                );
                self.workers.spawn(i, accept)
            })
            .collect();
        Running {
            config,
            addr,
            stop,
            tasks,
        }
    }
}

/// One worker's accept loop on its copy of the socket, registered with
/// that worker's runtime; yields the copy back when a reload stops it.
async fn accept_on_worker(
    socket: StdListener,
    frontend: Frontend,
    edge: server::Edge,
    gateway: Arc<Gateway>,
    stop: CancellationToken,
) -> Option<StdListener> {
    let listener = match TcpListener::from_std(socket) {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!(error = %e, "cannot register a listener with its worker");
            return None;
        }
    };
    let drain = gateway.shutdown.accepting_stopped().clone();
    let accept = server::accept_loop(listener, frontend, edge, gateway, stop);
    close_on_drain(accept, drain).await?.into_std().ok()
}

/// Runs an accept loop; when it stopped because the drain began, closes
/// the socket at once. Held open, it would keep completing TCP handshakes
/// into its backlog that nobody serves: those clients would hang until the
/// process exits instead of being refused and trying another instance.
async fn close_on_drain(
    accept: impl std::future::Future<Output = TcpListener>,
    drain: CancellationToken,
) -> Option<TcpListener> {
    let listener = accept.await;
    (!drain.is_cancelled()).then_some(listener)
}

/// A listener ready to start: settings, socket, frontend, stop token.
type Prepared<S> = (Listener, S, Frontend, CancellationToken);

/// Builds the frontend (TLS loaded, certificate watcher and ACME started)
/// of each listener; on any error, stops the watchers already started.
fn prepare<'a, S>(
    items: impl IntoIterator<Item = ((usize, &'a Listener), S)>,
    gateway: &Gateway,
) -> Result<Vec<Prepared<S>>, Vec<String>> {
    let mut ready = Vec::new();
    let mut errors = Vec::new();
    for ((i, config), socket) in items {
        let stop = gateway.shutdown.stopped().child_token();
        match frontend(config, i, &stop, gateway) {
            Ok(frontend) => ready.push((config.clone(), socket, frontend, stop)),
            Err(e) => errors.extend(e),
        }
    }
    if errors.is_empty() {
        return Ok(ready);
    }
    ready.iter().for_each(|(_, _, _, stop)| stop.cancel());
    Err(errors)
}

/// What a listener does with its connections; a TLS listener's certificate
/// watcher and ACME tasks run until `stop` fires.
fn frontend(
    listener: &Listener,
    i: usize,
    stop: &CancellationToken,
    gateway: &Gateway,
) -> Result<Frontend, Vec<String>> {
    let at = format!("listeners[{i}].tls");
    Ok(match (&listener.tls, listener.redirect_https) {
        (None, None) => Frontend::Plain,
        (None, Some(port)) => Frontend::RedirectHttps(port),
        (Some(tls), _) => {
            // Every TLS listener answers TLS-ALPN-01 validations: the CA
            // connects to port 443, whichever listener has the ACME table.
            let challenges = gateway.acme_challenges.clone();
            let (loaded, warnings) = TlsListener::load(tls, &at, Some(challenges.clone()))?;
            warnings.iter().for_each(|w| tracing::warn!("{w}"));
            let loaded = Arc::new(loaded);
            let resolver = loaded.resolver().clone();
            let served: Arc<dyn ServedCertificates> = resolver.clone();
            gateway.metrics.watch_certificates(Arc::downgrade(&served));
            if let Some(settings) = &tls.acme {
                let metrics = gateway.metrics.clone();
                let acme = Acme::new(settings, &format!("{at}.acme"), challenges, metrics);
                acme.start(resolver.clone(), stop.clone());
            }
            tls::reload::spawn_watcher(tls.clone(), at, resolver, stop.clone());
            Frontend::Tls(loaded)
        }
    })
}
