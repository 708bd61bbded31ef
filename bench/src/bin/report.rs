//! `report`: turns the results recorded by `bench/run.sh` (or `bench/h2.sh`)
//! into one markdown table — median (min–max) over the rounds for every
//! scenario and target, wsgate's ratio to the better of nginx and HAProxy,
//! and the team's goal.
//!
//! Input lines are `metric<TAB>target<TAB>round<TAB>value`; a value that is
//! not a number (`n/a (TLS not merged)`, `failed`) is shown when a cell has
//! no numbers at all.

use std::collections::BTreeMap;
use std::process::ExitCode;

/// The targets, in column order.
const TARGETS: [&str; 6] = [
    "direct",
    "wsgate",
    "wsgate-w0",
    "wsgate-mt",
    "nginx",
    "haproxy",
];

/// Column headings, in [`TARGETS`] order.
const HEADINGS: [&str; 6] = [
    "direct",
    "wsgate (1 worker)",
    "wsgate (default workers)",
    "wsgate (work-stealing, 2 threads)",
    "nginx",
    "HAProxy",
];

/// Which way a figure is better.
#[derive(Clone, Copy, PartialEq)]
enum Better {
    Higher,
    Lower,
}

/// One row of the table.
struct Row {
    /// What the row shows.
    label: &'static str,
    /// The recorded metric (`scenario.name`).
    metric: &'static str,
    /// Which way is better.
    better: Better,
    /// The goal for wsgate ÷ best of nginx and HAProxy, if there is one.
    goal: Option<f64>,
}

/// Shorthand for a table row.
const fn row(label: &'static str, metric: &'static str, better: Better, goal: Option<f64>) -> Row {
    Row {
        label,
        metric,
        better,
        goal,
    }
}

