//! Active health checks (`[routes.health]`) and passive marking, end to
//! end: a 503 takes a backend out of rotation and a 200 brings it back,
//! open WebSockets stay, WebSocket checks do a real handshake, a slow or
//! endless health answer is bounded, every backend out means all are used,
//! a refused dial takes a backend out for a while, and checks stop with
//! their route and with the drain. The exact timing (out within
//! `interval × unhealthy_after`) is checked in paused time by
//! `upstream::health`'s unit tests; here the bounds are generous.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use crate::support::backend::refused_addr;
use crate::support::client::{connect, ws_request, Ws, WAIT};
use crate::support::fallback::request;
use crate::support::logs;
use crate::support::named::{NamedBackend, ENDLESS, NEVER};
use crate::support::ops::{admin_get, eventually, metric};
use crate::support::{one_route, TestGateway};

/// A health table checking `/healthz` every 200 ms, two in a row to decide.
const CHECKS: &str = "[routes.health]\npath = \"/healthz\"\ninterval = \"200ms\"\nunhealthy_after = 2\nhealthy_after = 2";

/// How long a verdict may take here: far above `interval × 2` (400 ms),
/// for a loaded machine; the exact bound is the paused-time unit test's.
const VERDICT: Duration = Duration::from_secs(5);

/// The `/backends` entry of `backend` on the first route.
async fn entry(gw: &TestGateway, backend: &str) -> Value {
    let doc: Value = serde_json::from_str(&admin_get(gw.admin, "/backends").await.body).unwrap();
    let list = doc["routes"][0]["backends"].as_array().unwrap().clone();
    list.into_iter()
        .find(|b| b["backend"] == backend)
        .unwrap_or_else(|| panic!("{backend} not in {doc}"))
}

/// Waits until `backend`'s health is `health`; returns how long it took.
async fn health_becomes(gw: &TestGateway, backend: &str, health: &str) -> Duration {
    let started = Instant::now();
    let what = format!("{backend} {health}");
    eventually(&what, || async {
        entry(gw, backend).await["health"] == health
    })
    .await;
    started.elapsed()
}

/// The backend names answering `n` plain requests.
async fn answers(gw: &TestGateway, n: usize) -> Vec<String> {
    let mut names = Vec::new();
    for _ in 0..n {
        let reply = request(gw.addr(), "GET", "/", &[], "").await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        names.push(reply.body);
    }
    names
}

async fn echo_who(ws: &mut Ws) -> String {
    ws.send(Message::Text("who".into())).await.unwrap();
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.unwrap() {
            Some(Ok(Message::Text(name))) => return name.to_string(),
            Some(Ok(_)) => continue,
            other => panic!("no answer: {other:?}"),
        }
    }
}

async fn open_who(gw: &TestGateway) -> (Ws, String) {
    let (mut ws, _) = connect(ws_request(&gw.ws_url("/"), &[])).await.unwrap();
    let name = echo_who(&mut ws).await;
    (ws, name)
}

