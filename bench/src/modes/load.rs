//! Sustained echo load: closed-loop throughput (K messages in flight per
//! connection) and open-loop fixed rate (for latency).

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio::time::{interval_at, sleep, timeout, MissedTickBehavior};

use super::{BUSY_READ_BUF, CONNECT_DEADLINE, DRAIN_DEADLINE, READ_TIMEOUT};
use crate::client::{Target, WsClient, MASK_KEY};
use crate::frame::{client_frame, OP_BINARY};
use crate::procfs::Watch;
use crate::stats::{metric, Samples};

/// What to run.
#[derive(Debug, Clone, Copy)]
pub struct LoadSpec {
    /// Concurrent WebSocket connections.
    pub conns: usize,
    /// Binary message size in bytes.
    pub size: usize,
    /// Time to run before measuring (connections warm, buffers grown).
    pub warmup: Duration,
    /// The measurement window.
    pub duration: Duration,
}

/// State shared by the connection tasks and the coordinator.
#[derive(Default)]
struct Shared {
    /// Inside the measurement window: count and sample.
    measuring: AtomicBool,
    /// The run is over: tasks return their samples.
    stop: AtomicBool,
    /// Connections that completed their upgrade.
    connected: AtomicUsize,
    /// Echoes received inside the window.
    received: AtomicU64,
}

/// Closed loop: every connection keeps `inflight` messages outstanding and
/// sends a new one for each echo. Prints throughput, latency and, with a
/// watched proxy, its CPU time per relayed message (each echo is two relayed
/// messages: client to backend and back).
pub async fn throughput(
    target: Target,
    spec: LoadSpec,
    inflight: usize,
    watch: Watch,
) -> Result<(), String> {
    let frame = client_frame(OP_BINARY, &vec![0xab; spec.size], MASK_KEY);
    let frame_len = frame.len();
    let batch = Arc::new(frame.repeat(inflight));
    let shared = Arc::new(Shared::default());
    let mut tasks = JoinSet::new();
    for _ in 0..spec.conns {
        let (target, batch, shared) = (target.clone(), batch.clone(), shared.clone());
        tasks.spawn(async move {
            let samples = closed_loop(target, batch, frame_len, inflight, shared).await?;
            Ok((0, samples))
        });
    }
    measure(spec, tasks, shared, watch).await
}

/// Open loop: `rate` messages per second in total, evenly spread over the
/// connections and over time; latency is measured from the scheduled send.
///
/// With a `baseline`, the same load runs against it at the same time on as
/// many connections of its own, and the differences of the percentiles are
/// printed as `added_*`: both targets then share whatever else the machine
/// is doing, which makes the added latency far less noisy than comparing
/// separate runs.
pub async fn fixed_rate(
    target: Target,
    baseline: Option<Target>,
    spec: LoadSpec,
    rate: f64,
    watch: Watch,
) -> Result<(), String> {
    let frame = Arc::new(client_frame(OP_BINARY, &vec![0xab; spec.size], MASK_KEY));
    let period = Duration::from_secs_f64(spec.conns as f64 / rate);
    let shared = Arc::new(Shared::default());
    let mut tasks = JoinSet::new();
    let groups = [Some(target), baseline];
    for (group, target) in groups.iter().enumerate() {
        let Some(target) = target else { continue };
        for i in 0..spec.conns {
            // Interleave the groups' send times so neither is favoured.
            let slot = (2 * i + group) as f64 / (2 * spec.conns) as f64;
            let offset = period.mul_f64(slot);
            let (target, frame, shared) = (target.clone(), frame.clone(), shared.clone());
            tasks.spawn(async move {
                let samples = paced(target, frame, period, offset, shared).await?;
                Ok((group, samples))
            });
        }
    }
    let spec = LoadSpec {
        conns: spec.conns * groups.iter().flatten().count(),
        ..spec
    };
    measure(spec, tasks, shared, watch).await
}

