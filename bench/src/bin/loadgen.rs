//! `loadgen`: drives one measurement against one WebSocket URL and prints
//! `name value` result lines for `bench/run.sh` to record.
//!
//! It exists because the usual HTTP load tools do not speak WebSocket with
//! several messages in flight, and because the figure that matters here, the
//! proxy's CPU time per relayed message, has to be read at the exact edges
//! of the measurement window (`--watch PID`).

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use wsgate_bench::client::Target;
use wsgate_bench::modes::{self, LoadSpec};
use wsgate_bench::procfs::Watch;

/// WebSocket load generator for the proxy benchmark.
#[derive(Parser)]
struct Cli {
    /// Target URL: ws://IP:PORT/path, wss://IP:PORT/path, or
    /// h2wss://IP:PORT/path for WebSockets over HTTP/2 (RFC 8441).
    #[arg(long, global = true, default_value = "ws://127.0.0.1:9000/")]
    url: String,
    /// Process ids of the proxy under test (repeat for several).
    #[arg(long = "watch", global = true)]
    watch: Vec<u32>,
    /// Clock ticks per second in /proc/PID/stat (`getconf CLK_TCK`).
    #[arg(long, global = true, default_value_t = 100)]
    clk_tck: u64,
    /// Tokio worker threads of the load generator.
    #[arg(long, global = true, default_value_t = 2)]
    threads: usize,
    /// With an `h2wss://` URL: WebSockets per HTTP/2 connection.
    #[arg(long, global = true, default_value_t = 10)]
    h2_streams: usize,
    /// Send about 500 bytes of browser headers (User-Agent, cookies,
    /// Accept-Language) with every upgrade.
    #[arg(long, global = true)]
    browser_headers: bool,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Closed loop: K messages in flight per connection; messages/s, RTT,
    /// proxy CPU per relayed message.
    Throughput {
        #[command(flatten)]
        load: Load,
        /// Messages in flight per connection.
        #[arg(long, default_value_t = 8)]
        inflight: usize,
    },
    /// Open loop at a fixed total rate; RTT percentiles.
    Rate {
        #[command(flatten)]
        load: Load,
        /// Messages per second over all connections.
        #[arg(long, default_value_t = 2000.0)]
        rate: f64,
        /// Run the same load against this URL at the same time and print
        /// the added latency of --url over it (`added_p50_us`, ...).
        #[arg(long)]
        baseline_url: Option<String>,
    },
    /// Hold many idle connections; proxy RSS per connection.
    Hold {
        /// Connections to open.
        #[arg(long, default_value_t = 9000)]
        conns: usize,
        /// Handshakes in progress at once while opening.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Seconds to wait after the last connection opened before reading RSS.
        #[arg(long, default_value_t = 2.0)]
        settle: f64,
        /// Never send a message: hold connections right after the upgrade.
        #[arg(long)]
        silent: bool,
    },
    /// New connection + upgrade + close, repeatedly; proxy CPU per handshake.
    Handshake {
        /// Concurrent workers.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Seconds to run.
        #[arg(long, default_value_t = 5.0)]
        duration: f64,
    },
    /// One connection, one echo, one close: exit 0 if the target works.
    Probe,
}

/// Shape of a sustained load.
#[derive(Args)]
struct Load {
    /// Concurrent connections.
    #[arg(long, default_value_t = 50)]
    conns: usize,
    /// Binary message size in bytes.
    #[arg(long, default_value_t = 4096)]
    size: usize,
    /// Seconds of load before the measurement window.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Seconds in the measurement window.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
}

impl Load {
    fn spec(&self) -> LoadSpec {
        LoadSpec {
            conns: self.conns,
            size: self.size,
            warmup: Duration::from_secs_f64(self.warmup),
            duration: Duration::from_secs_f64(self.duration),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let target = match Target::parse(&cli.url) {
        Ok(target) => {
            let mut target = target.h2_streams(cli.h2_streams);
            if cli.browser_headers {
                target.extra_headers = wsgate_bench::client::BROWSER_HEADERS;
            }
            target
        }
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::from(2);
        }
    };
    let watch = Watch::new(cli.watch, cli.clk_tck);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.threads.max(1))
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(async move {
        match cli.mode {
            Mode::Throughput { load, inflight } => {
                modes::throughput(target, load.spec(), inflight.max(1), watch).await
            }
            Mode::Rate {
                load,
                rate,
                baseline_url,
            } => {
                let baseline = baseline_url.as_deref().map(Target::parse).transpose()?;
                modes::fixed_rate(target, baseline, load.spec(), rate, watch).await
            }
            Mode::Hold {
                conns,
                concurrency,
                settle,
                silent,
            } => {
                let settle = Duration::from_secs_f64(settle);
                let first = (!silent).then_some(modes::FIRST_MESSAGE);
                modes::hold(target, conns, concurrency.max(1), settle, first, watch).await
            }
            Mode::Handshake {
                concurrency,
                duration,
            } => {
                let duration = Duration::from_secs_f64(duration);
                modes::handshakes(target, concurrency.max(1), duration, watch).await
            }
            Mode::Probe => modes::probe(target).await,
        }
    });
    // Idle or stuck connection tasks must not delay the exit.
    runtime.shutdown_timeout(Duration::from_millis(100));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}
