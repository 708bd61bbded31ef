//! Every limit over real sockets: what an over-limit client gets (503 or
//! 429 with `Retry-After`, 431, or a closed connection), that the backend
//! was spared, and the count `wsgate_limit_refusals_total{limit, answer}`
//! scraped from the admin listener. Counts are read after the gateway has
//! gone quiet (`wait_quiet`), when every cut connection has been counted.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::backend::{http_echo_backend, silent_backend, Answer, Behaviour, WsBackend};
use crate::support::client::{raw_request, read_response, upgrade_request, RawResponse, WAIT};
use crate::support::fallback as fb;
use crate::support::ops::{metric, scrape, value};
use crate::support::raw_ws::{raw_upgrade, read_head};
use crate::support::tls::{tls_connect, Pki};
use crate::support::{one_route, TestGateway};

/// The refusal counter family.
const REFUSALS: &str = "wsgate_limit_refusals_total";

/// `wsgate_limit_refusals_total{limit, answer}` right now.
async fn refusals(admin: SocketAddr, limit: &str, answer: &str) -> f64 {
    metric(admin, REFUSALS, &[("limit", limit), ("answer", answer)]).await
}

/// Every refusal counted so far, whatever the limit.
async fn all_refusals(admin: SocketAddr) -> f64 {
    metric(admin, REFUSALS, &[]).await
}

/// Inserts a `[limits]` table (or any other top-level table) before the
/// listeners of `config`.
fn with_table(config: &str, table: &str) -> String {
    config.replacen("[[listeners]]", &format!("{table}\n\n[[listeners]]"), 1)
}

/// The gateway's config with a `[limits]` table and a route.
fn limited(backend: &str, limits: &str) -> String {
    let config = one_route(&[backend.to_string()], "response_timeout = \"30s\"");
    with_table(&config, &format!("[limits]\n{limits}"))
}

/// Asserts a 503/429 refusal with `Retry-After: 1`.
fn assert_refusal(response: &RawResponse, status: u16) {
    assert_eq!(response.status, status, "{}", response.head);
    assert_eq!(response.header("retry-after").as_deref(), Some("1"));
}

