//! Headless Chromium over HTTP/2 (installed by `scripts/test.sh`, driven by
//! playwright-core through `tests/clients/browser_fallback.mjs`): the demo
//! page loads over h2, its WebSocket rides that same connection as an
//! extended CONNECT (RFC 8441; Chromium's net log shows `:method: CONNECT`
//! and `:protocol: websocket`), and the fallback's long-poll and SSE work
//! over h2 with `client.js` as it is.

use std::process::Command;

use serde_json::Value;

use crate::support::h2::TLS_LISTENER;
use crate::support::ops::metric;
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
