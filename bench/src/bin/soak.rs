//! `soak`: the client side of `scripts/soak.sh`. It holds thousands of
//! WebSocket connections and a few hundred fallback sessions with checked
//! traffic through a running gateway, while the script kills and restarts
//! the gateway's backends (announcing each kill with SIGUSR1), and then
//! checks that the gateway's file descriptors and memory come back once
//! every client has left.
//!
//! Phases, each announced on stdout as `phase NAME` for the script, which
//! kills backends during `warmup` and `soak` only:
//!
//! 1. `warmup`: a short round of the soak (same clients, churn, vanishing
//!    clients, abandoned sessions, kills), then everyone leaves (`settle`);
//!    the gateway's RSS once they are gone is reported next to the final one.
//! 2. `soak`: the same for the full duration.
//! 3. `leave`: every client closes; then the gateway must get back to its
//!    cold file-descriptor count and zero active connections and sessions
//!    on `/metrics`. Its RSS must not have grown over the soak's second half
//!    (a least-squares fit of one sample a second, while thousands of
//!    connections open and close) and must not rise when the clients leave.
//!
//! Each SIGUSR1 is acknowledged with a line `announced N` on stdout.
//! Prints a summary and `result PASS` (exit 0) or `result FAIL` (exit 1).

use std::process::ExitCode;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{sleep, timeout, Instant};
use wsgate_bench::client::Target;
use wsgate_bench::soak::fallback::{self, FallbackPlan};
use wsgate_bench::soak::gateway::{Gateway, Metrics, Sample};
use wsgate_bench::soak::ws::{self, WsPlan};
use wsgate_bench::soak::{Chaos, Ctx};