#[tokio::test]
async fn per_address_limit_answers_429_with_retry_after() {
    let backend = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let gw = TestGateway::start(&limited(&backend.url(), "max_connections_per_ip = 2")).await;
    let held = [raw_upgrade(gw.addr()).await, raw_upgrade(gw.addr()).await];
    let refused = raw_request(gw.addr(), "GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert_refusal(&refused, 429);
    assert!(refused.body.contains("max_connections_per_ip"));
    // Only the two held sessions ever reached the backend.
    assert_eq!(backend.connection_count(), 2);
    // Counted when refused, before the answer went out.
    assert_eq!(
        refusals(gw.admin, "max_connections_per_ip", "answered").await,
        1.0
    );
    assert_eq!(all_refusals(gw.admin).await, 1.0);
    drop(held);
    gw.wait_quiet().await;
    let _again = raw_upgrade(gw.addr()).await;
    gw.stop().await;
}

#[tokio::test]
async fn total_limit_answers_503() {
    let backend = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let gw = TestGateway::start(&limited(&backend.url(), "max_connections = 1")).await;
    let held = raw_upgrade(gw.addr()).await;
    let refused = raw_request(gw.addr(), &upgrade_request("/", &[])).await;
    assert_refusal(&refused, 503);
    assert_eq!(backend.connection_count(), 1);
    assert_eq!(refusals(gw.admin, "max_connections", "answered").await, 1.0);
    assert_eq!(all_refusals(gw.admin).await, 1.0);
    drop(held);
    gw.wait_quiet().await;
    gw.stop().await;
}

#[tokio::test]
async fn handshakes_in_progress_are_capped() {
    let (addr, dialed) = silent_backend().await;
    let gw = TestGateway::start(&limited(&format!("ws://{addr}"), "max_handshakes = 1")).await;
    let mut stuck = TcpStream::connect(gw.addr()).await.unwrap();
    stuck
        .write_all(upgrade_request("/", &[]).as_bytes())
        .await
        .unwrap();
    let wait_dial = async {
        while dialed.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(WAIT, wait_dial)
        .await
        .expect("first upgrade dials");
    let refused = raw_request(gw.addr(), &upgrade_request("/", &[])).await;
    assert_refusal(&refused, 503);
    assert_eq!(dialed.load(Ordering::SeqCst), 1);
    let m = scrape(gw.admin).await;
    let labels = [("limit", "max_handshakes"), ("answer", "answered")];
    assert_eq!(value(&m, REFUSALS, &labels), 1.0);
    assert_eq!(value(&m, REFUSALS, &[]), 1.0);
    // The upgrade's own rejection reason names the same limit.
    let rejected = [("outcome", "rejected"), ("reason", "max_handshakes")];
    assert_eq!(
        value(&m, "wsgate_websocket_handshakes_total", &rejected),
        1.0
    );
    drop(stuck);
    gw.stop().await;
}

#[tokio::test]
async fn an_oversized_request_head_is_refused() {
    let (addr, count) = http_echo_backend().await;
    let gw = TestGateway::start(&one_route(&[format!("http://{addr}")], "")).await;
    let big = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    let mut stream = TcpStream::connect(gw.addr()).await.unwrap();
    // The gateway may answer before it has read everything: ignore write errors.
    let _ = stream.write_all(big.as_bytes()).await;
    let answer = tokio::time::timeout(WAIT, read_head(&mut stream))
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
    assert_eq!(count.load(Ordering::SeqCst), 0);
    drop(stream);
    gw.wait_quiet().await;
    assert_eq!(refusals(gw.admin, "max_header_size", "answered").await, 1.0);
    assert_eq!(all_refusals(gw.admin).await, 1.0);
    gw.stop().await;
}

#[tokio::test]
async fn a_configured_header_size_is_the_limit() {
    let (addr, count) = http_echo_backend().await;
    let config = limited(&format!("http://{addr}"), "max_header_size = \"16KiB\"");
    let gw = TestGateway::start(&config).await;
    let head = |kib: usize| {
        let filler = "a".repeat(kib * 1024);
        format!("GET / HTTP/1.1\r\nHost: a\r\nX-Big: {filler}\r\n\r\n")
    };
    // Under the configured 16 KiB (and the 64 KiB default): served.
    assert_eq!(raw_request(gw.addr(), &head(12)).await.status, 200);
    assert_eq!(count.load(Ordering::SeqCst), 1);
    // Over 16 KiB, though far under the default: 431, backend spared.
    let mut stream = TcpStream::connect(gw.addr()).await.unwrap();
    let _ = stream.write_all(head(20).as_bytes()).await;
    let answer = tokio::time::timeout(WAIT, read_head(&mut stream))
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
    assert_eq!(count.load(Ordering::SeqCst), 1);
    drop(stream);
    gw.wait_quiet().await;
    assert_eq!(refusals(gw.admin, "max_header_size", "answered").await, 1.0);
    assert_eq!(all_refusals(gw.admin).await, 1.0);
    gw.stop().await;
}

/// How often the slowloris client below sends its next byte.
const DRIP: Duration = Duration::from_millis(100);

/// Writes an endless request head one byte per [`DRIP`] until the write
/// fails; returns how many bytes went out.
async fn drip_head(mut wr: tokio::net::tcp::OwnedWriteHalf) -> usize {
    let head = b"GET / HTTP/1.1\r\nHost: a\r\nX-Drip: ".iter();
    let mut tick = tokio::time::interval(DRIP);
    let mut sent = 0;
    for byte in head.chain(std::iter::repeat(&b'a')) {
        tick.tick().await;
        if wr.write_all(&[*byte]).await.is_err() {
            break;
        }
        sent += 1;
    }
    sent
}

#[tokio::test]
async fn a_drip_fed_request_head_is_cut_at_the_header_read_timeout() {
    let (addr, count) = http_echo_backend().await;
    let config = one_route(&[format!("http://{addr}")], "").replace(
        "shutdown_grace = \"5s\"",
        "shutdown_grace = \"5s\"\nheader_read_timeout = \"300ms\"",
    );
    let gw = TestGateway::start(&config).await;
    let (mut rd, wr) = TcpStream::connect(gw.addr()).await.unwrap().into_split();
    let started = Instant::now();
    let dripping = tokio::spawn(drip_head(wr));
    // Each byte arrives well inside the timeout; the head never completes.
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(WAIT, rd.read_to_end(&mut rest))
        .await
        .expect("the gateway cuts the connection");
    let cut_after = started.elapsed();
    assert!(cut_after >= Duration::from_millis(300), "{cut_after:?}");
    assert!(cut_after < Duration::from_millis(1500), "{cut_after:?}");
    let sent = tokio::time::timeout(WAIT, dripping).await.unwrap().unwrap();
    assert!(sent >= 3, "bytes kept arriving before the cut: {sent}");
    assert_eq!(count.load(Ordering::SeqCst), 0);
    gw.wait_quiet().await;
    assert_eq!(
        refusals(gw.admin, "header_read_timeout", "closed").await,
        1.0
    );
    gw.stop().await;
}

/// Reads until the gateway closes the connection (bounded by [`WAIT`]).
async fn until_closed(stream: &mut TcpStream) {
    let mut rest = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut rest))
        .await
        .expect("the gateway closes the connection")
        .ok();
}

