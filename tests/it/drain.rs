//! Graceful drain: readiness turns 503, every relayed WebSocket gets 1001
//! on both legs (spread over `drain_spread`), `run` returns within the
//! grace, and the binary exits 0 on SIGTERM. HTTP requests in flight
//! finish, a late upgrade gets 503 without a backend being dialed, new
//! connections are refused, whatever outlives the grace is cut and counted
//! in the log, and a second signal exits at once.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

use crate::support::backend::{Answer, Behaviour, WsBackend};
use crate::support::client::{connect, raw_request, raw_upgrade, ws_request, Ws, WAIT};
use crate::support::ops::{
    admin_get, eventually, held_http_backend, server_has_read, value, Binary,
};
use crate::support::raw_ws;
use crate::support::TestGateway;

/// A one-route config with the given `[server]` keys.
fn config(backend: &str, server: &str) -> String {
    format!(
        "[server]\n{server}\n[[listeners]]\nbind = \"127.0.0.1:0\"\n[[routes]]\nbackends = [{backend:?}]\n"
    )
}

/// Opens a WebSocket and proves the relay is up with one echo.
async fn open(gw: &TestGateway) -> Ws {
    let (mut ws, _) = connect(ws_request(&gw.ws_url("/"), &[])).await.unwrap();
    ws.send(Message::Text("hi".into())).await.unwrap();
    assert_eq!(next(&mut ws).await, Some(Message::Text("hi".into())));
    ws
}

/// The next non-ping message; `None` once the stream ends.
async fn next(ws: &mut Ws) -> Option<Message> {
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("bounded")
        {
            Some(Ok(Message::Ping(_))) => continue,
            Some(Ok(message)) => return Some(message),
            _ => return None,
        }
    }
}

/// The close code a client receives.
async fn close_code(ws: &mut Ws) -> Option<u16> {
    match next(ws).await {
        Some(Message::Close(Some(frame))) => Some(frame.code.into()),
        _ => None,
    }
}

