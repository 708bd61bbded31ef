//! The first hour with wsgate (issue 15): `check` names the file it
//! validated and reports every error at once, certificate files included;
//! errors say what to write; start-up logs the config's path and one line
//! per route; log values are spelled as the metrics' labels; a refused
//! fallback request is logged on its route; "trying the next" only when
//! there is a next.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::backend::refused_addr;
use crate::support::client::{raw_request, upgrade_request};
use crate::support::fallback::{self, Session};
use crate::support::logs;
use crate::support::ops::Binary;
use crate::support::TestGateway;

/// Runs the binary in `dir` with `args`.
fn wsgate_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wsgate"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

/// Writes `toml` to a file in a fresh directory and runs `wsgate check` on it.
fn check(toml: &str) -> (Output, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wsgate.toml");
    std::fs::write(&path, toml).unwrap();
    let out = wsgate_in(dir.path(), &["check", "--config", path.to_str().unwrap()]);
    (out, dir)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn check_names_the_file_it_validated() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = wsgate_in(repo, &["check"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let resolved = repo.join("config/wsgate.toml").canonicalize().unwrap();
    assert_eq!(
        text(&out.stdout).trim(),
        format!("{}: config ok", resolved.display())
    );
    // Elsewhere, without config/wsgate.toml, the embedded copy runs: say so.
    let elsewhere = tempfile::tempdir().unwrap();
    let out = wsgate_in(elsewhere.path(), &["check"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        "embedded default config (no config/wsgate.toml here): config ok"
    );
}

#[test]
fn check_reports_a_missing_route_and_a_missing_certificate_in_one_run() {
    let (out, dir) = check(
        "[[listeners]]\nbind = \"127.0.0.1:0\"\n[listeners.tls]\n\
         certs = [{ cert = \"missing.pem\", key = \"missing.key\" }]\n",
    );
    assert_eq!(out.status.code(), Some(64));
    let stderr = text(&out.stderr);
    let resolved = dir.path().join("wsgate.toml").canonicalize().unwrap();
    assert!(
        stderr.starts_with(&format!("{}: invalid config", resolved.display())),
        "{stderr}"
    );
    assert!(stderr.contains("\nroutes: at least one"), "{stderr}");
    assert!(stderr.contains("\nlisteners[0].tls.certs[0]"), "{stderr}");
    assert!(stderr.contains("missing.pem"), "{stderr}");
}

#[test]
fn unknown_keys_and_bad_values_say_what_to_write() {
    let (out, _dir) = check(
        "[[listeners]]\nbind = \"127.0.0.1:0\"\n[[routes]]\nbackends = [\"builtin:echo\"]\n\
         fallbak = true\n",
    );
    assert_eq!(out.status.code(), Some(64));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("routes[0].fallbak: unknown field `fallbak`; did you mean `fallback`?"),
        "{stderr}"
    );
    let (out, _dir) = check(
        "[[listeners]]\nbind = \"127.0.0.1:0\"\n[[routes]]\nbackends = [\"builtin:echo\"]\n\
         max_message_size = \"1.5MiB\"\nidle_timeout = \"10 minutes\"\nping_interval = \"1.5m\"\n",
    );
    assert_eq!(out.status.code(), Some(64));
    let stderr = text(&out.stderr);
    for want in [
        "routes[0].max_message_size: invalid size \"1.5MiB\": fractions are not supported; write \"1536KiB\"",
        "routes[0].idle_timeout: invalid duration \"10 minutes\": no spaces, units h, m, s or ms; write \"10m\"",
        "routes[0].ping_interval: invalid duration \"1.5m\": fractions are not supported; write \"1m30s\"",
    ] {
        assert!(stderr.contains(want), "missing {want:?} in:\n{stderr}");
    }
}

#[tokio::test]
async fn start_up_logs_the_config_path_and_one_line_per_route() {
    let gw = Binary::start(|port, admin| {
        format!(
            "[server]\nlog_format = \"json\"\n[[listeners]]\nbind = \"127.0.0.1:{port}\"\n\
             [admin]\nbind = \"127.0.0.1:{admin}\"\n\
             [[routes]]\nname = \"chat\"\nhost = \"chat.example.com\"\npath = \"/chat\"\n\
             backends = [\"ws://127.0.0.1:9\", \"ws://127.0.0.1:10\"]\nfallback = true\n\
             [[routes]]\nname = \"site\"\nbackends = [\"http://127.0.0.1:11\"]\n\
             origins = [\"https://a.example\"]\n"
        )
    })
    .await;
    let starting = gw.json_events("starting");
    assert_eq!(starting.len(), 1, "{}", gw.log());
    let config = starting[0]["config"].as_str().unwrap();
    assert!(Path::new(config).is_absolute(), "{config}");
    assert!(config.ends_with("/wsgate.toml"), "{config}");
    let routes = gw.json_events("route");
    assert_eq!(routes.len(), 2, "{}", gw.log());
    let chat = &routes[0];
    assert_eq!(chat["route"], "chat");
    assert_eq!(chat["host"], "chat.example.com");
    assert_eq!(chat["path"], "/chat");
    assert_eq!(chat["backends"], "ws://127.0.0.1:9,ws://127.0.0.1:10");
    assert_eq!(chat["origins"], "same-origin");
    assert_eq!(chat["fallback"], true);
    let site = &routes[1];
    assert_eq!(site["route"], "site");
    assert_eq!(site["host"], "*");
    assert_eq!(site["path"], "/");
    assert_eq!(site["origins"], "1 listed");
    assert_eq!(site["fallback"], false);
}

/// A route `chat` on `/chat` with the fallback, for `backends`.
fn chat_route(backends: &str) -> String {
    format!(
        "[[listeners]]\nbind = \"127.0.0.1:0\"\n[[routes]]\nname = \"chat\"\npath = \"/chat\"\n\
         backends = {backends}\norigins = [\"https://good.example\"]\nfallback = true\n"
    )
}

#[tokio::test]
async fn fallback_logs_use_label_spellings_and_name_the_route() {
    let logs = logs::capture();
    let gw = TestGateway::start(&chat_route("[\"builtin:echo\"]")).await;
    let sse = fallback::open(
        gw.addr(),
        "/chat",
        Some("https://good.example"),
        &["transport=sse"],
    );
    assert_eq!(sse.await.status, 200);
    let opened = logs.wait_for_line(&["fallback session opened"]).await;
    assert!(opened.contains("transport=\"sse\""), "{opened}");
    // An open from a page the route does not allow: refused on route chat.
    let refused = fallback::open(gw.addr(), "/chat", Some("https://evil.example"), &[]).await;
    assert_eq!(refused.status, 403);
    let line = logs
        .wait_for_line(&["http request rejected", "/_wsgate/open"])
        .await;
    assert!(line.contains("route=\"chat\""), "{line}");
    assert!(line.contains("side=\"client\""), "{line}");
    // A request on a session from another origin: refused on the session's route.
    let session = Session::open(gw.addr(), "/chat", Some("https://good.example")).await;
    let stolen = Session {
        origin: Some("https://other.example".into()),
        ..session
    };
    assert_eq!(stolen.poll(0).await.status, 403);
    let line = logs
        .wait_for_line(&["http request rejected", "/poll"])
        .await;
    assert!(line.contains("route=\"chat\""), "{line}");
    gw.stop().await;
    let ended = logs.wait_for_line(&["fallback session ended"]).await;
    assert!(ended.contains("route=\"chat\""), "{ended}");
    assert!(ended.contains("end=\"shutdown\""), "{ended}");
}

#[tokio::test]
async fn trying_the_next_only_when_there_is_a_next() {
    let logs = logs::capture();
    let one = format!("[\"ws://{}\"]", refused_addr().await);
    let gw = TestGateway::start(&chat_route(&one)).await;
    let upgrade = upgrade_request("/chat", &["Origin: https://good.example"]);
    assert_eq!(raw_request(gw.addr(), &upgrade).await.status, 502);
    assert_eq!(logs.lines_with(&["websocket handshake rejected"]).len(), 1);
    assert_eq!(logs.lines_with(&["trying the next"]), Vec::<String>::new());
    gw.stop().await;

    let two = format!(
        "[\"ws://{}\", \"ws://{}\"]",
        refused_addr().await,
        refused_addr().await
    );
    let gw = TestGateway::start(&chat_route(&two)).await;
    // Both lines are written before the answer goes out.
    assert_eq!(raw_request(gw.addr(), &upgrade).await.status, 502);
    assert_eq!(logs.lines_with(&["websocket handshake rejected"]).len(), 2);
    assert_eq!(logs.lines_with(&["trying the next"]).len(), 1);
    gw.stop().await;
}

#[test]
fn the_recipes_configs_are_valid() {
    let recipes = include_str!("../../docs/recipes.md");
    let blocks: Vec<&str> = recipes
        .split("```toml\n")
        .skip(1)
        .filter_map(|rest| rest.split("```").next())
        .collect();
    // Every block is a whole file, the Socket.IO and ACME ones included.
    for needle in ["balance = \"cookie\"", "[listeners.tls.acme]"] {
        assert!(
            blocks.iter().any(|block| block.contains(needle)),
            "no recipe with {needle}: {blocks:#?}"
        );
    }
    assert!(blocks.len() >= 4, "{blocks:#?}");
    for block in blocks {
        if let Err(e) = wsgate::config::Config::parse(block, Path::new(".")) {
            panic!("{e}\nin:\n{block}");
        }
    }
}

#[tokio::test]
async fn a_dead_backend_gives_the_same_close_on_websocket_and_fallback() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    use crate::support::backend::{Answer, Behaviour, WsBackend};
    use crate::support::client::{connect, ws_request, WAIT};

    let backend = WsBackend::start(Answer::AcceptFirst, Behaviour::DieOnCommand).await;
    let gw = TestGateway::start(&chat_route(&format!("[{:?}]", backend.url()))).await;
    let url = gw.ws_url("/chat");
    let (mut ws, _) = connect(ws_request(&url, &[])).await.unwrap();
    ws.send(Message::Text("die".into())).await.unwrap();
    let websocket_close = loop {
        match tokio::time::timeout(WAIT, ws.next()).await.unwrap() {
            Some(Ok(Message::Close(Some(frame)))) => break (u16::from(frame.code), frame.reason),
            Some(Ok(_)) => continue,
            other => panic!("no close frame: {other:?}"),
        }
    };
    let session = Session::open(gw.addr(), "/chat", Some("https://good.example")).await;
    assert_eq!(session.send(1, &[fallback::text("die")]).await.status, 200);
    let events = session.collect(0, 1).await;
    let close = &events.last().unwrap()["close"];
    let fallback_close = (
        close["code"].as_u64().unwrap() as u16,
        close["reason"].as_str().unwrap().to_string(),
    );
    assert_eq!(websocket_close, (1011, "backend went away".into()));
    assert_eq!(fallback_close, (1011, "backend went away".to_string()));
    gw.stop().await;
}
