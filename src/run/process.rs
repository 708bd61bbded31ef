//! The process around [`run_with`](super::run_with): the tokio runtime,
//! the signals (SIGTERM/SIGINT drain, a second one exits at once, SIGHUP
//! reloads), and the public listeners bound from the config.
//!
//! `WSGATE_WORKER_THREADS=N` caps the tokio runtime at N worker threads
//! (default: one per CPU; 1 runs everything on the main thread);
//! `bench/run.sh` sets 1 to compare with single-worker nginx and HAProxy.

use std::path::PathBuf;

use tokio::net::TcpListener;
use tokio::signal::unix::{signal, Signal, SignalKind};

use super::{reload, run_with, RunOptions};
use crate::config::Config;

/// Environment variable that sets the number of runtime worker threads.
const WORKER_THREADS_ENV: &str = "WSGATE_WORKER_THREADS";

/// Binds the listeners and runs until SIGTERM or SIGINT; reloads `file`
/// on SIGHUP and when it changes.
pub fn serve(config: Config, file: Option<PathBuf>) -> Result<(), String> {
    let runtime = build_runtime()?;
    runtime.block_on(async move {
        let signals = StopSignals::install();
        let mut listeners = Vec::new();
        for listener in &config.listeners {
            let bound = TcpListener::bind(listener.bind)
                .await
                .map_err(|e| format!("cannot listen on {}: {e}", listener.bind))?;
            listeners.push(bound);
        }
        let mut options = RunOptions::default();
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
    })
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

/// The runtime: one worker per CPU, or `WSGATE_WORKER_THREADS` if set. One
/// thread means the single-threaded scheduler: accept loops, handshakes and
/// relays then share one thread with no cross-thread wake-ups at all (with a
/// one-worker multi-threaded runtime, the accept loop in `block_on` and the
/// connection tasks would sit on two threads).
fn build_runtime() -> Result<tokio::runtime::Runtime, String> {
    let threads = worker_threads()?;
    let mut builder = match threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    if let Some(threads) = threads.filter(|&n| n > 1) {
        builder.worker_threads(threads);
    }
    builder
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
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
