//! `tungload`: the independent bench's load generator, on tokio-tungstenite
//! (a real client library's framing, masking and buffering, where `loadgen`
//! is hand-rolled). Three shapes, printing `name value` lines like `loadgen`:
//!
//! - `throughput`: 50 connections × 8 messages in flight (closed loop);
//!   echoes/s and the watched proxy's CPU per relayed message;
//! - `rate`: 5,000 messages/s in total over 20 connections (open loop);
//!   round trip percentiles from each message's scheduled send time;
//! - `handshake`: 20 parallel loops of connect, upgrade, close; the proxy's
//!   CPU per handshake.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use wsgate_bench::procfs::Watch;
use wsgate_bench::stats::{metric, Samples};

/// Longest wait for one echo or one handshake.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// tokio-tungstenite load generator.
#[derive(Parser)]
struct Cli {
    /// Target URL: ws://IP:PORT/path.
    #[arg(long, global = true, default_value = "ws://127.0.0.1:9000/")]
    url: String,
    /// Process ids of the proxy under test.
    #[arg(long = "watch", global = true)]
    watch: Vec<u32>,
    /// Clock ticks per second in /proc/PID/stat.
    #[arg(long, global = true, default_value_t = 100)]
    clk_tck: u64,
    /// Seconds of load before the window.
    #[arg(long, global = true, default_value_t = 1.0)]
    warmup: f64,
    /// Seconds in the window.
    #[arg(long, global = true, default_value_t = 5.0)]
    duration: f64,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Closed loop, `inflight` messages in flight per connection.
    Throughput {
        #[arg(long, default_value_t = 50)]
        conns: usize,
        #[arg(long, default_value_t = 8)]
        inflight: usize,
        #[arg(long, default_value_t = 4096)]
        size: usize,
    },
    /// Open loop at `rate` messages/s over all connections.
    Rate {
        #[arg(long, default_value_t = 20)]
        conns: usize,
        #[arg(long, default_value_t = 5000.0)]
        rate: f64,
        #[arg(long, default_value_t = 4096)]
        size: usize,
    },
    /// `concurrency` loops of connect + upgrade + close.
    Handshake {
        #[arg(long, default_value_t = 20)]
        concurrency: usize,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let watch = Watch::new(cli.watch.clone(), cli.clk_tck);
    let window = Window {
        warmup: Duration::from_secs_f64(cli.warmup),
        duration: Duration::from_secs_f64(cli.duration),
    };
    let url = cli.url.clone();
    let result = runtime.block_on(async move {
        match cli.mode {
            Mode::Throughput {
                conns,
                inflight,
                size,
            } => throughput(&url, conns, inflight.max(1), size, window, &watch).await,
            Mode::Rate { conns, rate, size } => rate_run(&url, conns, rate, size, window).await,
            Mode::Handshake { concurrency } => handshakes(&url, concurrency, window, &watch).await,
        }
    });
    runtime.shutdown_timeout(Duration::from_millis(100));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tungload: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The measurement window after a warm-up.
#[derive(Clone, Copy)]
struct Window {
    warmup: Duration,
    duration: Duration,
}

/// The proxy's CPU time in µs, if one is watched.
fn cpu(watch: &Watch) -> Result<Option<f64>, String> {
    match watch.is_empty() {
        true => Ok(None),
        false => watch.cpu_us().map(Some).map_err(|e| e.to_string()),
    }
}

async fn throughput(
    url: &str,
    conns: usize,
    inflight: usize,
    size: usize,
    window: Window,
    watch: &Watch,
) -> Result<(), String> {
    let echoes = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + window.warmup + window.duration + Duration::from_millis(200);
    let mut tasks = JoinSet::new();
    for _ in 0..conns {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .map_err(|e| e.to_string())?;
        let echoes = echoes.clone();
        tasks.spawn(async move {
            // Sending and reading run at once: a connection that only read
            // after writing all its messages would deadlock with a backend
            // that echoes as it reads once the socket buffers are full.
            let (mut tx, mut rx) = ws.split();
            let slots = Arc::new(Semaphore::new(inflight));
            let sender = {
                let slots = slots.clone();
                async move {
                    let payload = vec![0x42u8; size];
                    while Instant::now() < end {
                        slots.acquire().await.ok()?.forget();
                        tx.send(Message::binary(payload.clone())).await.ok()?;
                    }
                    Some(())
                }
            };
            let receiver = async move {
                while Instant::now() < end {
                    match timeout(STEP_TIMEOUT, rx.next()).await.ok()?? {
                        Ok(Message::Binary(_)) => {
                            echoes.fetch_add(1, Relaxed);
                            slots.add_permits(1);
                        }
                        Ok(_) => {}
                        Err(_) => return None,
                    }
                }
                Some(())
            };
            tokio::select! {
                _ = sender => {}
                _ = receiver => {}
            }
        });
    }
    tokio::time::sleep(window.warmup).await;
    let (n0, c0, t0) = (echoes.load(Relaxed), cpu(watch)?, Instant::now());
    tokio::time::sleep(window.duration).await;
    let (n1, c1, secs) = (
        echoes.load(Relaxed),
        cpu(watch)?,
        t0.elapsed().as_secs_f64(),
    );
    tasks.abort_all();
    let n = (n1 - n0) as f64;
    metric("msgs_per_s", n / secs);
    if let (Some(c0), Some(c1)) = (c0, c1) {
        // Each echo is two relayed messages.
        metric("cpu_us_per_msg", (c1 - c0) / (2.0 * n));
    }
    Ok(())
}

async fn rate_run(
    url: &str,
    conns: usize,
    rate: f64,
    size: usize,
    window: Window,
) -> Result<(), String> {
    let interval = Duration::from_secs_f64(conns as f64 / rate);
    let start = Instant::now() + Duration::from_millis(100);
    let measure_from = start + window.warmup;
    let end = measure_from + window.duration;
    let mut tasks = JoinSet::new();
    for i in 0..conns {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .map_err(|e| e.to_string())?;
        let first = start + interval.mul_f64(i as f64 / conns as f64);
        tasks.spawn(async move {
            let (mut tx, mut rx) = ws.split();
            let sender = async move {
                let mut at = first;
                while at < end {
                    tokio::time::sleep_until(at.into()).await;
                    let mut payload = vec![0u8; size.max(8)];
                    let sent = (at - start).as_nanos() as u64;
                    payload[..8].copy_from_slice(&sent.to_be_bytes());
                    if tx.send(Message::binary(payload)).await.is_err() {
                        return;
                    }
                    at += interval;
                }
            };
            let receiver = async move {
                let mut samples = Samples::default();
                while let Ok(Some(Ok(message))) = timeout(STEP_TIMEOUT, rx.next()).await {
                    let Message::Binary(payload) = message else {
                        continue;
                    };
                    let sent = u64::from_be_bytes(payload[..8].try_into().unwrap_or_default());
                    let scheduled = start + Duration::from_nanos(sent);
                    if scheduled >= measure_from {
                        samples.push(scheduled.elapsed());
                    }
                    if scheduled + interval >= end {
                        break;
                    }
                }
                samples
            };
            let ((), samples) = tokio::join!(sender, receiver);
            samples
        });
    }
    let mut all = Samples::default();
    while let Some(samples) = tasks.join_next().await {
        all.merge(samples.map_err(|e| e.to_string())?);
    }
    if all.is_empty() {
        return Err("no echo arrived".into());
    }
    for (name, us) in all.percentiles() {
        metric(&format!("rtt_{name}_us"), us);
    }
    Ok(())
}

async fn handshakes(
    url: &str,
    concurrency: usize,
    window: Window,
    watch: &Watch,
) -> Result<(), String> {
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (c0, t0) = (cpu(watch)?, Instant::now());
    let end = t0 + window.duration;
    let mut tasks = JoinSet::new();
    for _ in 0..concurrency {
        let (url, ok, failed) = (url.to_owned(), ok.clone(), failed.clone());
        tasks.spawn(async move {
            while Instant::now() < end {
                let once = async {
                    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str()).await.ok()?;
                    ws.close(None).await.ok()?;
                    while let Some(Ok(_)) = ws.next().await {}
                    Some(())
                };
                match timeout(STEP_TIMEOUT, once).await {
                    Ok(Some(())) => ok.fetch_add(1, Relaxed),
                    _ => failed.fetch_add(1, Relaxed),
                };
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let (ok, failed) = (ok.load(Relaxed), failed.load(Relaxed));
    metric("handshakes_per_s", ok as f64 / t0.elapsed().as_secs_f64());
    metric("handshake_errors", failed as f64);
    if let (Some(c0), Some(c1)) = (c0, cpu(watch)?) {
        metric("cpu_us_per_handshake", (c1 - c0) / ok.max(1) as f64);
    }
    Ok(())
}
