//! Shared test harness: a gateway started from a TOML string on
//! `127.0.0.1:0`, instrumented backends, and raw HTTP/WebSocket clients.
#![allow(dead_code, missing_docs)]

pub mod backend;
pub mod client;
pub mod raw_ws;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use wsgate::config::Config;
use wsgate::server::gateway::Gateway;

/// A running gateway; `stop` drains it and waits for `run` to return.
pub struct TestGateway {
    /// The address of each listener, in config order.
    pub addrs: Vec<SocketAddr>,
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
        let mut listeners = Vec::new();
        for listener in &config.listeners {
            listeners.push(TcpListener::bind(listener.bind).await.unwrap());
        }
        let addrs = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
        let (tx, rx) = oneshot::channel();
        let (observed_tx, observed) = oneshot::channel();
        let shutdown = async {
            let _ = rx.await;
        };
        let task = tokio::spawn(wsgate::run_observed(config, listeners, shutdown, |gw| {
            let _ = observed_tx.send(gw);
        }));
        let gateway = observed.await.expect("the gateway starts");
        TestGateway {
            addrs,
            gateway,
            shutdown: Some(tx),
            task,
        }
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
        let relays = self.gateway.relays.clone();
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
                    self.gateway.relays.len(),
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
