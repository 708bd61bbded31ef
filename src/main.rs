//! The `wsgate` binary: parses the command line, sets up logging, loads the
//! config and hands over to the library. Exit codes: 0 after a clean drain,
//! 64 (EX_USAGE) for a bad config, 1 for any other start-up failure.
//!
//! `WSGATE_WORKER_THREADS=N` caps the tokio runtime at N worker threads
//! (default: one per CPU); `bench/run.sh` sets 1 to compare with
//! single-worker nginx and HAProxy.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokio::net::TcpListener;
use wsgate::config::Config;

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
    init_tracing();
    if let Some(Command::Cert { out }) = &cli.command {
        return write_dev_cert(out);
    }
    let config = match load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match cli.command {
        Some(Command::Check) => {
            println!("config ok");
            ExitCode::SUCCESS
        }
        Some(Command::Cert { .. }) | None => serve(config),
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

/// Loads the given config, else `config/wsgate.toml`, else the embedded copy.
fn load(path: Option<&Path>) -> Result<Config, String> {
    let (result, name) = match path {
        Some(path) => (Config::load(path), path.display().to_string()),
        None if Path::new(DEFAULT_CONFIG).exists() => (
            Config::load(Path::new(DEFAULT_CONFIG)),
            DEFAULT_CONFIG.to_string(),
        ),
        None => (
            Config::parse(EMBEDDED_CONFIG, Path::new(".")),
            "embedded default config".to_string(),
        ),
    };
    let config = result.map_err(|errors| format!("{name}: invalid config:\n{errors}"))?;
    // Certificates and CA files are loaded exactly as start-up loads them,
    // so `check` and a start give the same verdict.
    let tls_errors = wsgate::tls::check(&config);
    if !tls_errors.is_empty() {
        return Err(format!(
            "{name}: invalid config:\n{}",
            tls_errors.join("\n")
        ));
    }
    Ok(config)
}

/// Logs as text to stderr, filtered by `RUST_LOG` (default `info`);
/// colours only when stderr is a terminal, so files and journald stay clean.
fn init_tracing() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// Binds the listeners and runs until SIGTERM or SIGINT.
fn serve(config: Config) -> ExitCode {
    let runtime = match build_runtime() {
        Ok(runtime) => runtime,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let mut listeners = Vec::new();
        for listener in &config.listeners {
            let bound = TcpListener::bind(listener.bind)
                .await
                .map_err(|e| format!("cannot listen on {}: {e}", listener.bind))?;
            listeners.push(bound);
        }
        wsgate::run(config, listeners, shutdown_signal())
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

/// The multi-threaded runtime, with `WSGATE_WORKER_THREADS` workers if set.
fn build_runtime() -> Result<tokio::runtime::Runtime, String> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Ok(value) = std::env::var(WORKER_THREADS_ENV) {
        let threads = value.parse::<usize>().ok().filter(|&n| n > 0);
        let threads = threads.ok_or_else(|| {
            format!("{WORKER_THREADS_ENV}={value:?}: expected a positive integer")
        })?;
        builder.worker_threads(threads);
    }
    builder
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

/// Completes on the first SIGTERM or SIGINT; a second one exits at once.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
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
