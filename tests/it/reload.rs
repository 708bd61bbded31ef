//! Hot reload: new connections follow the new config, open WebSockets are
//! never dropped whatever changed, a broken config is refused with every
//! error while the old one keeps serving, and listeners come and go.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use wsgate::run::reload::ReloadOutcome;

use crate::support::backend::{Answer, Behaviour, WsBackend};
use crate::support::client::{connect, raw_request, upgrade_request, ws_request, Ws, WAIT};
use crate::support::ops::{eventually, metric, metric_reaches};
use crate::support::TestGateway;

/// A config file in a temporary directory, rewritten atomically.
struct ConfigFile {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl ConfigFile {
    fn new(text: &str) -> ConfigFile {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wsgate.toml");
        let file = ConfigFile { _dir: dir, path };
        file.write(text);
        file
    }

    /// Replaces the contents in one rename, so a watcher never reads half.
    fn write(&self, text: &str) {
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &self.path).unwrap();
    }
}

/// Listeners on `binds`, one route per `(path, backend)`.
fn config(binds: &[&str], routes: &[(&str, &str)]) -> String {
    let mut text = String::from("[server]\nshutdown_grace = \"1s\"\n");
    for bind in binds {
        text.push_str(&format!("[[listeners]]\nbind = {bind:?}\n"));
    }
    for (path, backend) in routes {
        text.push_str(&format!(
            "[[routes]]\npath = {path:?}\nbackends = [{backend:?}]\n"
        ));
    }
    text
}

async fn reload(gw: &TestGateway) -> ReloadOutcome {
    gw.reload.as_ref().unwrap().reload().await.unwrap()
}

async fn start(file: &ConfigFile) -> TestGateway {
    TestGateway::start_file(&file.path, Duration::ZERO).await
}

/// Sends `text` and expects it echoed.
async fn echo(ws: &mut Ws, text: &str) {
    ws.send(Message::Text(text.into())).await.unwrap();
    loop {
        let message = tokio::time::timeout(WAIT, ws.next()).await.unwrap();
        match message.expect("open").expect("no error") {
            Message::Ping(_) => continue,
            other => return assert_eq!(other, Message::Text(text.into())),
        }
    }
}

async fn open(url: &str) -> Ws {
    connect(ws_request(url, &[])).await.unwrap().0
}

#[tokio::test]
async fn open_websocket_survives_backend_change_and_route_removal() {
    let (a, b) = (
        WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await,
        WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await,
    );
    let file = ConfigFile::new(&config(&["127.0.0.1:0"], &[("/chat", &a.url())]));
    let gw = start(&file).await;
    let mut old = open(&gw.ws_url("/chat")).await;
    echo(&mut old, "before").await;

    file.write(&config(&["127.0.0.1:0"], &[("/chat", &b.url())]));
    assert!(matches!(reload(&gw).await, ReloadOutcome::Applied { .. }));
    echo(&mut old, "backend changed").await;
    let mut new = open(&gw.ws_url("/chat")).await;
    echo(&mut new, "new").await;
    assert_eq!((a.connection_count(), b.connection_count()), (1, 1));

    file.write(&config(&["127.0.0.1:0"], &[("/other", &b.url())]));
    assert!(matches!(reload(&gw).await, ReloadOutcome::Applied { .. }));
    echo(&mut old, "route removed").await;
    echo(&mut new, "still here").await;
    let refused = raw_request(gw.addr(), &upgrade_request("/chat", &[])).await;
    assert_eq!(refused.status, 404);
    drop((old, new));
    gw.stop().await;
}

#[tokio::test]
async fn broken_config_is_refused_with_every_error_and_check_agrees() {
    let a = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let good = config(&["127.0.0.1:0"], &[("/", &a.url())]);
    let file = ConfigFile::new(&good);
    let gw = start(&file).await;
    let mut old = open(&gw.ws_url("/")).await;
    let broken = "[server]\nshutdown_grace = \"soon\"\n[[listeners]]\nbind = \"127.0.0.1:0\"\n\
                  [[routes]]\npath = \"nope\"\nbackends = [\"ws://127.0.0.1:1\"]\n";
    file.write(broken);
    let ReloadOutcome::Rejected(errors) = reload(&gw).await else {
        panic!("a broken config was applied");
    };
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].starts_with("server.shutdown_grace"), "{errors:?}");
    assert!(errors[1].starts_with("routes[0].path"), "{errors:?}");
    let labels = [("result", "rejected")];
    assert_eq!(
        metric(gw.admin, "wsgate_config_reloads_total", &labels).await,
        1.0
    );
    echo(&mut old, "old session").await;
    echo(&mut open(&gw.ws_url("/")).await, "old config").await;

    let check = Command::new(env!("CARGO_BIN_EXE_wsgate"))
        .args(["check", "--config", file.path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&check.stderr);
    for error in &errors {
        assert!(stderr.contains(error.as_str()), "{error} not in {stderr}");
    }
    drop(old);
    gw.stop().await;
}

