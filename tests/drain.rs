//! Graceful drain: readiness turns 503, every relayed WebSocket gets 1001
//! on both legs (spread over `drain_spread`), `run` returns within the
//! grace, and the binary exits 0 on SIGTERM.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

use support::backend::{Answer, Behaviour, WsBackend};
use support::client::{connect, raw_request, raw_upgrade, ws_request, Ws, WAIT};
use support::ops::{admin_get, eventually};
use support::TestGateway;

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
