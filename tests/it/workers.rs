//! Thread-per-core (`server.workers`): connections accepted on every
//! worker are relayed, the drain closes every relay on every worker with
//! 1001, a reload restarts the accept loops of all workers, and the binary
//! runs with several workers and drains on SIGTERM.

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use wsgate::run::workers::WorkerThreads;

use crate::support::backend::{Answer, Behaviour, WsBackend};
use wsgate::run::reload::ReloadOutcome;

use crate::support::client::{connect, raw_request, ws_request, Ws, WAIT};
use crate::support::ops::{free_port, Binary};
use crate::support::raw_ws;
use crate::support::{one_route, TestGateway};

/// WebSockets opened per test: enough that several workers take some.
const SOCKETS: usize = 12;

/// Opens a WebSocket and proves the relay is up with one echo.
async fn open(url: &str) -> Ws {
    let (mut ws, _) = connect(ws_request(url, &[])).await.unwrap();
    ws.send(Message::Text("hi".into())).await.unwrap();
    let echo = tokio::time::timeout(WAIT, ws.next())
        .await
        .expect("bounded");
    assert_eq!(echo.unwrap().unwrap(), Message::Text("hi".into()));
    ws
}

/// The close code a client receives next, skipping pings.
async fn close_code(ws: &mut Ws) -> Option<u16> {
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("bounded")
        {
            Some(Ok(Message::Ping(_))) => continue,
            Some(Ok(Message::Close(Some(frame)))) => return Some(frame.code.into()),
            _ => return None,
        }
    }
}

#[tokio::test]
async fn relays_on_every_worker_are_tracked_and_drained_with_1001() {
    let backend = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let threads = WorkerThreads::start(3).unwrap();
    let mut gw =
        TestGateway::start_with_workers(&one_route(&[backend.url()], ""), threads.workers()).await;
    let mut sockets = Vec::new();
    for _ in 0..SOCKETS {
        sockets.push(open(&gw.ws_url("/")).await);
    }
    assert_eq!(gw.gateway.shutdown.relays().len(), SOCKETS);
    let state = gw.gateway.clone();
    gw.begin_stop();
    for ws in &mut sockets {
        assert_eq!(close_code(ws).await, Some(1001));
    }
    gw.join().await;
    assert_eq!(
        state.shutdown.open(),
        (0, 0, 0),
        "the drain saw them all end"
    );
    threads.stop();
}

#[tokio::test]
async fn a_reload_restarts_the_accept_loops_of_every_worker_on_the_same_socket() {
    let backend = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wsgate.toml");
    let port = free_port().await;
    let config = |extra: &str| {
        format!(
            "[[listeners]]\nbind = \"127.0.0.1:{port}\"\n{extra}\n[[routes]]\nbackends = [{:?}]\n",
            backend.url()
        )
    };
    std::fs::write(&path, config("")).unwrap();
    let threads = WorkerThreads::start(2).unwrap();
    let gw = TestGateway::start_file_on(&path, std::time::Duration::ZERO, threads.workers()).await;
    let before = open(&gw.ws_url("/")).await;
    // A changed listener setting: its accept loops restart with the socket.
    std::fs::write(&path, config("redirect_https = 8443")).unwrap();
    let outcome = gw.reload.as_ref().unwrap().reload().await.unwrap();
    assert!(
        matches!(outcome, ReloadOutcome::Applied { .. }),
        "{outcome:?}"
    );
    for _ in 0..SOCKETS {
        let res = raw_request(gw.addr(), "GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
        assert_eq!(res.status, 301, "every worker serves the new settings");
    }
    drop(before);
    gw.stop().await;
    threads.stop();
}

#[tokio::test]
async fn the_binary_serves_on_several_workers_and_drains_them_all() {
    let backend = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let url = backend.url();
    let mut gw = Binary::start(move |port, admin| {
        format!(
            "[server]\nworkers = 3\nlog_format = \"json\"\n[[listeners]]\nbind = \"127.0.0.1:{port}\"\n\
             [admin]\nbind = \"127.0.0.1:{admin}\"\n[[routes]]\nbackends = [{url:?}]\n"
        )
    })
    .await;
    let started = gw.json_events("runtime started");
    assert_eq!(started.len(), 1, "{}", gw.log());
    assert_eq!(started[0]["workers"], 3, "{}", gw.log());
    let mut sockets = Vec::new();
    for _ in 0..SOCKETS {
        sockets.push(raw_ws::raw_upgrade(gw.addr).await);
    }
    gw.signal("TERM");
    for stream in &mut sockets {
        assert_eq!(raw_ws::read_close(stream).await, Some(1001));
    }
    assert_eq!(gw.exit().await.code(), Some(0), "{}", gw.log());
    assert_eq!(gw.json_events("drained").len(), 1, "{}", gw.log());
}