fn labels<'a>(pairs: &'a [(&'a str, String)]) -> Vec<(&'a str, &'a str)> {
    pairs.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[tokio::test]
async fn a_503_takes_a_backend_out_of_rotation_and_a_200_brings_it_back() {
    let logs = logs::capture();
    let (a, b) = (
        NamedBackend::start("a").await,
        NamedBackend::start("b").await,
    );
    let gw = TestGateway::start(&one_route(&[a.url(), b.url()], CHECKS)).await;
    health_becomes(&gw, &b.url(), "healthy").await;
    let up = [("backend", b.url())];
    assert_eq!(
        metric(gw.admin, "wsgate_backend_up", &labels(&up)).await,
        1.0
    );

    b.set_health(503);
    let took = health_becomes(&gw, &b.url(), "unhealthy").await;
    assert!(took < VERDICT, "out after {took:?}");
    let shown = entry(&gw, &b.url()).await;
    assert_eq!(shown["state"], "down");
    assert_eq!(shown["last_check"]["outcome"], "bad_status");
    assert_eq!(shown["last_check"]["status"], 503);
    assert!(
        shown["last_check"]["ago_ms"].as_u64().unwrap() < 5_000,
        "{shown}"
    );
    assert_eq!(
        metric(gw.admin, "wsgate_backend_up", &labels(&up)).await,
        0.0
    );
    let failed = [("backend", b.url()), ("outcome", "bad_status".into())];
    let failed = metric(
        gw.admin,
        "wsgate_backend_health_checks_total",
        &labels(&failed),
    )
    .await;
    assert!(failed >= 2.0, "{failed} failed checks counted");
    logs.wait_for_line(&["backend unhealthy", &b.url()]).await;
    assert!(
        answers(&gw, 6).await.iter().all(|n| n == "a"),
        "no new connection to b"
    );

    b.set_health(200);
    let took = health_becomes(&gw, &b.url(), "healthy").await;
    assert!(took < VERDICT, "back after {took:?}");
    let names = answers(&gw, 4).await;
    assert!(
        names.contains(&"b".to_string()),
        "b is back in rotation: {names:?}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn an_unhealthy_backend_keeps_its_open_websockets_and_says_so() {
    let logs = logs::capture();
    let (a, b) = (
        NamedBackend::start("a").await,
        NamedBackend::start("b").await,
    );
    let gw = TestGateway::start(&one_route(&[a.url(), b.url()], CHECKS)).await;
    let (mut first, one) = open_who(&gw).await;
    let (mut second, two) = open_who(&gw).await;
    assert_ne!(one, two, "one WebSocket on each");
    let (on_b, _on_a) = if one == "b" {
        (&mut first, &mut second)
    } else {
        (&mut second, &mut first)
    };
    b.set_health(503);
    health_becomes(&gw, &b.url(), "unhealthy").await;
    let line = logs.wait_for_line(&["backend unhealthy", &b.url()]).await;
    assert!(
        line.contains("open=1") && line.contains("left alone"),
        "{line}"
    );
    assert_eq!(
        echo_who(on_b).await,
        "b",
        "the open WebSocket on b still works"
    );
    for _ in 0..3 {
        assert_eq!(open_who(&gw).await.1, "a", "new WebSockets avoid b");
    }
    gw.stop().await;
}

#[tokio::test]
async fn a_websocket_check_does_a_real_handshake() {
    let backend = NamedBackend::start("a").await;
    let checks = CHECKS.replace("[routes.health]", "[routes.health]\nwebsocket = true");
    let gw = TestGateway::start(&one_route(&[backend.url()], &checks)).await;
    health_becomes(&gw, &backend.url(), "healthy").await;
    let shown = entry(&gw, &backend.url()).await;
    assert_eq!(shown["last_check"]["status"], 101, "{shown}");
    let ws_checks = &backend.counts.websocket_checks;
    assert!(ws_checks.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    assert_eq!(backend.websockets(), 0, "checks are not counted as traffic");
    // A plain 200 is not a WebSocket.
    backend.set_health(204);
    health_becomes(&gw, &backend.url(), "unhealthy").await;
    assert_eq!(
        entry(&gw, &backend.url()).await["last_check"]["outcome"],
        "bad_status"
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_slow_health_answer_times_out_and_an_endless_body_is_not_read() {
    let (slow, endless, ok) = (
        NamedBackend::start("slow").await,
        NamedBackend::start("endless").await,
        NamedBackend::start("ok").await,
    );
    slow.set_health(NEVER);
    endless.set_health(ENDLESS);
    let checks = format!("{CHECKS}\ntimeout = \"100ms\"");
    let gw = TestGateway::start(&one_route(&[slow.url(), endless.url(), ok.url()], &checks)).await;
    health_becomes(&gw, &slow.url(), "unhealthy").await;
    let shown = entry(&gw, &slow.url()).await;
    assert_eq!(shown["last_check"]["outcome"], "timeout", "{shown}");
    assert!(
        shown["last_check"]["took_ms"].as_u64().unwrap() < 1_000,
        "{shown}"
    );
    health_becomes(&gw, &endless.url(), "healthy").await;
    let dropped = &endless.counts.endless_dropped;
    eventually("the endless body abandoned", || async {
        dropped.load(std::sync::atomic::Ordering::SeqCst) >= 1
    })
    .await;
    let names = answers(&gw, 4).await;
    assert!(!names.contains(&"slow".to_string()), "{names:?}");
    gw.stop().await;
}

#[tokio::test]
async fn when_every_backend_is_unhealthy_all_of_them_are_used() {
    let logs = logs::capture();
    let (a, b) = (
        NamedBackend::start("a").await,
        NamedBackend::start("b").await,
    );
    a.set_health(503);
    b.set_health(503);
    let gw = TestGateway::start(&one_route(&[a.url(), b.url()], CHECKS)).await;
    health_becomes(&gw, &a.url(), "unhealthy").await;
    health_becomes(&gw, &b.url(), "unhealthy").await;
    let mut names = answers(&gw, 4).await;
    names.sort();
    names.dedup();
    assert_eq!(names, ["a", "b"], "panic mode: every backend is used");
    logs.wait_for_line(&["panic mode"]).await;
    gw.stop().await;
}

#[tokio::test]
async fn a_refused_dial_takes_a_backend_out_for_a_while() {
    let a = NamedBackend::start("a").await;
    let dead = format!("ws://{}", refused_addr().await);
    let config = one_route(&[dead.clone(), a.url()], "balance = \"round_robin\"");
    let gw = TestGateway::start(&config).await;
    assert!(answers(&gw, 6).await.iter().all(|n| n == "a"));
    assert_eq!(a.requests(), 6);
    let refused = [
        ("backend", dead.clone()),
        ("reason", "backend_refused".into()),
    ];
    let tried = metric(
        gw.admin,
        "wsgate_backend_connect_errors_total",
        &labels(&refused),
    )
    .await;
    assert_eq!(tried, 1.0, "tried once, then left out");
    let shown = entry(&gw, &dead).await;
    assert_eq!(shown["state"], "down", "{shown}");
    assert_eq!(shown["health"], "unchecked");
    assert!(shown["unreachable_for_ms"].as_u64().unwrap() > 0, "{shown}");
    gw.stop().await;
}

/// Health checks received by `backend` over a window of five intervals.
async fn checks_during_a_window(backend: &NamedBackend) -> usize {
    let before = backend.checks();
    // Observing that nothing happens takes a wait; it synchronises nothing.
    tokio::time::sleep(Duration::from_secs(1)).await;
    backend.checks() - before
}

#[tokio::test]
async fn checks_stop_with_their_route_and_with_the_drain() {
    let backend = NamedBackend::start("a").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wsgate.toml");
    std::fs::write(&path, one_route(&[backend.url()], CHECKS)).unwrap();
    let gw = TestGateway::start_file(&path, Duration::ZERO).await;
    health_becomes(&gw, &backend.url(), "healthy").await;
    assert!(checks_during_a_window(&backend).await >= 2, "checks run");
    std::fs::write(&path, one_route(&[backend.url()], "")).unwrap();
    gw.reload.as_ref().unwrap().reload().await.unwrap();
    assert_eq!(entry(&gw, &backend.url()).await["health"], "unchecked");
    assert!(
        checks_during_a_window(&backend).await <= 1,
        "at most one in flight"
    );
    assert_eq!(
        checks_during_a_window(&backend).await,
        0,
        "stopped with the table"
    );

    std::fs::write(&path, one_route(&[backend.url()], CHECKS)).unwrap();
    gw.reload.as_ref().unwrap().reload().await.unwrap();
    assert!(
        checks_during_a_window(&backend).await >= 2,
        "checks run again"
    );
    gw.stop().await;
    assert!(
        checks_during_a_window(&backend).await <= 1,
        "at most one in flight"
    );
    assert_eq!(
        checks_during_a_window(&backend).await,
        0,
        "stopped by the drain"
    );
}

#[tokio::test]
async fn expect_status_is_the_one_status_that_passes() {
    let backend = NamedBackend::start("a").await;
    backend.set_health(204);
    let checks = format!("{CHECKS}\nexpect_status = 204");
    let gw = TestGateway::start(&one_route(&[backend.url()], &checks)).await;
    health_becomes(&gw, &backend.url(), "healthy").await;
    backend.set_health(200);
    health_becomes(&gw, &backend.url(), "unhealthy").await;
    let shown = entry(&gw, &backend.url()).await;
    assert_eq!(shown["last_check"]["status"], 200, "{shown}");
    assert_eq!(shown["last_check"]["outcome"], "bad_status");
    gw.stop().await;
}