const ROWS: &[Row] = &[
    row(
        "Throughput, 64 B (echoes/s)",
        "tp64.msgs_per_s",
        Better::Higher,
        None,
    ),
    row(
        "Throughput, 4 KiB (echoes/s)",
        "tp4k.msgs_per_s",
        Better::Higher,
        None,
    ),
    row(
        "Throughput, 64 KiB (echoes/s)",
        "tp64k.msgs_per_s",
        Better::Higher,
        None,
    ),
    row(
        "Throughput, TLS 4 KiB (echoes/s)",
        "tls4k.msgs_per_s",
        Better::Higher,
        None,
    ),
    row(
        "**Proxy CPU per relayed message, 64 B (µs)**",
        "tp64.cpu_us_per_msg",
        Better::Lower,
        Some(0.7),
    ),
    row(
        "**Proxy CPU per relayed message, 4 KiB (µs)**",
        "tp4k.cpu_us_per_msg",
        Better::Lower,
        Some(0.7),
    ),
    row(
        "**Proxy CPU per relayed message, 64 KiB (µs)**",
        "tp64k.cpu_us_per_msg",
        Better::Lower,
        Some(0.7),
    ),
    row(
        "**Proxy CPU per relayed message, TLS 4 KiB (µs)**",
        "tls4k.cpu_us_per_msg",
        Better::Lower,
        Some(0.8),
    ),
    row(
        "RTT p50 at fixed rate (µs)",
        "lat.rtt_p50_us",
        Better::Lower,
        None,
    ),
    row(
        "RTT p99 at fixed rate (µs)",
        "lat.rtt_p99_us",
        Better::Lower,
        None,
    ),
    row(
        "Added RTT p50 over direct, paired (µs)",
        "lat.added_p50_us",
        Better::Lower,
        None,
    ),
    row(
        "Added RTT p99 over direct, paired (µs)",
        "lat.added_p99_us",
        Better::Lower,
        Some(0.5),
    ),
    row(
        "Proxy RSS per idle WebSocket (KiB)",
        "idle.rss_kib_per_conn",
        Better::Lower,
        Some(0.8),
    ),
    row(
        "Proxy RSS per idle WebSocket, no message, browser headers (KiB)",
        "idleb.rss_kib_per_conn",
        Better::Lower,
        Some(0.8),
    ),
    row(
        "Proxy RSS per idle WebSocket, no message, browser headers, TLS (KiB)",
        "idlebtls.rss_kib_per_conn",
        Better::Lower,
        Some(0.8),
    ),
    row(
        "tungstenite shapes: echoes/s, 4 KiB",
        "tt4k.msgs_per_s",
        Better::Higher,
        None,
    ),
    row(
        "tungstenite shapes: **CPU per relayed message, 64 B (µs)**",
        "tt64.cpu_us_per_msg",
        Better::Lower,
        Some(0.7),
    ),
    row(
        "tungstenite shapes: **CPU per relayed message, 4 KiB (µs)**",
        "tt4k.cpu_us_per_msg",
        Better::Lower,
        Some(0.7),
    ),
    row(
        "tungstenite shapes: **CPU per relayed message, 64 KiB (µs)**",
        "tt64k.cpu_us_per_msg",
        Better::Lower,
        Some(0.7),
    ),
    row(
        "tungstenite shapes: RTT p99 at 5k msg/s (µs)",
        "tlat.rtt_p99_us",
        Better::Lower,
        None,
    ),
    row(
        "tungstenite shapes: handshakes/s, 20 loops",
        "ths.handshakes_per_s",
        Better::Higher,
        None,
    ),
    row(
        "tungstenite shapes: **CPU per handshake, 20 loops (µs)**",
        "ths.cpu_us_per_handshake",
        Better::Lower,
        Some(0.8),
    ),
    row(
        "Handshakes/s, plain",
        "hs.handshakes_per_s",
        Better::Higher,
        None,
    ),
    row(
        "Proxy CPU per handshake, plain (µs)",
        "hs.cpu_us_per_handshake",
        Better::Lower,
        Some(0.7),
    ),
    row(
        "Handshakes/s, TLS",
        "hstls.handshakes_per_s",
        Better::Higher,
        None,
    ),
    row(
        "Proxy CPU per handshake, TLS (µs)",
        "hstls.cpu_us_per_handshake",
        Better::Lower,
        Some(1.0),
    ),
    // bench/h2.sh: HTTP/2 on the TLS listener.
    row(
        "HTTP/2 GETs (requests/s)",
        "h2get.reqs_per_s",
        Better::Higher,
        None,
    ),
    row(
        "**Proxy CPU per HTTP/2 GET (µs)**",
        "h2get.cpu_us_per_req",
        Better::Lower,
        None,
    ),
    row(
        "HTTP/1.1 GETs on TLS (requests/s)",
        "h1get.reqs_per_s",
        Better::Higher,
        None,
    ),
    row(
        "Proxy CPU per HTTP/1.1 GET on TLS (µs)",
        "h1get.cpu_us_per_req",
        Better::Lower,
        None,
    ),
    row(
        "WebSocket over HTTP/2, 64 B (echoes/s)",
        "h2ws64.msgs_per_s",
        Better::Higher,
        None,
    ),
    row(
        "WebSocket over HTTP/2, 4 KiB (echoes/s)",
        "h2ws4k.msgs_per_s",
        Better::Higher,
        None,
    ),
    row(
        "**Proxy CPU per relayed message over HTTP/2, 64 B (µs)**",
        "h2ws64.cpu_us_per_msg",
        Better::Lower,
        None,
    ),
    row(
        "**Proxy CPU per relayed message over HTTP/2, 4 KiB (µs)**",
        "h2ws4k.cpu_us_per_msg",
        Better::Lower,
        None,
    ),
];

/// Values of one metric for one target, by round.
type Rounds = BTreeMap<u32, String>;

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: report RESULTS.tsv");
        return ExitCode::from(2);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("report: {path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut results: BTreeMap<(String, String), Rounds> = BTreeMap::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.splitn(4, '\t').collect();
        if let [metric, target, round, value] = fields[..] {
            let round = round.parse().unwrap_or(0);
            let key = (metric.to_string(), target.to_string());
            results
                .entry(key)
                .or_default()
                .insert(round, value.to_string());
        }
    }
    print_table(&results);
    ExitCode::SUCCESS
}