/// Soak driver: WebSocket and fallback clients with checked traffic.
#[derive(Parser, Debug)]
struct Cli {
    /// WebSocket URL through the gateway (ws://127.0.0.1:PORT/path).
    #[arg(long)]
    url: String,
    /// Process id of the gateway.
    #[arg(long)]
    gateway_pid: u32,
    /// The gateway's admin listener (127.0.0.1:PORT), for /metrics.
    #[arg(long)]
    admin: String,
    /// WebSocket connections held.
    #[arg(long, default_value_t = 3000)]
    conns: usize,
    /// Fallback sessions held (half long-poll, half SSE).
    #[arg(long, default_value_t = 100)]
    fallback: usize,
    /// Seconds of soak.
    #[arg(long, default_value_t = 300.0)]
    seconds: f64,
    /// Seconds of the warm-up round.
    #[arg(long, default_value_t = 60.0)]
    warmup_seconds: f64,
    /// Milliseconds between two messages on one connection.
    #[arg(long, default_value_t = 1000)]
    interval_ms: u64,
    /// Largest WebSocket message in bytes (at least 16).
    #[arg(long, default_value_t = 1024)]
    max_size: usize,
    /// Shortest connection lifetime, seconds.
    #[arg(long, default_value_t = 10.0)]
    lifetime_min: f64,
    /// Longest connection lifetime, seconds.
    #[arg(long, default_value_t = 60.0)]
    lifetime_max: f64,
    /// Clients vanishing mid-frame per second.
    #[arg(long, default_value_t = 2.0)]
    vanish_per_sec: f64,
    /// Milliseconds between two POSTs of one fallback session.
    #[arg(long, default_value_t = 500)]
    fallback_interval_ms: u64,
    /// Shortest fallback session lifetime, seconds.
    #[arg(long, default_value_t = 10.0)]
    fallback_lifetime_min: f64,
    /// Longest fallback session lifetime, seconds.
    #[arg(long, default_value_t = 40.0)]
    fallback_lifetime_max: f64,
    /// Share of fallback sessions abandoned instead of closed.
    #[arg(long, default_value_t = 0.1)]
    fallback_abandon: f64,
    /// The route's fallback_poll_hold in seconds (bounds a held poll).
    #[arg(long, default_value_t = 5.0)]
    poll_hold_secs: f64,
    /// Seconds after an announced kill during which a 1011 is expected.
    #[arg(long, default_value_t = 15.0)]
    kill_window_secs: f64,
    /// Longest wait, seconds, for the gateway to get back to baseline.
    #[arg(long, default_value_t = 120.0)]
    settle_secs: f64,
    /// Handshakes in progress at once, over all connections.
    #[arg(long, default_value_t = 256)]
    connect_concurrency: usize,
    /// File descriptors above the cold baseline still accepted at the end.
    #[arg(long, default_value_t = 0)]
    fd_slack: usize,
    /// MiB the gateway's RSS may grow over the soak's second half (least
    /// squares over one sample a second), while clients keep coming and going.
    #[arg(long, default_value_t = 4.0)]
    rss_growth_mib: f64,
    /// MiB the RSS after every client left may exceed the mean RSS of the
    /// soak's second half.
    #[arg(long, default_value_t = 2.0)]
    rss_leave_slack_mib: f64,
    /// Tokio worker threads of the driver.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

/// How long clients get to leave when a phase ends.
const LEAVE_DEADLINE: Duration = Duration::from_secs(60);

/// A phase counts as ramped up once this share of connections is open.
const RAMPED: f64 = 0.98;

/// Vanish tickets never pile up beyond this.
const MAX_VANISH_TOKENS: u64 = 10;

/// A message lost with a killed backend must have been sent less than this
/// before the kill; an older one was lost before it (the WebSocket clients
/// fail an echo this late on their own).
const MAX_LOST_AGE: Duration = Duration::from_secs(15);

/// RSS is recorded for the summary this often.
const RSS_EVERY: Duration = Duration::from_secs(30);

fn main() -> ExitCode {
    let cli = Cli::parse();
    let target = match Target::parse(&cli.url) {
        Ok(t) if t.tls.is_none() && t.addr.ip().is_loopback() => t,
        Ok(_) => {
            eprintln!("soak: --url must be ws:// on a loopback address");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("soak: {e}");
            return ExitCode::from(2);
        }
    };
    if !cli.admin.starts_with("127.") {
        eprintln!("soak: --admin must be on a loopback address");
        return ExitCode::from(2);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.threads.max(1))
        .enable_all()
        .build()
        .expect("tokio runtime");
    let pass = runtime.block_on(run(cli, target));
    runtime.shutdown_timeout(Duration::from_millis(200));
    match pass {
        true => ExitCode::SUCCESS,
        false => ExitCode::FAILURE,
    }
}

/// What one phase measured.
struct Phase {
    ctx: Arc<Ctx>,
    /// Highest fds and RSS seen while it ran.
    peak: Sample,
    /// Seconds until [`RAMPED`] of the connections were open.
    ramp: Option<f64>,
    /// Fewest and most connections open after the ramp, and the mean.
    held: (u64, u64, f64),
    /// Most fallback sessions open at once.
    fb_held: u64,
    /// Whether every client left within [`LEAVE_DEADLINE`].
    left: bool,
    /// The gateway's RSS in KiB every [`RSS_EVERY`].
    rss_series: Vec<u64>,
    /// Seconds since the start and RSS in KiB, every second.
    rss_trace: Vec<(f64, u64)>,
    /// Connections and sessions opened by half-time, and by the end.
    served: (u64, u64),
    /// How long it ran, leave included.
    elapsed: Duration,
}

/// The gateway once every client has left.
struct Settled {
    sample: Sample,
    ws_active: f64,
    fb_active: f64,
    waited: Duration,
    back: bool,
}

async fn run(cli: Cli, target: Target) -> bool {
    let started = Instant::now();
    let gateway = Gateway {
        pid: cli.gateway_pid,
        admin: cli.admin.clone(),
    };
    let chaos = Arc::new(Chaos::new(Duration::from_secs_f64(cli.kill_window_secs)));
    let mut usr1 = match signal(SignalKind::user_defined1()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("soak: cannot handle SIGUSR1: {e}");
            return false;
        }
    };
    let kills = chaos.clone();
    tokio::spawn(async move {
        while usr1.recv().await.is_some() {
            kills.record();
            // The script kills only once it reads this line, so no 1011
            // of that kill can be seen before the kill is on record.
            println!("announced {}", kills.count());
            progress(&format!(
                "backend kill announced ({} so far)",
                kills.count()
            ));
        }
    });

