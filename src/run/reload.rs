//! Hot config reload: on request (SIGHUP in the binary) and whenever the
//! config file's contents change (checked every `poll` interval).
//!
//! A new config is validated in full first, by [`load_verified`], the same
//! function `wsgate check` uses, so both give the same verdict; a bad one
//! is rejected with every error logged and the running config stays. A good
//! one replaces the routing table (new requests use it; open WebSockets and
//! fallback sessions keep the route they started with) and the listener set.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::check::load_verified;
use super::listeners::ListenerSet;
use crate::config::Config;
use crate::gateway::Gateway;

/// How often the binary checks the config file for changes.
pub const DEFAULT_POLL: Duration = Duration::from_secs(2);

/// How many reload requests may wait while one is applied.
const PENDING_REQUESTS: usize = 4;

/// What a reload attempt did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// The new config is in use.
    Applied {
        /// The addresses listened on now, in config order.
        listening: Vec<SocketAddr>,
    },
    /// The new config was refused; the previous one is still in use.
    Rejected(Vec<String>),
}

/// Asks a running gateway to reload its config file.
#[derive(Debug, Clone)]
pub struct ReloadHandle {
    requests: mpsc::Sender<oneshot::Sender<ReloadOutcome>>,
}

impl ReloadHandle {
    /// Reloads now and returns the outcome; `None` when the gateway no
    /// longer runs.
    pub async fn reload(&self) -> Option<ReloadOutcome> {
        let (tx, rx) = oneshot::channel();
        self.requests.send(tx).await.ok()?;
        rx.await.ok()
    }
}

/// Where `run_with` takes config reloads from.
#[derive(Debug)]
pub struct ReloadSource {
    /// The config file.
    path: PathBuf,
    /// How often its contents are compared; zero turns watching off.
    poll: Duration,
    /// Explicit reload requests.
    requests: mpsc::Receiver<oneshot::Sender<ReloadOutcome>>,
    /// The contents the running config was loaded from (read when the
    /// source is made, right after start-up loaded the file).
    seen: Option<Vec<u8>>,
}

/// A reload source for the file at `path`, watched every `poll`, and the
/// handle that requests reloads explicitly. Make it right after loading the
/// config: a change after this moment is a change to reload.
pub fn channel(path: impl Into<PathBuf>, poll: Duration) -> (ReloadHandle, ReloadSource) {
    let (tx, rx) = mpsc::channel(PENDING_REQUESTS);
    let path = path.into();
    let source = ReloadSource {
        seen: read(&path),
        path,
        poll,
        requests: rx,
    };
    (ReloadHandle { requests: tx }, source)
}

/// Applies new configs to the running gateway.
#[derive(Debug)]
pub(crate) struct Reloader {
    pub(crate) gateway: Arc<Gateway>,
    pub(crate) listeners: ListenerSet,
    /// The config in use, to tell which changes need a restart.
    pub(crate) current: Config,
}

impl Reloader {
    /// Serves reload requests and file changes until `stop` fires.
    pub(crate) async fn run(mut self, mut source: ReloadSource, stop: CancellationToken) {
        let mut seen = source.seen.take();
        let mut tick = (!source.poll.is_zero()).then(|| tokio::time::interval(source.poll));
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                request = source.requests.recv() => {
                    let Some(reply) = request else { return };
                    seen = read(&source.path);
                    let _ = reply.send(self.reload(&source.path, "reload requested").await);
                }
                _ = next_tick(&mut tick) => {
                    let now = read(&source.path);
                    if now != seen {
                        seen = now;
                        self.reload(&source.path, "config file changed").await;
                    }
                }
            }
        }
    }

    /// One reload attempt, logged and counted.
    async fn reload(&mut self, path: &Path, why: &str) -> ReloadOutcome {
        let outcome = match load_verified(path) {
            Ok(config) => self.apply(config).await,
            Err(errors) => ReloadOutcome::Rejected(errors),
        };
        match &outcome {
            ReloadOutcome::Applied { listening } => {
                self.gateway.metrics.config_reload("applied");
                tracing::info!(path = %path.display(), why, ?listening, "config reloaded");
            }
            ReloadOutcome::Rejected(errors) => {
                self.gateway.metrics.config_reload("rejected");
                for error in errors {
                    tracing::error!(path = %path.display(), "{error}");
                }
                tracing::error!(path = %path.display(), why, errors = errors.len(), "config reload rejected; the running config stays");
            }
        }
        outcome
    }

    /// Switches to a validated config: listeners first (the only step that
    /// can still fail), then routes and drain settings.
    async fn apply(&mut self, config: Config) -> ReloadOutcome {
        if let Err(errors) = self.listeners.apply(&config.listeners).await {
            return ReloadOutcome::Rejected(errors);
        }
        self.warn_restart_only(&config);
        self.gateway.replace_routes(config.routes.clone());
        self.gateway.shutdown.configure(&config.server);
        self.current = config;
        ReloadOutcome::Applied {
            listening: self.listeners.addrs(),
        }
    }

    /// Logs the changes a reload cannot apply.
    fn warn_restart_only(&self, new: &Config) {
        let old = &self.current;
        let restart_only = [
            ("admin", old.admin != new.admin),
            ("cluster", old.cluster != new.cluster),
            (
                "server.header_read_timeout",
                old.server.header_read_timeout != new.server.header_read_timeout,
            ),
            (
                "server.log_format",
                old.server.log_format != new.server.log_format,
            ),
            ("server.workers", old.server.workers != new.server.workers),
        ];
        for (key, changed) in restart_only {
            if changed {
                tracing::warn!(key, "changed, but takes effect only after a restart");
            }
        }
    }
}

/// The file's contents, `None` when unreadable.
fn read(path: &Path) -> Option<Vec<u8>> {
    std::fs::read(path).ok()
}

/// The next tick, or never when watching is off.
async fn next_tick(tick: &mut Option<tokio::time::Interval>) {
    match tick {
        Some(tick) => {
            tick.tick().await;
        }
        None => std::future::pending().await,
    }
}
