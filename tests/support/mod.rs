//! Shared test harness: a gateway started from a TOML string on
//! `127.0.0.1:0`, instrumented backends, and raw HTTP/WebSocket clients.
#![allow(dead_code, missing_docs)]

pub mod backend;
pub mod client;
pub mod fallback;
pub mod tls;

use std::net::SocketAddr;
use std::path::Path;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use wsgate::config::Config;

/// A running gateway; `stop` drains it and waits for `run` to return.
pub struct TestGateway {
    /// The address of each listener, in config order.
    pub addrs: Vec<SocketAddr>,
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
        let task = tokio::spawn(wsgate::run(config, listeners, async {
            let _ = rx.await;
        }));
        TestGateway {
            addrs,
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
