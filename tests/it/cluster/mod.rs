//! `[cluster]`: fallback sessions served by any instance. Real `wsgate`
//! processes (the binary) on loopback ports, sharing a secret file; raw
//! fallback clients aimed at one instance or another, a real HAProxy
//! spreading every request round-robin, and headless Chromium.

mod bad_input;
mod bench;
mod browser;
mod deploy;
mod failure;
mod forwarding;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::support::fallback::Session;
use crate::support::ops::{admin_get, eventually, free_port, metric};

/// The secret the instances of a test share (64 hex digits, as
/// `openssl rand -hex 32` writes it).
pub const SECRET: &str = "5f1d0c3b7a9e2d4c6b8a0f1e3d5c7b9a1f2e4d6c8b0a9f7e5d3c1b2a4f6e8d0c";

/// How many times [`Node::start`] tries free ports before giving up.
const START_TRIES: usize = 3;

/// One `wsgate` process of a cluster.
pub struct Node {
    child: Option<Child>,
    /// The public listener.
    pub addr: SocketAddr,
    /// The admin listener.
    pub admin: SocketAddr,
    /// The peer listener, also its advertised address.
    pub peer: SocketAddr,
    /// Holds the config, the secret and the log.
    dir: tempfile::TempDir,
}

/// How a node is configured beyond its ports.
#[derive(Clone)]
pub struct Setup {
    /// The cluster secret.
    pub secret: String,
    /// Extra keys of the fallback route.
    pub route: String,
    /// Extra keys of the public listener.
    pub listener: String,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            secret: SECRET.into(),
            route: String::new(),
            listener: String::new(),
        }
    }
}

impl Node {
    /// Starts an instance and waits until it is ready. Ports from
    /// [`free_port`] can be taken by a parallel test before the instance
    /// binds them: one that exits because it cannot listen is started
    /// again on new ports, up to [`START_TRIES`] times.
    pub async fn start(setup: &Setup) -> Node {
        for _ in 0..START_TRIES {
            let mut node = Node::on_free_ports(setup).await;
            if node.spawn_once().await {
                return node;
            }
            let log = std::fs::read_to_string(node.dir.path().join("stderr.log")).unwrap();
            assert!(log.contains("cannot listen"), "the instance exited: {log}");
        }
        panic!("no instance could listen on free ports in {START_TRIES} tries");
    }

    /// A node on ports free right now, its config and secret written.
    async fn on_free_ports(setup: &Setup) -> Node {
        let ports = (free_port().await, free_port().await, free_port().await);
        let at = |port| SocketAddr::from(([127, 0, 0, 1], port));
        let node = Node {
            child: None,
            addr: at(ports.0),
            admin: at(ports.1),
            peer: at(ports.2),
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::write(
            node.dir.path().join("secret"),
            format!("{}\n", setup.secret),
        )
        .unwrap();
        std::fs::write(node.config_path(), node.config(setup)).unwrap();
        node
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("wsgate.toml")
    }

    fn config(&self, setup: &Setup) -> String {
        format!(
            "[server]\nshutdown_grace = \"10s\"\nlog_format = \"json\"\n\n\
             [[listeners]]\nbind = \"{}\"\n{}\n\n[admin]\nbind = \"{}\"\n\n\
             [cluster]\nsecret_file = \"secret\"\nbind = \"{}\"\n\n\
             [[routes]]\npath = \"/\"\nbackends = [\"builtin:echo\"]\nfallback = true\n{}\n",
            self.addr, setup.listener, self.admin, self.peer, setup.route
        )
    }

    /// Starts the process on this node's config and ports (again, after
    /// a kill: a restart).
    pub async fn spawn(&mut self) {
        assert!(self.spawn_once().await, "the instance exited at start");
    }

    /// Starts the process and waits until it is ready (true) or exited.
    async fn spawn_once(&mut self) -> bool {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("stderr.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_wsgate"))
            .arg("--config")
            .arg(self.config_path())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let admin = self.admin;
        let mut exited = false;
        eventually("the instance to be ready", || {
            let child = self.child.as_mut().expect("just spawned");
            exited = child.try_wait().unwrap().is_some();
            async move {
                exited
                    || (tokio::net::TcpStream::connect(admin).await.is_ok()
                        && admin_get(admin, "/readyz").await.status == 200)
            }
        })
        .await;
        if exited {
            self.child = None;
        }
        !exited
    }

    /// Whether the process runs (it was not killed, or was spawned again).
    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// SIGKILL: the instance dies at once, as in a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Sends SIGTERM (the drain).
    pub fn terminate(&self) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
    }

    /// Waits (bounded) for the process to exit; its status.
    pub async fn exited(&mut self) -> std::process::ExitStatus {
        let mut status = None;
        eventually("the instance to exit", || {
            status = status.or(self.child.as_mut().unwrap().try_wait().unwrap());
            std::future::ready(status.is_some())
        })
        .await;
        self.child = None;
        status.unwrap()
    }

    /// The `fields` of every JSON log line whose message is `message`.
    pub fn events(&self, message: &str) -> Vec<serde_json::Value> {
        let log = std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap();
        log.lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .map(|line| line["fields"].clone())
            .filter(|fields| fields["message"] == message)
            .collect()
    }

    /// A metric of this instance right now.
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        metric(self.admin, name, labels).await
    }

    /// This node's advertised address, as peers and ids name it.
    pub fn advertise(&self) -> String {
        self.peer.to_string()
    }

    /// `session`, seen through this instance.
    pub fn via(&self, session: &Session) -> Session {
        Session {
            addr: self.addr,
            id: session.id.clone(),
            origin: session.origin.clone(),
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `n` instances sharing `setup`.
pub async fn nodes(n: usize, setup: &Setup) -> Vec<Node> {
    let mut nodes = Vec::new();
    for _ in 0..n {
        nodes.push(Node::start(setup).await);
    }
    nodes
}

/// The `code` and `reason` of the close event among `events`.
pub fn close_of(events: &[serde_json::Value]) -> Option<(u64, String)> {
    events.iter().find_map(|e| {
        let close = e.get("close")?;
        Some((
            close["code"].as_u64()?,
            close["reason"].as_str()?.to_string(),
        ))
    })
}
