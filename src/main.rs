//! The `wsgate` binary: parses the command line, sets up logging, loads the
//! config and hands over to the library. Exit codes: 0 after a clean drain,
//! 64 (EX_USAGE) for a bad config, 1 for any other start-up failure.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use wsgate::config::{Config, LogFormat};
use wsgate::run::check::{load_verified, parse_verified};
use wsgate::run::quick::{self, QuickStart};
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
    /// Proxy one address to one or more backends, no config file needed:
    /// `wsgate proxy --from :8080 --to ws://127.0.0.1:9000`.
    Proxy(ProxyArgs),
}

/// `wsgate proxy`'s flags (see `wsgate::run::quick`).
#[derive(Args)]
struct ProxyArgs {
    /// Address to listen on: `:PORT`, `IP:PORT` or `localhost:PORT`.
    #[arg(long)]
    from: String,
    /// Backend URL (ws://, wss://, http://, https://, or HOST:PORT);
    /// repeat it to balance over several.
    #[arg(long, required = true)]
    to: Vec<String>,
    /// Offer the long-poll / SSE fallback (docs/fallback.md).
    #[arg(long)]
    fallback: bool,
    /// An Origin allowed to open WebSockets (repeatable; default same-origin).
    #[arg(long = "origin", value_name = "PATTERN")]
    origins: Vec<String>,
    /// `self-signed` (a development certificate), or `acme:DOMAIN[,DOMAIN...]`
    /// (certificates from Let's Encrypt, obtained and renewed by wsgate).
    #[arg(long, value_name = "self-signed|acme:DOMAIN[,DOMAIN...]")]
    tls: Option<String>,
    /// Print the equivalent config file and exit.
    #[arg(long)]
    print_config: bool,
}

/// Where the running config comes from.
enum Source {
    /// A file, given or `config/wsgate.toml`.
    File(PathBuf),
    /// The compiled-in default.
    Embedded,
    /// `wsgate proxy`'s flags, as config text.
    Flags(String),
}

impl Source {
    /// How logs and `check` name the source: a file by its resolved path.
    fn describe(&self) -> String {
        match self {
            Source::File(path) => std::fs::canonicalize(path)
                .unwrap_or_else(|_| path.clone())
                .display()
                .to_string(),
            Source::Embedded => {
                format!("embedded default config (no {DEFAULT_CONFIG} here)")
            }
            Source::Flags(_) => "config built from the command line".to_string(),
        }
    }
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
    let source = match source(&cli) {
        Ok(source) => source,
        Err(message) => return usage_error(&message),
    };
    let config = match load(&source) {
        Ok(config) => config,
        Err(message) => return usage_error(&message),
    };
    logging::init(config.server.log_format);
    match (&cli.command, &source) {
        (Some(Command::Check), _) => {
            println!("{}: config ok", source.describe());
            ExitCode::SUCCESS
        }
        (Some(Command::Proxy(args)), Source::Flags(text)) if args.print_config => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        _ => serve(config, source),
    }
}

/// Prints a start-up error and exits 64.
fn usage_error(message: &str) -> ExitCode {
    logging::init(LogFormat::Text);
    eprintln!("{message}");
    ExitCode::from(EXIT_CONFIG)
}

/// The config's source: the proxy flags, the given file, the default file,
/// else the embedded copy.
fn source(cli: &Cli) -> Result<Source, String> {
    if let Some(Command::Proxy(args)) = &cli.command {
        if cli.config.is_some() {
            return Err("wsgate proxy builds its config from its flags; drop --config".into());
        }
        let quick = QuickStart {
            from: args.from.clone(),
            to: args.to.clone(),
            fallback: args.fallback,
            origins: args.origins.clone(),
            tls: args.tls.clone(),
            command_line: command_line(),
        };
        return quick::config_text(&quick)
            .map(Source::Flags)
            .map_err(|e| format!("wsgate proxy: {e}"));
    }
    Ok(match &cli.config {
        Some(path) => Source::File(path.clone()),
        None if Path::new(DEFAULT_CONFIG).exists() => Source::File(DEFAULT_CONFIG.into()),
        None => Source::Embedded,
    })
}

/// The command as typed (less `--print-config`), quoted where a shell
/// would need it.
fn command_line() -> String {
    let quote = |arg: String| {
        let plain = arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@,+[]".contains(&b));
        if plain && !arg.is_empty() {
            arg
        } else {
            format!("'{}'", arg.replace('\'', r"'\''"))
        }
    };
    // The command that runs this config: without --print-config.
    let args = std::env::args().skip(1).filter(|a| a != "--print-config");
    std::iter::once("wsgate".to_string())
        .chain(args.map(quote))
        .collect::<Vec<_>>()
        .join(" ")
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

/// Loads the config from `source`. A file goes through the same validation
/// as a reload (certificates and CA files included), so `check`, start-up
/// and reload agree; the embedded and flag-built configs go through the
/// same validation too.
fn load(source: &Source) -> Result<Config, String> {
    let result = match source {
        Source::File(path) => load_verified(path),
        Source::Embedded => parse_verified(EMBEDDED_CONFIG, Path::new(".")),
        Source::Flags(text) => parse_verified(text, Path::new("."))
            .map_err(|errors| errors.iter().map(|e| quick::in_flag_terms(e)).collect()),
    };
    result.map_err(|errors| {
        let name = source.describe();
        format!("{name}: invalid config:\n{}", errors.join("\n"))
    })
}

/// Binds the listeners and runs until SIGTERM or SIGINT; reloads a config
/// file on SIGHUP and when it changes.
fn serve(config: Config, source: Source) -> ExitCode {
    tracing::info!(config = %source.describe(), "starting");
    let file = match source {
        Source::File(path) => Some(path),
        Source::Embedded | Source::Flags(_) => None,
    };
    match wsgate::run::process::serve(config, file) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            ExitCode::FAILURE
        }
    }
}
