//! HTTP/2 through the gateway with clients nobody here wrote: `curl
//! --http2`, `nghttp` and `h2load` (Debian `nghttp2-client`), and Python's
//! `h2` for WebSockets over HTTP/2 (RFC 8441), including two on one
//! connection with one reader stalled, and malformed extended CONNECTs.
//! `scripts/test.sh` installs them all; a missing one fails the test.

use std::net::SocketAddr;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

use crate::support::backend::{http_echo_backend, Answer, Behaviour, WsBackend};
use crate::support::h2::TLS_LISTENER;
use crate::support::logs;
use crate::support::ops::{metric, scrape, value};
use crate::support::TestGateway;

/// The venv wrapper every Python test client runs through.
const PYTHON: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/python");
const CLIENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients");

/// Runs `program args` off the async runtime; a missing program fails.
async fn run(program: &str, args: Vec<String>) -> Output {
    let program = program.to_string();
    tokio::task::spawn_blocking(move || {
        Command::new(&program)
            .args(&args)
            .current_dir(CLIENTS)
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run {program}: {e}; install it with scripts/test.sh")
            })
    })
    .await
    .unwrap()
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn routes(routes: &[(&str, String)]) -> String {
    let mut config = format!("{TLS_LISTENER}\n[server]\nshutdown_grace = \"5s\"\n");
    for (path, backend) in routes {
        config.push_str(&format!(
            "\n[[routes]]\npath = \"{path}\"\nbackends = [\"{backend}\"]\n"
        ));
    }
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_http2_gets_and_uploads() {
    let (backend, _) = http_echo_backend().await;
    let gw = TestGateway::start(&routes(&[("/", format!("http://{backend}"))])).await;
    let url = format!("https://127.0.0.1:{}/api?x=1", gw.addr().port());
    let args = |extra: &[&str]| {
        let mut a: Vec<String> = [
            "-sk",
            "--http2",
            "-w",
            "\\n%{http_version} %{http_code}",
            "-H",
            "Cookie: a=1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a.push(url.clone());
        a
    };
    let get = run("curl", args(&[])).await;
    let (out, err) = text(&get);
    assert!(out.ends_with("\n2 200"), "{out}\n{err}");
    let body = out.to_lowercase();
    assert!(body.starts_with("get /api?x=1\n"), "{body}");
    assert!(
        body.contains(&format!("host: 127.0.0.1:{}", gw.addr().port())),
        "{body}"
    );
    assert!(
        body.contains("x-forwarded-proto: https") && body.contains("cookie: a=1"),
        "{body}"
    );
    let upload = run("curl", args(&["--data-binary", "@h2_websockets.py"])).await;
    let (out, _) = text(&upload);
    let script = std::fs::read_to_string(format!("{CLIENTS}/h2_websockets.py")).unwrap();
    assert!(out.contains(&script), "the upload came back whole");
    assert!(out.ends_with("\n2 200"), "{out}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nghttp_sees_extended_connect_advertised_and_is_served() {
    let gw = TestGateway::start(&routes(&[("/", "builtin:echo".into())])).await;
    let url = format!("https://127.0.0.1:{}/", gw.addr().port());
    let output = run("nghttp", vec!["-nv".into(), url]).await;
    let (out, err) = text(&output);
    assert!(output.status.success(), "{out}\n{err}");
    assert!(
        out.contains("SETTINGS_ENABLE_CONNECT_PROTOCOL(0x08):1"),
        "{out}"
    );
    assert!(
        out.contains("SETTINGS_MAX_CONCURRENT_STREAMS(0x03):128"),
        "{out}"
    );
    assert!(out.contains(":status: 200"), "{out}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2load_many_streams_on_few_connections() {
    let (backend, _) = http_echo_backend().await;
    let config = format!(
        "{}\n[limits]\nmax_connections_per_ip = 0\n",
        routes(&[("/", format!("http://{backend}"))])
    );
    let gw = TestGateway::start(&config).await;
    let url = format!("https://127.0.0.1:{}/load", gw.addr().port());
    let args: Vec<String> = ["-n", "2000", "-c", "4", "-m", "32", &url]
        .map(String::from)
        .to_vec();
    let output = run("h2load", args).await;
    let (out, err) = text(&output);
    assert!(output.status.success(), "{out}\n{err}");
    assert!(out.contains("Application protocol: h2"), "{out}");
    assert!(out.contains("2000 succeeded, 0 failed, 0 errored"), "{out}");
    assert!(out.contains("status codes: 2000 2xx"), "{out}");
    let opened = metric(gw.admin, "wsgate_http2_connections_total", &[]).await;
    assert!(
        opened <= 4.0,
        "4 connections carried 2000 requests ({opened} ended)"
    );
    gw.stop().await;
}

/// A WebSocket backend that sends 16 KiB messages as fast as the gateway
/// takes them, counting the bytes it got rid of until the gateway closes.
///
/// Once the client has left, the gateway sends its close and reads what the
/// backend still sends until the close reply comes, discarding it: bytes
/// the firehose gets away after that close are not buffered anywhere, so
/// they are not counted (a loaded machine may take a while to notice the
/// client's process exit, and loopback moves GB/s meanwhile).
async fn firehose_backend() -> (SocketAddr, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let written = Arc::new(AtomicU64::new(0));
    let counter = written.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                let (mut sink, mut stream) = ws.split();
                let closed = Arc::new(AtomicBool::new(false));
                let seen = closed.clone();
                tokio::spawn(async move {
                    while let Some(Ok(message)) = stream.next().await {
                        if message.is_close() {
                            break;
                        }
                    }
                    seen.store(true, Ordering::SeqCst);
                });
                let chunk = vec![7u8; 16 * 1024];
                while sink.send(Message::Binary(chunk.clone())).await.is_ok() {
                    if closed.load(Ordering::SeqCst) {
                        break;
                    }
                    counter.fetch_add(chunk.len() as u64, Ordering::SeqCst);
                }
            });
        }
    });
    (addr, written)
}