/// Prints the markdown table.
fn print_table(results: &BTreeMap<(String, String), Rounds>) {
    // Only the targets measured in this run get a column.
    let present: Vec<usize> = (0..TARGETS.len())
        .filter(|&i| results.keys().any(|(_, target)| target == TARGETS[i]))
        .collect();
    let headings: Vec<&str> = present.iter().map(|&i| HEADINGS[i]).collect();
    println!(
        "| scenario | {} | wsgate ÷ best of nginx/HAProxy | goal | status |",
        headings.join(" | ")
    );
    println!("|---|{}---:|---:|---|", "---:|".repeat(present.len()));
    let empty = Rounds::new();
    // A script records only its own scenarios: rows nobody measured are left out.
    let measured = |row: &Row| results.keys().any(|(metric, _)| metric == row.metric);
    for row in ROWS.iter().filter(|row| measured(row)) {
        let rounds = |target: &str| {
            results
                .get(&(row.metric.to_string(), target.to_string()))
                .unwrap_or(&empty)
        };
        let mut cells = Vec::new();
        let mut medians = BTreeMap::new();
        for target in present.iter().map(|&i| TARGETS[i]) {
            let (values, note) = numbers(rounds(target));
            let cell = match summary(&values) {
                Some((median, min, max)) => {
                    medians.insert(target, median);
                    format!("{} ({}–{})", fmt(median), fmt(min), fmt(max))
                }
                None => note.unwrap_or_else(|| "n/a".to_string()),
            };
            cells.push(cell);
        }
        let best = match (medians.get("nginx"), medians.get("haproxy")) {
            (Some(&a), Some(&b)) if row.better == Better::Lower => Some(a.min(b)),
            (Some(&a), Some(&b)) => Some(a.max(b)),
            (a, b) => a.or(b).copied(),
        };
        // A ratio to a value at or below zero (an added latency lost in the
        // noise) says nothing; it is shown as inconclusive.
        let ratio = match (medians.get("wsgate"), best) {
            (Some(&w), Some(b)) if b > 0.0 => Some(w / b),
            _ => None,
        };
        let inconclusive = ratio.is_none() && best.is_some_and(|b| b <= 0.0);
        let status = match (ratio, row.goal) {
            _ if inconclusive => "inconclusive (best ≤ 0: noise)",
            (Some(r), Some(goal)) if r <= goal => "met",
            (Some(_), Some(_)) => "**not met**",
            (None, Some(_)) => "not measured",
            _ => "",
        };
        println!(
            "| {} | {} | {} | {} | {} |",
            row.label,
            cells.join(" | "),
            ratio
                .map(|r| format!("{r:.2}×"))
                .unwrap_or_else(|| "—".into()),
            row.goal.map(|g| format!("≤ {g}×")).unwrap_or_default(),
            status,
        );
    }
}

/// The numeric values of a cell and the first non-numeric note, if any.
fn numbers(rounds: &Rounds) -> (Vec<f64>, Option<String>) {
    let mut values = Vec::new();
    let mut note = None;
    for value in rounds.values() {
        match value.parse::<f64>() {
            Ok(v) => values.push(v),
            Err(_) => {
                note.get_or_insert_with(|| value.clone());
            }
        }
    }
    (values, note)
}

/// Median, min and max.
fn summary(values: &[f64]) -> Option<(f64, f64, f64)> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median = match n % 2 {
        1 => sorted[n / 2],
        _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    };
    Some((median, sorted[0], sorted[n - 1]))
}

/// About three significant digits.
fn fmt(v: f64) -> String {
    match v.abs() {
        a if a >= 100.0 => format!("{v:.0}"),
        a if a >= 10.0 => format!("{v:.1}"),
        _ => format!("{v:.2}"),
    }
}
