//! The `wsgate` binary: parses the command line, sets up logging, loads the
//! config and hands over to the library. Exit codes: 0 after a clean drain,
//! 64 (EX_USAGE) for a bad config, 1 for any other start-up failure.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use wsgate::config::{Config, LogFormat};
use wsgate::run::check::{load_verified, verified};
use wsgate::telemetry::logging;

/// The config file used when `--config` is not given.
const DEFAULT_CONFIG: &str = "config/wsgate.toml";

/// The same default config, compiled in, used when the file is absent.
const EMBEDDED_CONFIG: &str = include_str!("../config/wsgate.toml");

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
    match wsgate::run::process::serve(config, file) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            ExitCode::FAILURE
        }
    }
}
