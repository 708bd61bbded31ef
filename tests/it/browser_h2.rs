//! Headless Chromium over HTTP/2 (installed by `scripts/test.sh`, driven by
//! playwright-core through `tests/clients/browser_fallback.mjs`): the demo
//! page loads over h2, its WebSocket rides that same connection as an
//! extended CONNECT (RFC 8441; in Chromium's net log the HTTP/2 session
//! that sent the page's `GET /` also sent `:method: CONNECT` with
//! `:protocol: websocket`, and the gateway served exactly as many
//! connections as the log has sessions), and the fallback's long-poll and
//! SSE work over h2 with `client.js` as it is.

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::Value;

use crate::support::h2::TLS_LISTENER;
use crate::support::ops::{metric, metric_reaches};
use crate::support::TestGateway;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_speaks_h2_and_opens_its_websocket_as_an_extended_connect() {
    let config = format!("{TLS_LISTENER}\n[[routes]]\npath = \"/\"\nbackends = [\"builtin:echo\"]\nfallback = true\n");
    let gw = TestGateway::start(&config).await;
    let dir = tempfile::tempdir().unwrap();
    let net_log = dir.path().join("netlog.json");
    let base = format!("https://127.0.0.1:{}", gw.addr().port());
    let args = [
        "browser_fallback.mjs".to_string(),
        base,
        "websocket".into(),
        net_log.display().to_string(),
    ];
    let clients = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients");
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .args(&args)
            .current_dir(clients)
            .output()
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("cannot run node: {e}; install with scripts/test.sh"));
    let (out, err) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    println!("{out}");
    assert!(
        output.status.success() && out.contains("all checks passed"),
        "browser checks failed (run scripts/test.sh to install Chromium and playwright-core)\nstdout: {out}\nstderr: {err}"
    );
    for name in ["default", "longpoll", "sse"] {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{name}: ")))
            .unwrap();
        let json = line[name.len() + 2..]
            .rsplit_once(" ok")
            .map_or(line, |(j, _)| j);
        let result: Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(
            result["pageProtocol"], "h2",
            "{name}: the page came over HTTP/2"
        );
    }
    let log = std::fs::read_to_string(&net_log).expect("Chromium wrote its net log");
    assert!(
        log.contains(":method: CONNECT"),
        "no extended CONNECT in the net log"
    );
    assert!(
        log.contains(":protocol: websocket"),
        "no :protocol websocket in the net log"
    );
    let sessions = h2_sessions(&log);
    println!("HTTP/2 sessions in the net log: {sessions:?}");
    // The sessions that sent a request `wanted` matches.
    let carrying = |wanted: fn(&str) -> bool| -> Vec<u64> {
        let carries = |sent: &Vec<String>| sent.iter().any(|r| wanted(r));
        let ids = sessions.iter().filter(|(_, sent)| carries(sent));
        ids.map(|(id, _)| *id).collect()
    };
    let pages = carrying(|r| r == "GET /");
    let connects = carrying(|r| r.starts_with("CONNECT "));
    assert!(
        !connects.is_empty() && connects.iter().all(|id| pages.contains(id)),
        "every extended CONNECT rode an HTTP/2 session that also carried a page's GET: {sessions:?}"
    );
    assert!(
        sessions
            .values()
            .flatten()
            .any(|r| r == "CONNECT /echo websocket"),
        "the page's WebSocket to /echo is one of them: {sessions:?}"
    );
    // The gateway's side: one TLS connection per session Chromium logged,
    // none besides (each counted once it ended, with the browser).
    let logged = sessions.len() as f64;
    metric_reaches(gw.admin, "wsgate_http2_connections_total", &[], logged).await;
    let labels = [("outcome", "accepted"), ("http_version", "2")];
    let websockets = metric(gw.admin, "wsgate_websocket_handshakes_total", &labels).await;
    assert!(
        websockets >= 1.0,
        "the gateway accepted a WebSocket over HTTP/2"
    );
    let sessions = metric(
        gw.admin,
        "wsgate_fallback_sessions_total",
        &[("http_version", "2")],
    )
    .await;
    assert_eq!(
        sessions, 2.0,
        "long-poll and SSE sessions opened over HTTP/2"
    );
    let over_h1 = [("http_version", "1.1")];
    assert_eq!(
        metric(gw.admin, "wsgate_websocket_handshakes_total", &over_h1).await,
        0.0
    );
    gw.stop().await;
}

/// The HTTP/2 sessions in Chromium's net log (`--log-net-log`), by source
/// id, each with the requests it sent as `METHOD :path [:protocol]`, from
/// its `HTTP2_SESSION_SEND_HEADERS` events. Event types are numbers that
/// the log's own `constants` name.
fn h2_sessions(log: &str) -> BTreeMap<u64, Vec<String>> {
    let log: Value = serde_json::from_str(log).expect("the net log is JSON");
    let send_headers = log["constants"]["logEventTypes"]["HTTP2_SESSION_SEND_HEADERS"]
        .as_u64()
        .expect("the net log names HTTP2_SESSION_SEND_HEADERS");
    let mut sessions: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    let events = log["events"].as_array().expect("the net log's events");
    for event in events {
        if event["type"].as_u64() != Some(send_headers) {
            continue;
        }
        let headers: Vec<&str> = event["params"]["headers"]
            .as_array()
            .map(|h| h.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let field = |name: &str| {
            headers
                .iter()
                .find_map(|h| h.strip_prefix(name)?.strip_prefix(": "))
                .unwrap_or_default()
        };
        let request = format!(
            "{} {} {}",
            field(":method"),
            field(":path"),
            field(":protocol")
        );
        let id = event["source"]["id"]
            .as_u64()
            .expect("an event's source id");
        sessions
            .entry(id)
            .or_default()
            .push(request.trim_end().to_string());
    }
    sessions
}