/// Waits for every connection, warms up, measures the window, collects.
async fn measure(
    spec: LoadSpec,
    mut tasks: JoinSet<io::Result<(usize, Samples)>>,
    shared: Arc<Shared>,
    watch: Watch,
) -> Result<(), String> {
    let deadline = Instant::now() + CONNECT_DEADLINE;
    while shared.connected.load(Relaxed) < spec.conns {
        if let Some(Ok(Err(e))) = tasks.try_join_next() {
            return Err(format!("a connection failed during set-up: {e}"));
        }
        if Instant::now() > deadline {
            return Err("connections were not all up in time".into());
        }
        sleep(Duration::from_millis(10)).await;
    }
    sleep(spec.warmup).await;
    let cpu_before = cpu(&watch)?;
    let start = Instant::now();
    shared.measuring.store(true, Relaxed);
    sleep(spec.duration).await;
    shared.measuring.store(false, Relaxed);
    let elapsed = start.elapsed();
    let cpu_after = cpu(&watch)?;
    let received = shared.received.load(Relaxed);
    shared.stop.store(true, Relaxed);

    let mut samples = [Samples::default(), Samples::default()];
    let mut failures = 0;
    let drained = timeout(DRAIN_DEADLINE, async {
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(Ok((group, s))) => samples[group].merge(s),
                _ => failures += 1,
            }
        }
    })
    .await;
    if drained.is_err() {
        tasks.abort_all();
    }
    if failures > 0 || received == 0 {
        return Err(format!(
            "{failures} connection(s) failed; {received} echoes measured"
        ));
    }
    metric("echoes", received as f64);
    metric("msgs_per_s", received as f64 / elapsed.as_secs_f64());
    let [target, baseline] = samples;
    let ours = target.percentiles();
    for (name, value) in &ours {
        metric(&format!("rtt_{name}_us"), *value);
    }
    for ((name, value), (_, base)) in ours.iter().zip(baseline.percentiles()) {
        metric(&format!("base_rtt_{name}_us"), base);
        metric(&format!("added_{name}_us"), value - base);
    }
    if let (Some(before), Some(after)) = (cpu_before, cpu_after) {
        metric("cpu_us_per_msg", (after - before) / (2.0 * received as f64));
        metric(
            "proxy_cpu_pct",
            100.0 * (after - before) / elapsed.as_micros() as f64,
        );
    }
    Ok(())
}

/// CPU time of the watched proxy, if there is one.
fn cpu(watch: &Watch) -> Result<Option<f64>, String> {
    match watch.is_empty() {
        true => Ok(None),
        false => watch.cpu_us().map(Some).map_err(|e| e.to_string()),
    }
}

/// One connection of the closed loop.
async fn closed_loop(
    target: Target,
    batch: Arc<Vec<u8>>,
    frame_len: usize,
    inflight: usize,
    shared: Arc<Shared>,
) -> io::Result<Samples> {
    let mut ws = WsClient::connect(&target, BUSY_READ_BUF).await?;
    shared.connected.fetch_add(1, Relaxed);
    let mut sent = VecDeque::with_capacity(inflight);
    let mut samples = Samples::default();
    let mut to_send = inflight;
    while !shared.stop.load(Relaxed) {
        if to_send > 0 {
            let now = Instant::now();
            ws.send(&batch[..to_send * frame_len]).await?;
            sent.extend(std::iter::repeat_n(now, to_send));
        }
        let got = timeout(READ_TIMEOUT, ws.read())
            .await
            .map_err(|_| stuck())??;
        if got.eof || got.closed {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let now = Instant::now();
        let measuring = shared.measuring.load(Relaxed);
        for _ in 0..got.messages {
            let sent_at = sent.pop_front().ok_or_else(extra_echo)?;
            if measuring {
                samples.push(now - sent_at);
            }
        }
        if measuring {
            shared.received.fetch_add(got.messages as u64, Relaxed);
        }
        to_send = got.messages;
    }
    Ok(samples)
}

/// One connection of the open loop.
async fn paced(
    target: Target,
    frame: Arc<Vec<u8>>,
    period: Duration,
    offset: Duration,
    shared: Arc<Shared>,
) -> io::Result<Samples> {
    let mut ws = WsClient::connect(&target, BUSY_READ_BUF).await?;
    shared.connected.fetch_add(1, Relaxed);
    let mut ticker = interval_at(tokio::time::Instant::now() + offset, period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut sent = VecDeque::new();
    let mut samples = Samples::default();
    while !shared.stop.load(Relaxed) {
        tokio::select! {
            scheduled = ticker.tick() => {
                ws.send(&frame).await?;
                sent.push_back(scheduled.into_std());
            }
            got = timeout(READ_TIMEOUT, ws.read()) => {
                let got = got.map_err(|_| stuck())??;
                if got.eof || got.closed {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                let now = Instant::now();
                let measuring = shared.measuring.load(Relaxed);
                for _ in 0..got.messages {
                    let sent_at = sent.pop_front().ok_or_else(extra_echo)?;
                    if measuring {
                        samples.push(now - sent_at);
                        shared.received.fetch_add(1, Relaxed);
                    }
                }
            }
        }
    }
    Ok(samples)
}

/// The error for a connection whose echoes stopped coming.
fn stuck() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "no echo within the read timeout")
}

/// The error for an echo nobody sent.
fn extra_echo() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "more echoes than messages sent")
}