#[tokio::test]
async fn slow_request_heads_are_cut_and_counted_but_idle_keep_alive_is_not() {
    let (addr, _) = http_echo_backend().await;
    let config = one_route(&[format!("http://{addr}")], "").replace(
        "shutdown_grace = \"5s\"",
        "shutdown_grace = \"5s\"\nheader_read_timeout = \"300ms\"",
    );
    let gw = TestGateway::start(&config).await;

    // One request on a kept-alive connection, then silence: hyper's header
    // timer closes it too, but that is ordinary idling.
    let mut idle = TcpStream::connect(gw.addr()).await.unwrap();
    idle.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut idle).await.status, 200);
    until_closed(&mut idle).await;
    gw.wait_quiet().await;
    assert_eq!(all_refusals(gw.admin).await, 0.0);

    // A client that never sends, and one that never finishes its head.
    let mut silent = TcpStream::connect(gw.addr()).await.unwrap();
    let mut slow = TcpStream::connect(gw.addr()).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: 1\r\n")
        .await
        .unwrap();
    until_closed(&mut silent).await;
    until_closed(&mut slow).await;
    gw.wait_quiet().await;
    assert_eq!(
        refusals(gw.admin, "header_read_timeout", "closed").await,
        2.0
    );
    assert_eq!(all_refusals(gw.admin).await, 2.0);
    gw.stop().await;
}

#[tokio::test]
async fn fallback_sessions_over_the_cap_get_429_with_retry_after() {
    const ORIGIN: &str = "http://chat.example.com";
    let backend = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let route = "fallback = true\nfallback_sessions_per_client = 1";
    let gw = TestGateway::start(&one_route(&[backend.url()], route)).await;
    let session = fb::Session::open(gw.addr(), "/chat", Some(ORIGIN)).await;
    let reply = fb::open(gw.addr(), "/chat", Some(ORIGIN), &[]).await;
    assert_eq!(reply.status, 429, "{}", reply.body);
    // The refused open never dialed: the first session's is the only one.
    assert_eq!(backend.connection_count(), 1);
    let retry = reply.headers.get("retry-after").map(|v| v.as_bytes());
    assert_eq!(retry, Some(&b"1"[..]));
    assert_eq!(
        refusals(gw.admin, "fallback_sessions_per_client", "answered").await,
        1.0
    );
    assert_eq!(all_refusals(gw.admin).await, 1.0);
    assert_eq!(session.post("close", "").await.status, 200);
    gw.stop().await;
}

/// A gateway with one TLS listener (certificate for `site.test`), extra
/// `[listeners.tls]` keys and an optional top-level table.
async fn tls_gateway(pki: &Pki, tls_extra: &str, table: &str) -> (TestGateway, WsBackend) {
    let site = pki.server("site", &["site.test"]);
    let backend = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let config = format!(
        "[server]\nshutdown_grace = \"5s\"\n\n{table}\n\n[[listeners]]\nbind = \"127.0.0.1:0\"\n\
         [listeners.tls]\ncerts = [{{ cert = {:?}, key = {:?} }}]\n{tls_extra}\n\n\
         [[routes]]\npath = \"/\"\nbackends = [{:?}]\n",
        site.cert,
        site.key,
        backend.url()
    );
    (TestGateway::start(&config).await, backend)
}

#[tokio::test]
async fn tls_listeners_answer_over_limit_inside_tls() {
    let pki = Pki::new("limits");
    let (gw, backend) = tls_gateway(&pki, "", "[limits]\nmax_connections = 1").await;
    let client = pki.client_config(None);
    let held = tls_connect(gw.addr(), "site.test", client.clone())
        .await
        .unwrap();
    // The refused client still completes TLS and reads a real HTTP answer.
    let mut refused = tls_connect(gw.addr(), "site.test", client).await.unwrap();
    refused
        .write_all(b"GET / HTTP/1.1\r\nHost: site.test\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    // A TLS peer may end without close_notify; what arrived is what counts.
    let _ = tokio::time::timeout(WAIT, refused.read_to_end(&mut answer))
        .await
        .expect("the refusal ends the connection");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("\r\nretry-after: 1\r\n"),
        "{answer}"
    );
    assert!(answer.contains("over limit: max_connections"), "{answer}");
    assert_eq!(backend.connection_count(), 0);
    assert_eq!(refusals(gw.admin, "max_connections", "answered").await, 1.0);
    assert_eq!(all_refusals(gw.admin).await, 1.0);
    let failures = metric(gw.admin, "wsgate_tls_handshake_failures_total", &[]).await;
    assert_eq!(failures, 0.0);
    drop((held, refused));
    gw.wait_quiet().await;
    gw.stop().await;
}

#[tokio::test]
async fn slow_tls_handshakes_are_cut_and_counted() {
    let pki = Pki::new("slow");
    let (gw, _backend) = tls_gateway(&pki, "handshake_timeout = \"300ms\"", "").await;
    let mut silent = TcpStream::connect(gw.addr()).await.unwrap();
    until_closed(&mut silent).await;
    gw.wait_quiet().await;
    assert_eq!(
        refusals(gw.admin, "tls_handshake_timeout", "closed").await,
        1.0
    );
    assert_eq!(all_refusals(gw.admin).await, 1.0);
    let failures = metric(gw.admin, "wsgate_tls_handshake_failures_total", &[]).await;
    assert_eq!(failures, 1.0);
    gw.stop().await;
}
