//! Hostile and broken clients and backends: each gets a bounded wait, the
//! right answer, and leaves nothing behind.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::backend::{silent_backend_reporting_close, Answer, Behaviour, WsBackend};
use crate::support::client::{raw_request, raw_upgrade, upgrade_request, WAIT};
use crate::support::{one_route, TestGateway};

/// The `header_read_timeout` of [`config_with_header_timeout`].
const HEADER_TIMEOUT: Duration = Duration::from_millis(300);

/// A cut by `header_read_timeout` must come well before this: far above
/// [`HEADER_TIMEOUT`], far below the 10 s default.
const CUT_BOUND: Duration = Duration::from_secs(3);

fn config_with_header_timeout(backend: &str) -> String {
    one_route(&[backend.to_string()], "").replace(
        "shutdown_grace = \"5s\"",
        "shutdown_grace = \"5s\"\nheader_read_timeout = \"300ms\"",
    )
}

#[tokio::test]
async fn malformed_http_gets_400() {
    let backend = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let gw = TestGateway::start(&one_route(&[backend.url()], "")).await;
    for garbage in [
        "NOT HTTP AT ALL\r\n\r\n",
        "GET / HTTP/1.1\r\nHost a\r\n\r\n",
        "GET / HTTP/9.9\r\n\r\n",
    ] {
        let res = raw_request(gw.addr(), garbage).await;
        assert!(
            res.status == 400 || res.status == 505,
            "{garbage:?} → {}",
            res.status
        );
        gw.wait_quiet().await;
    }
    assert_eq!(backend.connection_count(), 0);
    gw.stop().await;
}

#[tokio::test]
async fn silent_client_and_endless_header_block_are_cut() {
    let backend = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let gw = TestGateway::start(&config_with_header_timeout(&backend.url())).await;
    let started = Instant::now();
    let mut silent = TcpStream::connect(gw.addr()).await.unwrap();
    let mut slow = TcpStream::connect(gw.addr()).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: 1\r\n")
        .await
        .unwrap();
    for stream in [&mut silent, &mut slow] {
        let mut rest = Vec::new();
        tokio::time::timeout(WAIT, stream.read_to_end(&mut rest))
            .await
            .expect("the gateway closes the connection within the header timeout")
            .ok();
        // The 300 ms setting cut it, not the 10 s default nor the wait bound.
        let took = started.elapsed();
        assert!(
            took >= HEADER_TIMEOUT && took < CUT_BOUND,
            "cut after {took:?}"
        );
        gw.wait_quiet().await;
    }
    assert_eq!(backend.connection_count(), 0);
    gw.stop().await;
}

#[tokio::test]
async fn client_vanishing_mid_frame_frees_the_backend() {
    let mut backend = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let gw = TestGateway::start(&one_route(&[backend.url()], "")).await;
    let (mut raw, _) = raw_upgrade(gw.addr(), &[]).await;
    // Header of a masked 1000-byte binary frame, then only part of its payload.
    raw.write_all(&[0x82, 0xFE, 0x03, 0xE8, 1, 2, 3, 4])
        .await
        .unwrap();
    raw.write_all(&[0u8; 100]).await.unwrap();
    drop(raw);
    tokio::time::timeout(WAIT, backend.ended.recv())
        .await
        .expect("the backend session ends within the bound");
    // Mid-frame, no close frame can be injected into the backend's stream:
    // its connection is simply shut, so it saw no close (or a 1001 if the
    // cut fell on a frame boundary).
    if let Ok((code, _)) = backend.closes.try_recv() {
        assert_eq!(code, 1001);
    }
    gw.wait_quiet().await;
    gw.stop().await;
}

#[tokio::test]
async fn backend_that_accepts_and_never_answers_is_504_within_bound() {
    let (addr, mut closed) = silent_backend_reporting_close().await;
    let gw = TestGateway::start(&one_route(
        &[format!("ws://{addr}")],
        "response_timeout = \"200ms\"",
    ))
    .await;
    let started = std::time::Instant::now();
    let res = raw_request(gw.addr(), &upgrade_request("/", &[])).await;
    assert_eq!(res.status, 504);
    assert!(started.elapsed() < WAIT - Duration::from_secs(1));
    tokio::time::timeout(WAIT, closed.recv())
        .await
        .expect("after the 504 the gateway closes its socket to the backend");
    gw.wait_quiet().await;
    gw.stop().await;
}
