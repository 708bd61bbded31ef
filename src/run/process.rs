//! The process around [`run_with`](super::run_with): the runtimes, the
//! signals (SIGTERM/SIGINT drain, a second one exits at once, SIGHUP
//! reloads), and the public listeners bound from the config.
//!
//! By default the process runs `server.workers` single-threaded runtimes
//! ([thread-per-core](super::workers)): the main thread's (which also runs
//! the admin endpoints, reloads and the drain) and one thread per further
//! worker. `WSGATE_WORKER_THREADS=N` overrides that, for comparisons: 1 is
//! one worker (`server.workers = 1`); N > 1 runs the one work-stealing
//! tokio runtime with N threads that wsgate used before workers existed.

use std::path::PathBuf;

use tokio::net::TcpListener;
use tokio::signal::unix::{signal, Signal, SignalKind};

use super::workers::{self, WorkerThreads, Workers};
use super::{reload, run_with, RunOptions};
use crate::config::Config;

/// Environment variable that overrides `server.workers` (see the module doc).
const WORKER_THREADS_ENV: &str = "WSGATE_WORKER_THREADS";

/// Binds the listeners and runs until SIGTERM or SIGINT; reloads `file`
/// on SIGHUP and when it changes.
pub fn serve(config: Config, file: Option<PathBuf>) -> Result<(), String> {
    let layout = Layout::choose(config.server.workers)?;
    let runtime = layout.runtime()?;
    let threads = match layout {
        Layout::Workers(count) => Some(
            WorkerThreads::start(count).map_err(|e| format!("cannot start the workers: {e}"))?,
        ),
        Layout::WorkStealing(_) => None,
    };
    let workers = threads
        .as_ref()
        .map_or_else(Workers::current, WorkerThreads::workers);
    tracing::info!(workers = workers.count(), ?layout, "runtime started");
    let result = runtime.block_on(async move {
        let signals = StopSignals::install();
        let mut listeners = Vec::new();
        for listener in &config.listeners {
            let bound = TcpListener::bind(listener.bind)
                .await
                .map_err(|e| format!("cannot listen on {}: {e}", listener.bind))?;
            listeners.push(bound);
        }
        let mut options = RunOptions {
            workers,
            ..RunOptions::default()
        };
        if let Some(file) = file {
            let (handle, source) = reload::channel(file, reload::DEFAULT_POLL);
            // Registered here, not in the task: a SIGHUP that arrives before
            // the task first runs must reload, not be lost.
            match signal(SignalKind::hangup()) {
                Ok(hangup) => {
                    tokio::spawn(reload_on_hangup(handle, hangup));
                }
                Err(e) => tracing::warn!(error = %e, "cannot watch SIGHUP; config reloads on file change only"),
            }
            options.reload = Some(source);
        }
        run_with(config, listeners, options, signals.first())
            .await
            .map_err(|e| e.to_string())
    });
    if let Some(threads) = threads {
        threads.stop();
    }
    result
}

/// Asks for a config reload on every SIGHUP (the outcome is logged by the
/// reloader).
async fn reload_on_hangup(handle: reload::ReloadHandle, mut hangup: Signal) {
    while hangup.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading config");
        if handle.reload().await.is_none() {
            return;
        }
    }
}

/// How the process spreads its work over threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// Thread-per-core: this many single-threaded runtimes, each owning the
    /// connections it accepts (the default, from `server.workers`).
    Workers(usize),
    /// One work-stealing runtime with this many threads
    /// (`WSGATE_WORKER_THREADS` > 1; kept to compare against).
    WorkStealing(usize),
}

impl Layout {
    /// `WSGATE_WORKER_THREADS` if set, else `server.workers`.
    fn choose(configured: usize) -> Result<Self, String> {
        Ok(match worker_threads()? {
            Some(1) => Layout::Workers(1),
            Some(threads) => Layout::WorkStealing(threads),
            None => Layout::Workers(workers::resolve(configured)),
        })
    }

    /// The runtime of the main thread: worker 0, or the work-stealing pool.
    fn runtime(self) -> Result<tokio::runtime::Runtime, String> {
        let mut builder = match self {
            Layout::Workers(_) => tokio::runtime::Builder::new_current_thread(),
            Layout::WorkStealing(threads) => {
                let mut builder = tokio::runtime::Builder::new_multi_thread();
                builder.worker_threads(threads);
                builder
            }
        };
        builder
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the runtime: {e}"))
    }
}

/// `WSGATE_WORKER_THREADS`, if set: a positive integer.
fn worker_threads() -> Result<Option<usize>, String> {
    let Ok(value) = std::env::var(WORKER_THREADS_ENV) else {
        return Ok(None);
    };
    match value.parse::<usize>() {
        Ok(threads) if threads > 0 => Ok(Some(threads)),
        _ => Err(format!(
            "{WORKER_THREADS_ENV}={value:?}: expected a positive integer"
        )),
    }
}

/// SIGTERM and SIGINT, installed before `run_with` starts, so a signal
/// that arrives as soon as `/readyz` answers 200 already drains instead of
/// getting the default action (killed, no drain).
struct StopSignals {
    /// SIGTERM and SIGINT; `None` when they cannot be watched.
    streams: Option<(Signal, Signal)>,
}

impl StopSignals {
    /// Installs both handlers (inside the runtime).
    fn install() -> Self {
        let streams = match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(term), Ok(int)) => Some((term, int)),
            _ => None,
        };
        StopSignals { streams }
    }

    /// Completes on the first SIGTERM or SIGINT; a second one exits at
    /// once (status 1), even in the middle of the drain.
    async fn first(self) {
        let Some((mut term, mut int)) = self.streams else {
            tracing::error!("cannot install signal handlers; stop with SIGKILL");
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: draining"),
            _ = int.recv() => tracing::info!("SIGINT: draining"),
        }
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            tracing::warn!("second signal: exiting now");
            std::process::exit(1);
        });
    }
}