    let cold = match gateway.sample() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("soak: cannot read the gateway's /proc entries: {e}");
            return false;
        }
    };
    progress(&format!(
        "cold baseline: {} fds, {} KiB RSS",
        cold.fds, cold.rss_kib
    ));

    println!("phase warmup");
    let warm_phase = phase(&cli, &target, &gateway, chaos.clone(), "warmup").await;
    println!("phase settle");
    let warm = settle(&cli, &gateway, cold.fds).await;
    progress(&format!(
        "warm baseline: {} fds, {} KiB RSS (after {:.1} s)",
        warm.sample.fds,
        warm.sample.rss_kib,
        warm.waited.as_secs_f64()
    ));

    println!("phase soak");
    let soak = phase(&cli, &target, &gateway, chaos.clone(), "soak").await;
    println!("phase leave");
    let after = settle(&cli, &gateway, cold.fds).await;
    let metrics = gateway.metrics().await.unwrap_or_default();
    let alive = gateway.sample().is_ok();

    report(
        &cli,
        &cold,
        (&warm_phase, &warm),
        (&soak, &after),
        &chaos,
        &metrics,
        alive,
        started.elapsed(),
    )
}

/// Runs one round: ramp, traffic for its duration, then everyone leaves.
async fn phase(
    cli: &Cli,
    target: &Target,
    gateway: &Gateway,
    chaos: Arc<Chaos>,
    name: &str,
) -> Phase {
    let soak = name == "soak";
    let started = Instant::now();
    let ctx = Arc::new(Ctx::new(chaos));
    let (stop_tx, stop_rx) = watch::channel(false);
    let secs = Duration::from_secs_f64;
    let ws_plan = Arc::new(WsPlan {
        target: target.clone(),
        interval: Duration::from_millis(cli.interval_ms.max(1)),
        max_size: cli.max_size,
        lifetime: Some((secs(cli.lifetime_min), secs(cli.lifetime_max))),
        vanish: cli.vanish_per_sec > 0.0,
    });
    let fb_lifetime = (
        secs(cli.fallback_lifetime_min),
        secs(cli.fallback_lifetime_max),
    );
    let fb_plan = Arc::new(FallbackPlan {
        base: format!("http://{}", target.authority),
        authority: target.authority.clone(),
        path: target.path.clone(),
        interval: Duration::from_millis(cli.fallback_interval_ms.max(1)),
        lifetime: fb_lifetime,
        abandon: cli.fallback_abandon,
        poll_hold: secs(cli.poll_hold_secs),
    });
    let permits = Arc::new(Semaphore::new(cli.connect_concurrency.max(1)));
    let mut tasks = JoinSet::new();
    {
        let http = fallback::http_client();
        for i in 0..cli.conns as u64 {
            let (ctx, plan, permits) = (ctx.clone(), ws_plan.clone(), permits.clone());
            tasks.spawn(ws::slot(i, ctx, plan, permits, stop_rx.clone()));
        }
        for i in 0..cli.fallback as u64 {
            let (ctx, plan, http) = (ctx.clone(), fb_plan.clone(), http.clone());
            tasks.spawn(fallback::slot(i, ctx, plan, http, stop_rx.clone()));
        }
    }
    let vanisher = (cli.vanish_per_sec > 0.0).then(|| {
        let ctx = ctx.clone();
        let every = Duration::from_secs_f64(1.0 / cli.vanish_per_sec);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let _ = ctx.vanish_tokens.fetch_update(Relaxed, Relaxed, |n| {
                    (n < MAX_VANISH_TOKENS).then_some(n + 1)
                });
            }
        })
    });

    let duration = secs(if soak {
        cli.seconds
    } else {
        cli.warmup_seconds
    });
    let mut peak = Sample::default();
    let mut ramp = None;
    let (mut held_min, mut held_max, mut held_sum, mut held_samples) = (u64::MAX, 0u64, 0f64, 0u64);
    let mut fb_held = 0;
    let mut next_progress = started + Duration::from_secs(10);
    let mut rss_series = Vec::new();
    let mut rss_trace = Vec::new();
    let mut next_rss = started + RSS_EVERY;
    let served_now = |ctx: &Ctx| {
        let t = &ctx.tally;
        t.ws_connects.load(Relaxed)
            + t.fb_opened_longpoll.load(Relaxed)
            + t.fb_opened_sse.load(Relaxed)
    };
    let mut served_at_half = None;
    while started.elapsed() < duration {
        sleep(Duration::from_secs(1)).await;
        if let Ok(s) = gateway.sample() {
            peak.fds = peak.fds.max(s.fds);
            peak.rss_kib = peak.rss_kib.max(s.rss_kib);
            rss_trace.push((started.elapsed().as_secs_f64(), s.rss_kib));
        }
        if served_at_half.is_none() && started.elapsed() >= duration / 2 {
            served_at_half = Some(served_now(&ctx));
        }
        let held = ctx.tally.ws_held.load(Relaxed);
        fb_held = fb_held.max(ctx.tally.fb_active.load(Relaxed));
        if ramp.is_none() && held as f64 >= RAMPED * cli.conns as f64 {
            ramp = Some(started.elapsed().as_secs_f64());
        }
        if ramp.is_some() {
            held_min = held_min.min(held);
            held_max = held_max.max(held);
            held_sum += held as f64;
            held_samples += 1;
        }
        if Instant::now() >= next_rss {
            next_rss += RSS_EVERY;
            rss_series.push(gateway.sample().unwrap_or_default().rss_kib);
        }
        if Instant::now() >= next_progress {
            next_progress += Duration::from_secs(10);
            let t = &ctx.tally;
            let s = gateway.sample().unwrap_or_default();
            progress(&format!(
                "{} t={:>3}s ws held {} sent {} echoed {} | fb open {} acked {} | kills {} | gateway {} fds {} MiB | failures {}",
                name,
                started.elapsed().as_secs(),
                held,
                t.ws_sent.load(Relaxed),
                t.ws_echoed.load(Relaxed),
                t.fb_active.load(Relaxed),
                t.fb_acked.load(Relaxed),
                ctx.chaos.count(),
                s.fds,
                s.rss_kib / 1024,
                ctx.failures.total(),
            ));
        }
    }
    let served = (served_at_half.unwrap_or(0), served_now(&ctx));
    if let Some(v) = vanisher {
        v.abort();
    }
    let _ = stop_tx.send(true);
    let left = timeout(LEAVE_DEADLINE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await
    .is_ok();
    if !left {
        ctx.failures.record(
            "clients did not leave in time",
            format!("{} still running after {LEAVE_DEADLINE:?}", tasks.len()),
        );
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
    let held = match held_samples {
        0 => (0, 0, 0.0),
        n => (held_min, held_max, held_sum / n as f64),
    };
    Phase {
        ctx,
        peak,
        ramp,
        held,
        fb_held,
        left,
        rss_series,
        rss_trace,
        served,
        elapsed: started.elapsed(),
    }
}

/// Waits (bounded) until the gateway holds no more descriptors than
/// `cold_fds` plus the slack and `/metrics` shows nothing active; then
/// lets it settle 5 s and takes its RSS.
async fn settle(cli: &Cli, gateway: &Gateway, cold_fds: usize) -> Settled {
    let started = Instant::now();
    let limit = Duration::from_secs_f64(cli.settle_secs);
    loop {
        let metrics = gateway.metrics().await.unwrap_or_default();
        let ws_active = metrics.sum("wsgate_websocket_connections_active", &[]);
        let fb_active = metrics.sum("wsgate_fallback_sessions_active", &[]);
        sleep(Duration::from_millis(200)).await;
        let sample = gateway.sample().unwrap_or_default();
        let back = sample.fds > 0
            && sample.fds <= cold_fds + cli.fd_slack
            && ws_active == 0.0
            && fb_active == 0.0;
        if back || started.elapsed() >= limit {
            let waited = started.elapsed();
            if back {
                sleep(Duration::from_secs(5)).await;
            }
            let later = gateway.sample().unwrap_or_default();
            return Settled {
                sample: Sample {
                    fds: sample.fds,
                    rss_kib: later.rss_kib,
                },
                ws_active,
                fb_active,
                waited,
                back,
            };
        }
        sleep(Duration::from_millis(300)).await;
    }
}

/// Prints every figure and check; `true` if all checks passed.
#[allow(clippy::too_many_arguments)]
fn report(
    cli: &Cli,
    cold: &Sample,
    (warm_phase, warm): (&Phase, &Settled),
    (soak, after): (&Phase, &Settled),
    chaos: &Chaos,
    metrics: &Metrics,
    alive: bool,
    elapsed: Duration,
) -> bool {
    let mib = |kib: u64| kib as f64 / 1024.0;
    let get = |c: &std::sync::atomic::AtomicU64| c.load(Relaxed);
    println!("summary");
    println!("  duration_total_s            {:.0}", elapsed.as_secs_f64());
    println!("  backend_kills_announced     {}", chaos.count());
    for (name, phase) in [("warmup", warm_phase), ("soak", soak)] {
        let t = &phase.ctx.tally;
        println!(
            "  {name}: {:.0} s | ws held after ramp (in {}) min {} mean {:.0} max {} of {} | ws connects {} | fb sessions {} (max open {} of {})",
            phase.elapsed.as_secs_f64(),
            phase.ramp.map_or("never".into(), |r| format!("{r:.1} s")),
            phase.held.0,
            phase.held.2,
            phase.held.1,
            cli.conns,
            get(&t.ws_connects),
            get(&t.fb_opened_longpoll) + get(&t.fb_opened_sse),
            phase.fb_held,
            cli.fallback,
        );
    }
    println!("  soak figures:");
    let t = &soak.ctx.tally;
    for (name, value) in t.figures() {
        if name != "ws_held" && name != "fb_active" {
            println!("    {name:<25} {value}");
        }
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    for (name, h) in [("ws", &soak.ctx.ws_rtt), ("fb", &soak.ctx.fb_rtt)] {
        println!(
            "    {name}_echo_rtt_ms            p50 ≤{:.1} p99 ≤{:.1} p99.9 ≤{:.1} ({} samples, power-of-two buckets)",
            ms(h.percentile(50.0)),
            ms(h.percentile(99.0)),
            ms(h.percentile(99.9)),
            h.count()
        );
    }
    let age = |a: &std::sync::atomic::AtomicI64, b: &std::sync::atomic::AtomicI64| {
        a.load(Relaxed).max(b.load(Relaxed))
    };
    let ws_age = age(&soak.ctx.ws_lost_age_ms, &warm_phase.ctx.ws_lost_age_ms);
    let fb_age = age(&soak.ctx.fb_lost_age_ms, &warm_phase.ctx.fb_lost_age_ms);
    let shown = |ms: i64| match ms {
        i64::MIN => "none lost".to_string(),
        ms if ms < 0 => format!("{} ms after", -ms),
        ms => format!("{ms} ms before"),
    };
    println!(
        "    lost_oldest_sent          ws {} | fb {} the kill's announcement (both rounds)",
        shown(ws_age),
        shown(fb_age)
    );
    println!(
        "  gateway_fds                 cold {} | after warm-up {} | peak {} | after {} (back in {:.1} s)",
        cold.fds,
        warm.sample.fds,
        soak.peak.fds.max(warm_phase.peak.fds),
        after.sample.fds,
        after.waited.as_secs_f64()
    );
    println!(
        "  gateway_rss_mib             cold {:.1} | after warm-up {:.1} | peak {:.1} | after {:.1}",
        mib(cold.rss_kib),
        mib(warm.sample.rss_kib),
        mib(soak.peak.rss_kib.max(warm_phase.peak.rss_kib)),
        mib(after.sample.rss_kib)
    );
    let series: Vec<String> = soak
        .rss_series
        .iter()
        .map(|&k| format!("{:.0}", mib(k)))
        .collect();
    println!(
        "  gateway_rss_mib_every_{}s   {}",
        RSS_EVERY.as_secs(),
        series.join(" ")
    );
    println!(
        "  gateway_active_after        websockets {} | fallback sessions {}",
        after.ws_active, after.fb_active
    );
    let m = |name: &str, labels: &[&str]| metrics.sum(name, labels).round() as i64;
    println!("  gateway /metrics at the end (both rounds):");
    println!(
        "    handshakes accepted {} rejected {}",
        m(
            "wsgate_websocket_handshakes_total",
            &["outcome=\"accepted\""]
        ),
        m(
            "wsgate_websocket_handshakes_total",
            &["outcome=\"rejected\""]
        ),
    );
    for line in metrics.series("wsgate_websocket_handshakes_total") {
        if line.contains("outcome=\"rejected\"") {
            println!("      {line}");
        }
    }
    println!(
        "    1011 sent to clients {} | sessions ended client_gone {} backend_gone {} close_handshake {}",
        m("wsgate_websocket_gateway_close_codes_total", &["side=\"client\"", "code=\"1011\""]),
        m("wsgate_websocket_sessions_ended_total", &["end=\"client_gone\""]),
        m("wsgate_websocket_sessions_ended_total", &["end=\"backend_gone\""]),
        m("wsgate_websocket_sessions_ended_total", &["end=\"close_handshake\""]),
    );
    println!(
        "    fallback sessions opened {} | messages client_to_backend {} backend_to_client {}",
        m("wsgate_fallback_sessions_total", &[]),
        m(
            "wsgate_fallback_messages_total",
            &["direction=\"client_to_backend\""]
        ),
        m(
            "wsgate_fallback_messages_total",
            &["direction=\"backend_to_client\""]
        ),
    );
    println!(
        "    limit refusals {} | backend connect errors {}",
        m("wsgate_limit_refusals_total", &[]),
        m("wsgate_backend_connect_errors_total", &[]),
    );
    for line in metrics.series("wsgate_limit_refusals_total") {
        println!("      {line}");
    }

    let mut problems: Vec<String> = Vec::new();
    for (name, phase) in [("warm-up", warm_phase), ("soak", soak)] {
        let failures = &phase.ctx.failures;
        for (kind, n) in failures.by_kind() {
            problems.push(format!("{name}: {n} × {kind}"));
        }
        for line in failures.first() {
            println!("  {name} failure: {line}");
        }
        if !phase.left {
            problems.push(format!("{name}: clients did not leave in time"));
        }
        if phase.ramp.is_none() {
            problems.push(format!(
                "{name}: never had {:.0}% of the connections open",
                RAMPED * 100.0
            ));
        }
        let t = &phase.ctx.tally;
        let ws_accounted = get(&t.ws_echoed)
            + get(&t.ws_lost_in_flight)
            + get(&t.ws_abandoned_at_vanish)
            + get(&t.ws_unechoed_at_failure);
        println!(
            "  {name} ws_accounting: sent {} = echoed {} + lost with a killed backend {} + abandoned by vanishing clients {} + on failed connections {}",
            get(&t.ws_sent),
            get(&t.ws_echoed),
            get(&t.ws_lost_in_flight),
            get(&t.ws_abandoned_at_vanish),
            get(&t.ws_unechoed_at_failure)
        );
        if ws_accounted != get(&t.ws_sent) {
            problems.push(format!(
                "{name}: ws: {} sent but {ws_accounted} accounted for",
                get(&t.ws_sent)
            ));
        }
        let fb_accounted =
            get(&t.fb_acked_echoed) + get(&t.fb_lost_with_backend) + get(&t.fb_abandoned_acked);
        println!(
            "  {name} fb_accounting: acked {} = echoed {} + lost with a killed backend, reported by close 1011 {} + on abandoned sessions {}",
            get(&t.fb_acked),
            get(&t.fb_acked_echoed),
            get(&t.fb_lost_with_backend),
            get(&t.fb_abandoned_acked)
        );
        if fb_accounted != get(&t.fb_acked) {
            problems.push(format!(
                "{name}: fallback: {} acknowledged but {fb_accounted} accounted for",
                get(&t.fb_acked)
            ));
        }
    }
    if ws_age.max(fb_age) > MAX_LOST_AGE.as_millis() as i64 {
        problems.push(format!(
            "a message lost with a killed backend was sent {} ms before the kill (over {MAX_LOST_AGE:?}): lost earlier",
            ws_age.max(fb_age)
        ));
    }
    if !alive {
        problems.push("the gateway is gone".into());
    }
    for (name, settled) in [("after warm-up", warm), ("after the soak", after)] {
        if !settled.back {
            problems.push(format!(
                "{name}: not back to baseline within {:.0} s: {} fds (cold {} + slack {}), {} websockets, {} fallback sessions active",
                cli.settle_secs, settled.sample.fds, cold.fds, cli.fd_slack, settled.ws_active, settled.fb_active
            ));
        }
    }
    // Memory: the allocator keeps what it once needed, so RSS does not go
    // back to the cold figure; it must not grow while clients come and go,
    // and leaving must not add to it.
    let half = soak.elapsed.as_secs_f64().min(cli.seconds) / 2.0;
    let second_half: Vec<(f64, u64)> = soak
        .rss_trace
        .iter()
        .copied()
        .filter(|&(t, _)| t >= half)
        .collect();
    let served_second_half = soak.served.1.saturating_sub(soak.served.0);
    match fit(&second_half) {
        Some((slope_kib_per_s, mean_kib, span_s)) => {
            let growth_mib = slope_kib_per_s * span_s / 1024.0;
            println!(
                "  rss_growth_check            {growth_mib:+.2} MiB over the soak's second half ({span_s:.0} s, {} samples, {served_second_half} connections and sessions opened) <= {:.1} MiB (a leak of {:.0} B each would exceed it)",
                second_half.len(),
                cli.rss_growth_mib,
                cli.rss_growth_mib * 1024.0 * 1024.0 / served_second_half.max(1) as f64,
            );
            if growth_mib > cli.rss_growth_mib {
                problems.push(format!(
                    "RSS grew {growth_mib:.2} MiB over the soak's second half (limit {:.1} MiB)",
                    cli.rss_growth_mib
                ));
            }
            println!(
                "  rss_leave_check             after {:.1} MiB <= second-half mean {:.1} MiB + {:.1} MiB",
                mib(after.sample.rss_kib),
                mean_kib / 1024.0,
                cli.rss_leave_slack_mib
            );
            if after.sample.rss_kib as f64 > mean_kib + cli.rss_leave_slack_mib * 1024.0 {
                problems.push(format!(
                    "RSS after the clients left {:.1} MiB is above the soak's second-half mean {:.1} MiB + {:.1} MiB",
                    mib(after.sample.rss_kib),
                    mean_kib / 1024.0,
                    cli.rss_leave_slack_mib
                ));
            }
        }
        None => problems.push("too few RSS samples in the soak's second half".into()),
    }
    if problems.is_empty() {
        println!("result PASS");
        true
    } else {
        for p in &problems {
            println!("  FAILED: {p}");
        }
        println!("result FAIL");
        false
    }
}

/// Least-squares line through `(t, kib)`: slope in KiB/s, mean KiB, and
/// the time span covered; `None` for fewer than 10 samples.
fn fit(samples: &[(f64, u64)]) -> Option<(f64, f64, f64)> {
    if samples.len() < 10 {
        return None;
    }
    let n = samples.len() as f64;
    let mean_t = samples.iter().map(|s| s.0).sum::<f64>() / n;
    let mean_y = samples.iter().map(|s| s.1 as f64).sum::<f64>() / n;
    let (mut num, mut den) = (0.0, 0.0);
    for &(t, y) in samples {
        num += (t - mean_t) * (y as f64 - mean_y);
        den += (t - mean_t) * (t - mean_t);
    }
    let span = samples.last()?.0 - samples.first()?.0;
    (den > 0.0).then(|| (num / den, mean_y, span))
}

/// A progress line on stderr.
fn progress(message: &str) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (h, m, s) = ((now / 3600) % 24, (now / 60) % 60, now % 60);
    eprintln!("[soak {h:02}:{m:02}:{s:02}] {message}");
}

#[cfg(test)]
mod tests {
    use super::fit;

    #[test]
    fn fit_finds_slope_and_mean() {
        let line: Vec<(f64, u64)> = (0..20).map(|t| (t as f64, 100 + 2 * t)).collect();
        let (slope, mean, span) = fit(&line).unwrap();
        assert!((slope - 2.0).abs() < 1e-9);
        assert!((mean - 119.0).abs() < 1e-9);
        assert_eq!(span, 19.0);
        assert!(fit(&line[..5]).is_none());
    }
}
