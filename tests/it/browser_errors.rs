//! Honest client errors, in headless Chromium (installed by
//! `scripts/test.sh`, driven by playwright-core): when a socket cannot
//! open, `WsgateSocket.fallbackReason` names every transport tried and the
//! gateway's answer — a forced transport refused with 502, a cross-origin
//! page refused with 403 (readable thanks to the refusal's CORS headers) —
//! and "blocked by a proxy or firewall?" only when the gateway did answer
//! HTTP. Also checked without a browser: which headers a refusal carries.

use std::process::Command;

use serde_json::json;

use crate::support::backend::refused_addr;
use crate::support::fallback::{self, firewall};
use crate::support::TestGateway;

/// Routes: the demo page on `/`, `/down` to a backend that refuses
/// connections, `/chat` only for `https://allowed.example`; all with the
/// fallback.
async fn config() -> String {
    let down = refused_addr().await;
    format!(
        "[[listeners]]\nbind = \"127.0.0.1:0\"\n\
         [[routes]]\npath = \"/\"\nbackends = [\"builtin:echo\"]\nfallback = true\n\
         [[routes]]\npath = \"/down\"\nbackends = [\"ws://{down}\"]\nfallback = true\n\
         [[routes]]\npath = \"/chat\"\nbackends = [\"builtin:echo\"]\nfallback = true\n\
         origins = [\"https://allowed.example\"]\n"
    )
}

/// Runs the browser cases from a page at `page`; a missing Chromium or
/// package is a failure, not a skip.
async fn run_browser(page: String, cases: serde_json::Value) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients");
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg("browser_errors.mjs")
            .arg(page)
            .arg(cases.to_string())
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
async fn chromium_pages_learn_why_a_socket_did_not_open() {
    let gw = TestGateway::start(&config().await).await;
    let direct = format!("ws://{}", gw.addr());
    // A page of another origin: served through a relay on another port
    // (which also blocks upgrades; the socket below does not use it).
    let elsewhere = firewall(gw.addr()).await;
    let firewall_blame = "proxy or firewall";
    // Same origin: the gateway itself serves the page.
    let same_origin = json!([
        {
            "name": "forced longpoll, backend down",
            "url": format!("{direct}/down"),
            "transports": ["longpoll"],
            "includes": ["longpoll: open refused with 502"],
            "excludes": [firewall_blame],
        },
        {
            "name": "all transports, backend down",
            "url": format!("{direct}/down"),
            "transports": null,
            "includes": ["websocket: refused: the gateway answered 502", "sse: open refused with 502"],
            "excludes": [firewall_blame],
        },
    ]);
    run_browser(format!("http://{}/", gw.addr()), same_origin).await;
    let cross_origin = json!([
        {
            "name": "origin not allowed",
            "url": format!("{direct}/chat"),
            "transports": null,
            "includes": [
                "websocket: refused: the gateway answered 403",
                &format!("sse: open refused with 403 origin http://{elsewhere} is not allowed"),
            ],
            "excludes": [firewall_blame],
        },
    ]);
    run_browser(format!("http://{elsewhere}/"), cross_origin).await;
    gw.stop().await;
}

#[tokio::test]
async fn refusals_of_fallback_requests_are_readable_cross_origin() {
    let gw = TestGateway::start(&config().await).await;
    let page = "https://page.example";
    let refused = fallback::open(gw.addr(), "/chat", Some(page), &[]).await;
    assert_eq!(refused.status, 403);
    let header = |name: &str| {
        refused
            .headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    assert_eq!(header("access-control-allow-origin").as_deref(), Some(page));
    assert_eq!(
        header("access-control-allow-credentials").as_deref(),
        Some("true")
    );
    assert_eq!(header("vary").as_deref(), Some("Origin"));
    // Status and reason only: no header is exposed beyond the safelisted.
    assert_eq!(header("access-control-expose-headers"), None);
    assert!(refused.body.contains("is not allowed"), "{}", refused.body);
    let unknown = fallback::request(
        gw.addr(),
        "GET",
        "/_wsgate/s/nosuchsession/poll",
        &[("origin", page)],
        "",
    )
    .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(
        unknown.headers.get("access-control-allow-origin").unwrap(),
        page
    );
    // A refusal outside the fallback's endpoints gets no CORS headers.
    let upgrade =
        crate::support::client::upgrade_request("/chat", &["Origin: https://page.example"]);
    let plain = crate::support::client::raw_request(gw.addr(), &upgrade).await;
    assert_eq!(plain.status, 403);
    assert_eq!(plain.header("access-control-allow-origin"), None);
    gw.stop().await;
}