#[tokio::test]
async fn listeners_are_added_and_removed_without_dropping_connections() {
    let a = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let file = ConfigFile::new(&config(&["127.0.0.1:0"], &[("/", &a.url())]));
    let gw = start(&file).await;
    let first = gw.addr();
    let mut on_first = open(&format!("ws://{first}/")).await;

    // 127.0.0.2 is loopback too: a second listener on another port 0.
    file.write(&config(&["127.0.0.1:0", "127.0.0.2:0"], &[("/", &a.url())]));
    let ReloadOutcome::Applied { listening } = reload(&gw).await else {
        panic!("not applied");
    };
    assert_eq!((listening.len(), listening[0]), (2, first));
    let second = listening[1];
    echo(&mut open(&format!("ws://{second}/")).await, "added").await;

    file.write(&config(&["127.0.0.2:0"], &[("/", &a.url())]));
    let ReloadOutcome::Applied { listening } = reload(&gw).await else {
        panic!("not applied");
    };
    assert_eq!(listening, vec![second]);
    eventually("the removed listener to refuse", || async {
        TcpStream::connect(first).await.is_err()
    })
    .await;
    echo(&mut on_first, "listener gone, connection kept").await;
    drop(on_first);
    gw.stop().await;
}

#[tokio::test]
async fn a_changed_file_is_picked_up_without_a_signal() {
    let (a, b) = (
        WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await,
        WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await,
    );
    let file = ConfigFile::new(&config(&["127.0.0.1:0"], &[("/a", &a.url())]));
    let gw = TestGateway::start_file(&file.path, Duration::from_millis(50)).await;
    file.write(&config(
        &["127.0.0.1:0"],
        &[("/a", &a.url()), ("/b", &b.url())],
    ));
    metric_reaches(
        gw.admin,
        "wsgate_config_reloads_total",
        &[("result", "applied")],
        1.0,
    )
    .await;
    echo(&mut open(&gw.ws_url("/b")).await, "via b").await;
    assert_eq!(b.connection_count(), 1);
    gw.stop().await;
}

/// One fallback route on `/` (unless `fallback` is false) plus `/other`.
fn fallback_config(backend: &str, fallback: bool, path: &str) -> String {
    format!(
        "[server]\nshutdown_grace = \"1s\"\n[[listeners]]\nbind = \"127.0.0.1:0\"\n\
         [[routes]]\npath = {path:?}\nbackends = [{backend:?}]\nfallback = {fallback}\n"
    )
}

/// Sends `text` as upstream message `seq` and polls until it comes back.
async fn fallback_echo(s: &crate::support::fallback::Session, seq: u64, text: &str) {
    use crate::support::fallback::{text as msg, texts};
    let sent = s.send(seq, &[msg(text)]).await;
    assert_eq!(sent.status, 200, "send after reload: {}", sent.body);
    assert_eq!(sent.json()["acked"], seq);
    assert_eq!(texts(&s.collect(seq - 1, 1).await), [text]);
}

#[tokio::test]
async fn open_fallback_session_survives_fallback_off_route_removal_and_backend_change() {
    use crate::support::fallback::{open as fb_open, Session};
    let (a, b) = (
        WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await,
        WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await,
    );
    let file = ConfigFile::new(&fallback_config(&a.url(), true, "/"));
    let gw = start(&file).await;
    let origin = Some("http://chat.example.com");
    let s = Session::open(gw.addr(), "/chat", origin).await;
    fallback_echo(&s, 1, "before").await;

    // The fallback is turned off: no route offers it any more.
    file.write(&fallback_config(&a.url(), false, "/"));
    assert!(matches!(reload(&gw).await, ReloadOutcome::Applied { .. }));
    fallback_echo(&s, 2, "fallback off").await;

    // The session's route is gone, then its backend changes.
    file.write(&fallback_config(&b.url(), true, "/other"));
    assert!(matches!(reload(&gw).await, ReloadOutcome::Applied { .. }));
    fallback_echo(&s, 3, "route removed").await;
    let refused = fb_open(gw.addr(), "/chat", origin, &[]).await;
    assert_eq!(refused.status, 404, "new sessions follow the new config");
    file.write(&fallback_config(&b.url(), true, "/"));
    assert!(matches!(reload(&gw).await, ReloadOutcome::Applied { .. }));
    fallback_echo(&s, 4, "backend changed").await;
    // Every message went over the session's one backend WebSocket.
    assert_eq!((a.connection_count(), b.connection_count()), (1, 0));
    assert_eq!(s.post("close", "").await.status, 200);
    gw.stop().await;
}
