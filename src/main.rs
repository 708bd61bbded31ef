//! The `wsgate` binary: parses the command line, sets up logging, loads the
//! config and hands over to the library. Exit codes: 0 after a clean drain,
//! 64 (EX_USAGE) for a bad config, 1 for any other start-up failure.
//!
//! `WSGATE_WORKER_THREADS=N` caps the tokio runtime at N worker threads
//! (default: one per CPU; 1 runs everything on the main thread);
//! `bench/run.sh` sets 1 to compare with single-worker nginx and HAProxy.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, Signal, SignalKind};
use wsgate::config::{Config, LogFormat};
use wsgate::run::check::{load_verified, verified};
use wsgate::run::reload;
use wsgate::telemetry::logging;
use wsgate::RunOptions;

/// The config file used when `--config` is not given.
const DEFAULT_CONFIG: &str = "config/wsgate.toml";

/// The same default config, compiled in, used when the file is absent.
const EMBEDDED_CONFIG: &str = include_str!("../config/wsgate.toml");

/// Environment variable that sets the number of runtime worker threads.
const WORKER_THREADS_ENV: &str = "WSGATE_WORKER_THREADS";

/// Exit code for an invalid config (sysexits EX_USAGE).
const EXIT_CONFIG: u8 = 64;

/// A TLS-terminating reverse proxy built for WebSocket.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Config file (TOML).
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate the config: exit 0, or print every error and exit 64.
    Check,
    /// Probe an admin endpoint (container HEALTHCHECK): exit 0 on a 2xx
    /// answer, 1 otherwise.
    Health {
        /// The URL to GET.
        #[arg(long, default_value = "http://127.0.0.1:9090/healthz")]
        url: String,
    },
    /// Write a self-signed development certificate (dev.pem, dev.key) for
    /// localhost, 127.0.0.1 and ::1.
    Cert {
        /// Directory to write into.
        #[arg(long, default_value = "certs")]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Some(Command::Cert { out }) => {
            logging::init(LogFormat::Text);
            return write_dev_cert(out);
        }
        Some(Command::Health { url }) => return health(url),
        _ => {}
    }
    let config = match load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(message) => {
            logging::init(LogFormat::Text);
            eprintln!("{message}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    logging::init(config.server.log_format);
    match cli.command {
        Some(Command::Check) => {
            println!("config ok");
            ExitCode::SUCCESS
        }
        _ => serve(config, config_file(cli.config.as_deref())),
    }
}

/// `wsgate health`: one GET, the verdict as the exit code.
fn health(url: &str) -> ExitCode {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let result = match runtime {
        Ok(runtime) => runtime.block_on(wsgate::server::admin::probe(url)),
        Err(e) => Err(e.to_string()),
    };
    match result {
        Ok(answer) => {
            println!("{answer}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("unhealthy: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The config file a reload re-reads; `None` for the embedded config.
fn config_file(path: Option<&Path>) -> Option<PathBuf> {
    match path {
        Some(path) => Some(path.to_owned()),
        None => Some(PathBuf::from(DEFAULT_CONFIG)).filter(|p| p.exists()),
    }
}

/// `wsgate cert`: writes the development certificate and says how to use it.
fn write_dev_cert(out: &Path) -> ExitCode {
    match wsgate::tls::dev::write(out) {
        Ok((cert, key)) => {
            println!("wrote {} and {}", cert.display(), key.display());
            println!(
                "trust it with e.g.: curl --cacert {} https://localhost:8443/",
                cert.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Loads the given config, else `config/wsgate.toml`, else the embedded
/// copy. A file goes through the same validation as a reload (certificates
/// and CA files included), so `check`, start-up and reload agree.
fn load(path: Option<&Path>) -> Result<Config, String> {
    let (result, name) = match config_file(path) {
        Some(path) => (load_verified(&path), path.display().to_string()),
        None => (
            Config::parse(EMBEDDED_CONFIG, Path::new("."))
                .map_err(|e| e.0.iter().map(ToString::to_string).collect())
                .and_then(verified),
            "embedded default config".to_string(),
        ),
    };
    result.map_err(|errors| format!("{name}: invalid config:\n{}", errors.join("\n")))
}

/// Binds the listeners and runs until SIGTERM or SIGINT; reloads `file`
/// on SIGHUP and when it changes.
fn serve(config: Config, file: Option<PathBuf>) -> ExitCode {
    let runtime = match build_runtime() {
        Ok(runtime) => runtime,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
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
        wsgate::run_with(config, listeners, options, signals.first())
            .await
            .map_err(|e| e.to_string())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            ExitCode::FAILURE
        }
    }
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
