//! HTTP/2 abuse, sent frame by frame by a raw client (Python, with the
//! `hpack` encoder that `h2` ships; `tests/clients/h2_hostile.py`): each
//! attack of docs/security.md's HTTP/2 table is bounded (the connection is
//! cut, or the stream refused), counted on `/metrics`, and the gateway
//! keeps serving everyone else.

use std::process::Command;

use serde_json::Value;

use crate::support::backend::silent_backend;
use crate::support::h2::{H2, TLS_LISTENER};
use crate::support::ops::metric_reaches;
use crate::support::TestGateway;

const PYTHON: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/python");
const CLIENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients");

/// A gateway whose `/held` requests wait on a backend that never answers.
async fn gateway() -> TestGateway {
    let (silent, _) = silent_backend().await;
    let config = format!(
        "{TLS_LISTENER}\n[server]\nshutdown_grace = \"2s\"\n\n\
         [[routes]]\npath = \"/held\"\nbackends = [\"http://{silent}\"]\nresponse_timeout = \"30s\"\n\n\
         [[routes]]\npath = \"/\"\nbackends = [\"builtin:echo\"]\n"
    );
    TestGateway::start(&config).await
}

/// Runs one attack against `gw`; its JSON report.
async fn attack(gw: &TestGateway, name: &str) -> Value {
    let args = [
        "h2_hostile.py".to_string(),
        "127.0.0.1".into(),
        gw.addr().port().to_string(),
        name.into(),
    ];
    let output = tokio::task::spawn_blocking(move || {
        Command::new(PYTHON)
            .args(&args)
            .current_dir(CLIENTS)
            .output()
            .unwrap_or_else(|e| panic!("cannot run python: {e}; install with scripts/test.sh"))
    })
    .await
    .unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(output.status.success(), "{name}: {out}\n{err}");
    println!("{out}");
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{name}: {e}: {out}"))
}

/// Someone else is still served, over HTTP/2, after the attack.
async fn still_serving(gw: &TestGateway) {
    let mut h2 = H2::connect(gw.addr()).await;
    let (response, _) = h2.request(http::Method::GET, "/", &[], b"").await;
    assert_eq!(response.status(), 200);
}

/// The connection ended with GOAWAY `ENHANCE_YOUR_CALM` naming `debug`, or
/// closed without the client seeing one (cut by the gateway's own budget,
/// or the GOAWAY lost to the reset of a socket closed with data unread);
/// the caller checks the gateway's count of how it ended.
fn ended_calm(report: &Value, debug: &str) {
    let goaway = &report["goaway"];
    let calm = goaway["code"] == 11 && goaway["debug"] == debug;
    assert!(
        calm || (goaway.is_null() && report["closed"] == true),
        "{report}"
    );
}

async fn ended(gw: &TestGateway, end: &str) {
    let labels = [("end", end)];
    metric_reaches(gw.admin, "wsgate_http2_connections_total", &labels, 1.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_reset_ends_the_connection() {
    let gw = gateway().await;
    let report = attack(&gw, "rapid_reset").await;
    ended_calm(&report, "too_many_resets");
    assert!(
        report["sent"].as_u64().unwrap() < 5000,
        "cut before the flood ran out: {report}"
    );
    ended(&gw, "rapid_reset").await;
    still_serving(&gw).await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_continuation_flood_ends_the_connection() {
    let gw = gateway().await;
    let report = attack(&gw, "continuation").await;
    // The client may lose the GOAWAY to the reset of a connection closed
    // with its frames unread; the gateway's count says which GOAWAY it sent.
    ended_calm(&report, "too_many_continuations");
    ended(&gw, "continuation_flood").await;
    still_serving(&gw).await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_and_ping_floods_are_cut() {
    let gw = gateway().await;
    for (name, end) in [
        ("settings_flood", "settings_flood"),
        ("ping_flood", "ping_flood"),
    ] {
        let report = attack(&gw, name).await;
        assert_eq!(report["closed"], true, "{name}: {report}");
        ended(&gw, end).await;
    }
    still_serving(&gw).await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hpack_bomb_ends_the_connection() {
    let gw = gateway().await;
    let report = attack(&gw, "hpack_bomb").await;
    assert!(report["block_bytes"].as_u64().unwrap() < 6000, "{report}");
    ended_calm(&report, "header_list_way_too_large");
    ended(&gw, "header_list_abuse").await;
    still_serving(&gw).await;
    gw.stop().await;
}

/// 200 streams at once against a limit of 128: the excess is refused with
/// RST_STREAM(REFUSED_STREAM), and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_over_the_limit_are_refused() {
    let gw = gateway().await;
    let report = attack(&gw, "too_many_streams").await;
    assert_eq!(report["resets"]["7"], 72, "{report}");
    let refused = [("side", "gateway"), ("code", "refused_stream")];
    metric_reaches(gw.admin, "wsgate_http2_stream_resets_total", &refused, 72.0).await;
    still_serving(&gw).await;
    gw.stop().await;
}

/// A header list over `max_header_size` gets 431 on its stream, counted;
/// the connection goes on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_header_list_gets_431_and_the_connection_lives() {
    let gw = gateway().await;
    let report = attack(&gw, "oversized_headers").await;
    assert_eq!(report["statuses"][0], 431, "{report}");
    assert_eq!(
        report["statuses"][1], 200,
        "the next request on it: {report}"
    );
    assert!(report["goaway"].is_null(), "{report}");
    // h2 sends that 431 itself; the watch counts and logs it.
    let labels = [("reason", "header_list_too_large")];
    metric_reaches(
        gw.admin,
        "wsgate_http2_requests_refused_total",
        &labels,
        1.0,
    )
    .await;
    still_serving(&gw).await;
    gw.stop().await;
}
