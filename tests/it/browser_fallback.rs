//! End to end in headless Chromium (installed by `scripts/test.sh`, driven by
//! playwright-core): the demo page and `WsgateSocket` behind a firewall that
//! refuses WebSocket upgrades end on SSE, on long-poll when forced, and on a
//! WebSocket when nothing is in the way; messages arrive complete and in order.

use std::process::Command;

use crate::support::fallback::firewall;
use crate::support::TestGateway;

const CONFIG: &str = "[[listeners]]\nbind = \"127.0.0.1:0\"\n\n\
    [[routes]]\npath = \"/\"\nbackends = [\"builtin:echo\"]\nfallback = true\n";

/// Runs the browser script against `base`; a missing Chromium or package is
/// a failure, not a skip.
async fn run_browser(base: String, expected: &str) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients");
    let expected = expected.to_string();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg("browser_fallback.mjs")
            .arg(base)
            .arg(expected)
            .current_dir(dir)
            .output()
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("cannot run node: {e}; install with scripts/test.sh"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success() && stdout.contains("all checks passed"),
        "browser checks failed (run scripts/test.sh to install Chromium and playwright-core)\nstdout: {stdout}\nstderr: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_behind_a_websocket_firewall_falls_back() {
    let gw = TestGateway::start(CONFIG).await;
    let blocked = firewall(gw.addr()).await;
    run_browser(format!("http://{blocked}"), "sse").await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_without_a_firewall_uses_websocket() {
    let gw = TestGateway::start(CONFIG).await;
    run_browser(format!("http://{}", gw.addr()), "websocket").await;
    gw.stop().await;
}
