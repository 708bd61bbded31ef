//! Shared test harness: a gateway started from a TOML string on
//! `127.0.0.1:0`, instrumented backends, and raw HTTP/WebSocket clients.

pub mod auth;
pub mod backend;
pub mod client;
pub mod fallback;
pub mod h2;
pub mod logs;
pub mod named;
pub mod ops;
pub mod pebble;
pub mod raw_ws;
pub mod tls;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use wsgate::config::Config;
use wsgate::gateway::Gateway;
use wsgate::run::workers::Workers;

/// A running gateway; `stop` drains it and waits for `run` to return.
pub struct TestGateway {
    /// The address of each listener, in config order.
    pub addrs: Vec<SocketAddr>,
    /// The admin endpoints (`/metrics`, `/healthz`, `/readyz`).
    pub admin: SocketAddr,
    /// Reloads the config file, for gateways started with `start_file`.
    pub reload: Option<wsgate::run::reload::ReloadHandle>,
    /// The gateway's shared state, to watch live counts (relays, limits).
    pub gateway: Arc<Gateway>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl TestGateway {
    /// Starts a gateway; every listener's `bind` should be `127.0.0.1:0`.
    pub async fn start(toml: &str) -> TestGateway {
        let config =
            Config::parse(toml, Path::new(".")).unwrap_or_else(|e| panic!("test config: {e}"));
        Self::launch(config, None, Workers::current()).await
    }

    /// Starts a gateway that accepts and serves on `workers`.
    pub async fn start_with_workers(toml: &str, workers: Workers) -> TestGateway {
        let config =
            Config::parse(toml, Path::new(".")).unwrap_or_else(|e| panic!("test config: {e}"));
        Self::launch(config, None, workers).await
    }

    /// Starts a gateway on listeners the test bound already (one per
    /// `[[listeners]]`, same order), e.g. because a CA must be told their
    /// ports before the gateway starts.
    pub async fn start_on(toml: &str, listeners: Vec<TcpListener>) -> TestGateway {
        let config =
            Config::parse(toml, Path::new(".")).unwrap_or_else(|e| panic!("test config: {e}"));
        Self::launch_on(config, listeners, None, Workers::current()).await
    }

    /// Starts a gateway from a config file that `reload` (and, when `poll`
    /// is not zero, a change of the file) reloads.
    pub async fn start_file(path: &Path, poll: std::time::Duration) -> TestGateway {
        Self::start_file_on(path, poll, Workers::current()).await
    }

    /// As [`TestGateway::start_file`], accepting and serving on `workers`.
    pub async fn start_file_on(
        path: &Path,
        poll: std::time::Duration,
        workers: Workers,
    ) -> TestGateway {
        let config = wsgate::run::check::load_verified(path)
            .unwrap_or_else(|e| panic!("test config: {e:?}"));
        let (handle, source) = wsgate::run::reload::channel(path, poll);
        let mut gw = Self::launch(config, Some(source), workers).await;
        gw.reload = Some(handle);
        gw
    }

    async fn launch(
        config: Config,
        reload: Option<wsgate::run::reload::ReloadSource>,
        workers: Workers,
    ) -> TestGateway {
        let mut listeners = Vec::new();
        for listener in &config.listeners {
            listeners.push(TcpListener::bind(listener.bind).await.unwrap());
        }
        Self::launch_on(config, listeners, reload, workers).await
    }

    async fn launch_on(
        config: Config,
        listeners: Vec<TcpListener>,
        reload: Option<wsgate::run::reload::ReloadSource>,
        workers: Workers,
    ) -> TestGateway {
        let addrs = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
        let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin_addr = admin.local_addr().unwrap();
        let (observed_tx, observed) = oneshot::channel();
        let options = wsgate::RunOptions {
            admin: Some(admin),
            reload,
            observe: Some(observed_tx),
            workers,
        };
        let (tx, rx) = oneshot::channel();
        let shutdown = async {
            let _ = rx.await;
        };
        let task = tokio::spawn(wsgate::run_with(config, listeners, options, shutdown));
        let gateway = observed.await.expect("the gateway starts");
        TestGateway {
            addrs,
            admin: admin_addr,
            reload: None,
            gateway,
            shutdown: Some(tx),
            task,
        }
    }

    /// Starts the drain without waiting for it (see [`TestGateway::join`]).
    pub fn begin_stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Waits until `run` returns (after [`TestGateway::begin_stop`]).
    pub async fn join(mut self) {
        (&mut self.task).await.unwrap().unwrap();
    }

    /// The first listener's address.
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// `ws://127.0.0.1:port{path}`.
    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr(), path)
    }

    /// Waits (bounded) until no client connection and no relay task is
    /// left: the proof that a session leaked nothing. The relay tracker is
    /// closed only to wait on it (spawning still works), then reopened.
    pub async fn wait_quiet(&self) {
        let relays = self.gateway.shutdown.relays().clone();
        let quiet = async {
            self.gateway.limits.until_no_connections().await;
            relays.close();
            relays.wait().await;
            relays.reopen();
        };
        tokio::time::timeout(client::WAIT, quiet)
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "still open: {} relays, {} connections",
                    self.gateway.shutdown.relays().len(),
                    self.gateway.limits.open_connections()
                )
            });
    }

    /// Triggers the drain and waits until `run` returns.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        (&mut self.task).await.unwrap().unwrap();
    }
}

/// A one-route config in front of `backends`, with extra route keys.
pub fn one_route(backends: &[String], route_extra: &str) -> String {
    let list: Vec<String> = backends.iter().map(|b| format!("{b:?}")).collect();
    format!(
        "[server]\nshutdown_grace = \"5s\"\n\n[[listeners]]\nbind = \"127.0.0.1:0\"\n\n[[routes]]\npath = \"/\"\nbackends = [{}]\n{route_extra}\n",
        list.join(", ")
    )
}