#[tokio::test]
async fn drain_closes_every_leg_with_1001_and_returns_within_grace() {
    let mut backend = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let mut gw = TestGateway::start(&config(&backend.url(), "shutdown_grace = \"2s\"")).await;
    let (mut a, mut b) = (open(&gw).await, open(&gw).await);
    // A client that never answers the close keeps the drain open until the
    // grace runs out, so readiness can be observed mid-drain.
    let (_stubborn, _) = raw_upgrade(gw.addr(), &[]).await;
    let started = Instant::now();
    gw.begin_stop();
    let admin = gw.admin;
    eventually("/readyz 503", || async {
        admin_get(admin, "/readyz").await.status == 503
    })
    .await;
    assert_eq!(admin_get(admin, "/healthz").await.status, 200);
    assert_eq!(close_code(&mut a).await, Some(1001));
    assert_eq!(close_code(&mut b).await, Some(1001));
    for _ in 0..3 {
        let (code, _) = tokio::time::timeout(WAIT, backend.closes.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(code, 1001);
    }
    gw.join().await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn closes_are_spread_over_the_window() {
    let backend = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let server = "shutdown_grace = \"5s\"\ndrain_spread = \"1s\"";
    let mut gw = TestGateway::start(&config(&backend.url(), server)).await;
    let mut clients = Vec::new();
    for _ in 0..6 {
        clients.push(open(&gw).await);
    }
    let started = Instant::now();
    gw.begin_stop();
    let waits = clients.into_iter().map(|mut ws| {
        tokio::spawn(async move {
            assert_eq!(close_code(&mut ws).await, Some(1001));
            started.elapsed()
        })
    });
    let mut moments = Vec::new();
    for wait in waits.collect::<Vec<_>>() {
        moments.push(wait.await.unwrap());
    }
    gw.join().await;
    moments.sort();
    assert!(moments[5] < Duration::from_millis(1500), "{moments:?}");
    assert!(
        moments[5] - moments[0] > Duration::from_millis(20),
        "not spread: {moments:?}"
    );
}

/// A port free right now (bound, then released): only for the binary,
/// which binds from its config file.
async fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills the child if the test fails before it exits.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn binary_exits_0_on_sigterm_after_closing_websockets() {
    let backend = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let (port, admin_port) = (free_port().await, free_port().await);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wsgate.toml");
    let toml = format!(
        "[server]\nshutdown_grace = \"5s\"\nlog_format = \"json\"\n[[listeners]]\nbind = \"127.0.0.1:{port}\"\n\
         [admin]\nbind = \"127.0.0.1:{admin_port}\"\n[[routes]]\nbackends = [{:?}]\n",
        backend.url()
    );
    std::fs::write(&path, toml).unwrap();
    let log = dir.path().join("stderr.log");
    let child = Command::new(env!("CARGO_BIN_EXE_wsgate"))
        .args(["--config", path.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut child = Reaper(child);
    let admin = format!("127.0.0.1:{admin_port}").parse().unwrap();
    eventually("the binary to be ready", || async {
        tokio::net::TcpStream::connect(admin).await.is_ok()
            && raw_request(
                admin,
                "GET /readyz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            )
            .await
            .status
                == 200
    })
    .await;
    let url = format!("ws://127.0.0.1:{port}/");
    let (mut ws, _) = connect(ws_request(&url, &[("x-request-id", "drain-test-1")]))
        .await
        .unwrap();
    ws.send(Message::Text("x".into())).await.unwrap();
    assert_eq!(next(&mut ws).await, Some(Message::Text("x".into())));
    let pid = child.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    assert_eq!(close_code(&mut ws).await, Some(1001));
    assert_eq!(next(&mut ws).await, None);
    let mut status = None;
    eventually("the binary to exit", || {
        status = status.or(child.0.try_wait().unwrap());
        std::future::ready(status.is_some())
    })
    .await;
    assert_eq!(status.unwrap().code(), Some(0));
    // JSON logs: the session's end line carries the request id in its span.
    let log = std::fs::read_to_string(log).unwrap();
    let ended = log
        .lines()
        .find(|l| l.contains("websocket session ended"))
        .unwrap_or_else(|| panic!("no session line in {log}"));
    assert!(
        ended.starts_with('{') && ended.contains(r#""request_id":"drain-test-1""#),
        "{ended}"
    );
    assert!(ended.contains(r#""end":"gateway shutdown""#), "{ended}");
}

/// A binary config: one listener, the admin listener, `[server]` keys and
/// the given routes.
fn binary_config(server: &str, routes: &str) -> impl Fn(u16, u16) -> String {
    let (server, routes) = (server.to_owned(), routes.to_owned());
    move |port, admin| {
        format!(
            "[server]\n{server}\nlog_format = \"json\"\n[[listeners]]\nbind = \"127.0.0.1:{port}\"\n\
             [admin]\nbind = \"127.0.0.1:{admin}\"\n{routes}"
        )
    }
}

/// A route for every path to `backend`.
fn route(path: &str, backend: &str) -> String {
    format!("[[routes]]\npath = {path:?}\nbackends = [{backend:?}]\n")
}

/// A client that gets its 1001 (proving the drain reached it) and never
/// answers it, so its relay stays open until the grace runs out.
async fn stubborn_sees_1001(stream: &mut TcpStream) {
    assert_eq!(raw_ws::read_close(stream).await, Some(1001));
}

#[tokio::test]
async fn second_signal_exits_at_once_mid_drain() {
    let backend = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    for (first, second) in [("TERM", "TERM"), ("INT", "INT"), ("TERM", "INT")] {
        let config = binary_config("shutdown_grace = \"60s\"", &route("/", &backend.url()));
        let mut gw = Binary::start(config).await;
        let mut stubborn = raw_ws::raw_upgrade(gw.addr).await;
        gw.signal(first);
        stubborn_sees_1001(&mut stubborn).await;
        assert_eq!(admin_get(gw.admin, "/readyz").await.status, 503);
        let signalled = Instant::now();
        gw.signal(second);
        let status = gw.exit().await;
        let took = signalled.elapsed();
        assert_eq!(status.code(), Some(1), "SIG{first} then SIG{second}");
        assert!(
            took < Duration::from_secs(2),
            "SIG{second}: exit after {took:?}"
        );
        assert_eq!(gw.json_events("second signal: exiting now").len(), 1);
        assert!(gw.json_events("drained").is_empty(), "{}", gw.log());
    }
}

#[tokio::test]
async fn grace_cuts_what_is_left_and_counts_it_in_the_log() {
    let backend = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let (slow, mut held) = held_http_backend().await;
    let routes = route("/", &backend.url()) + &route("/slow", &format!("http://{slow}"));
    let mut gw = Binary::start(binary_config("shutdown_grace = \"1s\"", &routes)).await;
    let mut stubborn = raw_ws::raw_upgrade(gw.addr).await;
    let mut waiting = TcpStream::connect(gw.addr).await.unwrap();
    waiting
        .write_all(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    // Held, never released: the backend keeps this request in flight.
    let _held = tokio::time::timeout(WAIT, held.recv())
        .await
        .unwrap()
        .unwrap();
    let signalled = Instant::now();
    gw.signal("TERM");
    stubborn_sees_1001(&mut stubborn).await;
    let status = gw.exit().await;
    let took = signalled.elapsed();
    assert_eq!(status.code(), Some(0));
    // Not before the grace, and only the cut itself after it.
    assert!(took >= Duration::from_secs(1), "{took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert_eq!(raw_ws::read_frame(&mut stubborn).await, None, "cut");
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(WAIT, waiting.read_to_end(&mut rest)).await;
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));

    let ran_out = gw.json_events("shutdown grace ran out; cutting what is still open");
    assert_eq!(ran_out.len(), 1, "{}", gw.log());
    assert_eq!(ran_out[0]["connections"], 1, "the held HTTP request");
    assert_eq!(ran_out[0]["websockets"], 1, "the stubborn WebSocket");
    assert_eq!(ran_out[0]["fallback_sessions"], 0);
    let cut = gw.json_events("websocket cut: shutdown grace ran out");
    assert_eq!(cut.len(), 1, "{}", gw.log());
    assert_eq!(cut[0]["route"], "*/");
    assert!(gw.json_events("drained").is_empty());
}

/// A gateway whose only route forwards to `backend`; its grace is far
/// above the wait bound, so what a test sees happened during the drain,
/// not after the grace ran out.
async fn gateway_to(backend: &str) -> TestGateway {
    TestGateway::start(&config(backend, "shutdown_grace = \"60s\"")).await
}

/// Starts the drain and waits until the gateway has begun it.
async fn begin_drain(gw: &mut TestGateway) {
    gw.begin_stop();
    let shutdown = gw.gateway.shutdown.clone();
    eventually("the drain to start", || {
        std::future::ready(shutdown.closing().is_cancelled())
    })
    .await;
}

#[tokio::test]
async fn http_request_in_flight_when_drain_starts_completes() {
    let (slow, mut held) = held_http_backend().await;
    let mut gw = gateway_to(&format!("http://{slow}")).await;
    let mut client = TcpStream::connect(gw.addr()).await.unwrap();
    client
        .write_all(b"GET /report HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let request = tokio::time::timeout(WAIT, held.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(request.path, "/report");
    begin_drain(&mut gw).await;
    assert_eq!(admin_get(gw.admin, "/readyz").await.status, 503);
    request.release.send("finally".into()).unwrap();
    let response = tokio::time::timeout(WAIT, crate::support::client::read_response(&mut client))
        .await
        .unwrap();
    assert_eq!(response.status, 200, "{}", response.head);
    assert_eq!(response.body, "finally");
    // The connection is not kept alive past the drain.
    assert_eq!(response.header("connection").as_deref(), Some("close"));
    let mut rest = Vec::new();
    tokio::time::timeout(WAIT, client.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert!(rest.is_empty());
    tokio::time::timeout(WAIT, gw.join()).await.unwrap();
}

#[tokio::test]
async fn upgrade_arriving_during_drain_gets_503_and_no_backend() {
    let backend = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let mut gw = gateway_to(&backend.url()).await;
    // The first half of an upgrade, read by the gateway before the drain;
    // the rest arrives once the drain has begun.
    let full = crate::support::client::upgrade_request("/", &[]);
    let (head, tail) = full.split_at(full.len() / 2);
    let mut late = TcpStream::connect(gw.addr()).await.unwrap();
    late.write_all(head.as_bytes()).await.unwrap();
    let me = late.local_addr().unwrap();
    let addr = gw.addr();
    eventually("the gateway to read the first half", || {
        std::future::ready(server_has_read(addr, me, head.len()))
    })
    .await;
    begin_drain(&mut gw).await;
    // Listeners closed: a new client is refused rather than left waiting.
    eventually("new connections to be refused", || async move {
        let connect = tokio::time::timeout(WAIT, TcpStream::connect(addr));
        matches!(connect.await, Ok(Err(_)))
    })
    .await;
    late.write_all(tail.as_bytes()).await.unwrap();
    let response = tokio::time::timeout(WAIT, crate::support::client::read_response(&mut late))
        .await
        .unwrap();
    assert_eq!(response.status, 503, "{}", response.head);
    assert_eq!(response.body, "the gateway is shutting down\n");
    assert_eq!(backend.connection_count(), 0, "no backend dialed");
    let metrics = gw.gateway.metrics.clone();
    tokio::time::timeout(WAIT, gw.join()).await.unwrap();
    let rejected = [("outcome", "rejected"), ("reason", "draining")];
    let m = metrics.encode();
    assert_eq!(
        value(&m, "wsgate_websocket_handshakes_total", &rejected),
        1.0
    );
}