/// Bytes that may sit between the firehose and a client that stopped
/// reading: the kernel's socket buffers on the backend hop (its largest
/// autotuned receive buffer plus send buffer, from `tcp_rmem`/`tcp_wmem`),
/// and a slack of 8 MiB for everything else: the relay's and hyper's few
/// 16 KiB buffers, h2's send buffer, the client's 64 KiB stream window and
/// the client hop's socket buffers. An unbounded buffer (hyper 1.8–1.10 on
/// a CONNECT stream) passes it within the stall: loopback moves GB/s.
fn stall_bound() -> u64 {
    let max = |file: &str| {
        let text = std::fs::read_to_string(format!("/proc/sys/net/ipv4/{file}")).unwrap();
        text.split_whitespace()
            .last()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    max("tcp_rmem") + max("tcp_wmem") + (8 << 20)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_h2_two_websockets_on_one_connection_one_reader_stalled() {
    let (firehose, written) = firehose_backend().await;
    let echo = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let config = routes(&[
        ("/firehose", format!("ws://{firehose}")),
        ("/echo", echo.url()),
    ]);
    let gw = TestGateway::start(&config).await;
    let port = gw.addr().port().to_string();
    let output = run(
        PYTHON,
        vec!["h2_websockets.py".into(), "127.0.0.1".into(), port],
    )
    .await;
    let (out, err) = text(&output);
    assert!(
        output.status.success() && out.contains("all checks passed"),
        "{out}\n{err}"
    );
    let findings: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    let received = findings["a_received_total"].as_u64().unwrap();
    let sent = written.load(Ordering::SeqCst);
    assert!(
        sent.saturating_sub(received) < stall_bound(),
        "the firehose got {sent} bytes away while the client read {received}: {findings}"
    );
    assert!(
        findings["echoes_while_a_stalled"].as_u64().unwrap() >= 300,
        "{findings}"
    );
    println!("{findings} firehose sent {sent}");
    gw.wait_quiet().await;
    gw.stop().await;
}

/// Each malformed extended CONNECT gets its answer, a log line and a
/// metric; none reaches the backend.
#[tokio::test]
async fn python_h2_malformed_extended_connects_never_reach_the_backend() {
    let logs = logs::capture();
    let backend = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let gw = TestGateway::start(&routes(&[("/", backend.url())])).await;
    let port = gw.addr().port().to_string();
    let output = run(
        PYTHON,
        vec!["h2_bad_input.py".into(), "127.0.0.1".into(), port],
    )
    .await;
    let (out, err) = text(&output);
    assert!(
        output.status.success() && out.contains("all cases ran"),
        "{out}\n{err}"
    );
    println!("{out}");
    let cases: Vec<Value> = out
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let case = |name: &str| {
        cases
            .iter()
            .find(|c| c["case"] == name)
            .unwrap_or_else(|| panic!("{name}: {out}"))
            .clone()
    };
    // RFC 9113 §8.1.1: a malformed request is a stream error PROTOCOL_ERROR,
    // sent by h2 before hyper hands the request over (`transfer-encoding`
    // is a connection-specific field, which makes a request malformed,
    // §8.2.2); hyper resets a CONNECT that declares a body with
    // INTERNAL_ERROR. The watch puts a 400 before each reset.
    let answered = [
        ("no_path", 0x1),
        ("no_scheme", 0x1),
        ("transfer_encoding", 0x1),
        ("declared_body", 0x2),
    ];
    for (name, code) in answered {
        let got = case(name);
        assert_eq!(got["status"], 400, "{got}");
        assert_eq!(got["ended"], true, "{got}");
        assert_eq!(got["reset"], code, "the reset still follows: {got}");
        assert_eq!(got["closed"], false, "the connection lives: {got}");
    }
    // The client had ended its side: the 400 ends the stream, no reset.
    let get = case("get_transfer_encoding");
    assert_eq!(
        (get["status"].clone(), get["ended"].clone()),
        (400.into(), true.into()),
        "{get}"
    );
    assert!(get["reset"].is_null(), "{get}");
    assert_eq!(case("unknown_protocol")["status"], 501);
    assert_eq!(case("malformed_version")["status"], 400);
    assert_eq!(case("before_settings")["status"], 400);
    // Only a zero length spelled otherwise than `0` passes h2 and hyper
    // (both read it as 0) and meets the gateway's own check.
    let zero = case("zero_length_00");
    assert_eq!(zero["status"], 400, "{zero}");
    assert_eq!(backend.connection_count(), 0, "no backend dialled");
    let m = scrape(gw.admin).await;
    let reasons = [
        ("connect_protocol", 1.0),
        ("version_malformed", 1.0),
        ("connect_early", 1.0),
        ("connect_body", 1.0),
    ];
    for (reason, n) in reasons {
        let labels = [("reason", reason), ("http_version", "2")];
        assert_eq!(
            value(&m, "wsgate_websocket_handshakes_total", &labels),
            n,
            "{reason}\n{m}"
        );
        logs.wait_for_line(&["websocket handshake rejected", reason])
            .await;
    }
    let refused = [("malformed", 4.0), ("connect_body", 1.0)];
    for (reason, n) in refused {
        let labels = [("reason", reason)];
        let got = value(&m, "wsgate_http2_requests_refused_total", &labels);
        assert_eq!(got, n, "{reason}\n{m}");
    }
    let resets = [("side", "gateway"), ("code", "protocol_error")];
    assert_eq!(
        value(&m, "wsgate_http2_stream_resets_total", &resets),
        3.0,
        "{m}"
    );
    let refusal = [
        "HTTP/2 request refused before it reached the gateway",
        "answer=\"400\"",
    ];
    assert_eq!(
        logs.lines_with(&refusal).len(),
        5,
        "one line per connection: no_path, no_scheme, transfer_encoding, declared_body, get"
    );
    assert!(logs.lines_with(&["why=\"connect_body\""]).len() == 1);
    gw.stop().await;
}
