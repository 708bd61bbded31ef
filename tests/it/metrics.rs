//! Metrics, health endpoints and request ids after real traffic: each
//! counter by its value, histograms by their buckets, `/readyz` while
//! draining.

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use crate::support::backend::{
    http_echo_backend, refused_addr, silent_backend, Answer, Behaviour, WsBackend,
};
use crate::support::client::{connect, raw_request, upgrade_request, ws_request, Ws, WAIT};
use crate::support::ops::{admin_get, buckets, metric_reaches, sample, scrape, value};
use crate::support::{one_route, TestGateway};

/// The route label of `one_route` (no `name`: host `*`, path `/`).
const ROUTE: &str = "*/";

/// The next data message, skipping pings.
async fn next_data(ws: &mut Ws) -> Message {
    loop {
        let message = tokio::time::timeout(WAIT, ws.next()).await.unwrap();
        match message.unwrap().unwrap() {
            Message::Ping(_) | Message::Pong(_) => continue,
            other => return other,
        }
    }
}

#[tokio::test]
async fn relayed_messages_bytes_and_closes_are_counted() {
    let backend = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let gw = TestGateway::start(&one_route(&[backend.url()], "")).await;
    let (mut ws, _) = connect(ws_request(&gw.ws_url("/"), &[])).await.unwrap();
    for text in ["one", "two", "three"] {
        ws.send(Message::Text(text.into())).await.unwrap();
        assert_eq!(next_data(&mut ws).await, Message::Text(text.into()));
    }
    // Live: counted while the session is still open.
    let m = scrape(gw.admin).await;
    let dir = |d| [("route", ROUTE), ("direction", d)];
    assert_eq!(
        value(
            &m,
            "wsgate_websocket_messages_total",
            &dir("client_to_backend")
        ),
        3.0
    );
    assert_eq!(
        value(
            &m,
            "wsgate_websocket_messages_total",
            &dir("backend_to_client")
        ),
        3.0
    );
    assert_eq!(
        value(
            &m,
            "wsgate_websocket_bytes_total",
            &dir("client_to_backend")
        ),
        11.0
    );
    assert_eq!(
        value(
            &m,
            "wsgate_websocket_bytes_total",
            &dir("backend_to_client")
        ),
        11.0
    );
    assert_eq!(
        value(
            &m,
            "wsgate_websocket_connections_active",
            &[("route", ROUTE)]
        ),
        1.0
    );
    let accepted = [("route", ROUTE), ("outcome", "accepted"), ("reason", "ok")];
    assert_eq!(
        value(&m, "wsgate_websocket_handshakes_total", &accepted),
        1.0
    );
    assert_eq!(
        value(&m, "wsgate_http_requests_total", &[("class", "1xx")]),
        1.0
    );
    assert_eq!(
        value(
            &m,
            "wsgate_backend_connect_duration_seconds_count",
            &[("backend", &backend.url())]
        ),
        1.0
    );

    let frame = CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    };
    ws.send(Message::Close(Some(frame))).await.unwrap();
    while tokio::time::timeout(WAIT, ws.next())
        .await
        .unwrap()
        .is_some()
    {}
    metric_reaches(
        gw.admin,
        "wsgate_websocket_connections_active",
        &[("route", ROUTE)],
        0.0,
    )
    .await;
    let m = scrape(gw.admin).await;
    for side in ["client", "backend"] {
        let labels = [("route", ROUTE), ("side", side), ("code", "1000")];
        assert_eq!(
            value(&m, "wsgate_websocket_close_codes_total", &labels),
            1.0,
            "{side}"
        );
    }
    let ended = [("route", ROUTE), ("end", "close_handshake")];
    assert_eq!(
        value(&m, "wsgate_websocket_sessions_ended_total", &ended),
        1.0
    );
    assert_eq!(
        value(
            &m,
            "wsgate_websocket_session_duration_seconds_count",
            &[("route", ROUTE)]
        ),
        1.0
    );
    // Counters stay where they were once the session has ended.
    assert_eq!(
        value(
            &m,
            "wsgate_websocket_messages_total",
            &dir("client_to_backend")
        ),
        3.0
    );
    gw.stop().await;
}

#[tokio::test]
async fn rejections_are_counted_by_reason() {
    let backend = WsBackend::start(Answer::Refuse(401, "who?".into()), Behaviour::Echo).await;
    let refused = format!("ws://{}", refused_addr().await);
    let toml = format!(
        "[[listeners]]\nbind = \"127.0.0.1:0\"\n\
         [[routes]]\nname = \"chat\"\npath = \"/chat\"\nbackends = [{:?}]\norigins = [\"https://good.example\"]\n\
         [[routes]]\nname = \"down\"\npath = \"/down\"\nbackends = [{refused:?}]\n",
        backend.url()
    );
    let gw = TestGateway::start(&toml).await;
    let evil = upgrade_request("/chat", &["Origin: https://evil.example"]);
    assert_eq!(raw_request(gw.addr(), &evil).await.status, 403);
    let good = upgrade_request("/chat", &["Origin: https://good.example"]);
    assert_eq!(raw_request(gw.addr(), &good).await.status, 401);
    assert_eq!(
        raw_request(gw.addr(), &upgrade_request("/down", &[]))
            .await
            .status,
        502
    );
    assert_eq!(
        raw_request(gw.addr(), &upgrade_request("/nowhere", &[]))
            .await
            .status,
        404
    );

    let m = scrape(gw.admin).await;
    let rejected = |route, reason| {
        [
            ("route", route),
            ("outcome", "rejected"),
            ("reason", reason),
        ]
    };
    let count = |labels: &[(&str, &str)]| value(&m, "wsgate_websocket_handshakes_total", labels);
    assert_eq!(count(&rejected("chat", "origin")), 1.0);
    assert_eq!(count(&rejected("chat", "backend_status")), 1.0);
    assert_eq!(count(&rejected("down", "backend_refused")), 1.0);
    assert_eq!(count(&rejected("<none>", "no_route")), 1.0);
    let errors = [("backend", refused.as_str()), ("reason", "backend_refused")];
    assert_eq!(
        value(&m, "wsgate_backend_connect_errors_total", &errors),
        1.0
    );
    assert_eq!(
        value(&m, "wsgate_http_requests_total", &[("class", "4xx")]),
        3.0
    );
    assert_eq!(
        value(&m, "wsgate_http_requests_total", &[("class", "5xx")]),
        1.0
    );
    gw.stop().await;
}

#[tokio::test]
async fn health_and_readiness() {
    let backend = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let gw = TestGateway::start(&one_route(&[backend.url()], "")).await;
    assert_eq!(admin_get(gw.admin, "/healthz").await.status, 200);
    assert_eq!(admin_get(gw.admin, "/readyz").await.status, 200);
    assert_eq!(admin_get(gw.admin, "/nope").await.status, 404);
    let metrics = admin_get(gw.admin, "/metrics").await;
    assert!(metrics
        .header("content-type")
        .unwrap()
        .contains("openmetrics-text"));
    assert!(metrics
        .body
        .contains("# TYPE wsgate_tls_handshake_failures counter"));
    assert!(metrics.body.trim_end().ends_with("# EOF"));
    // Exported at 0 from the start, not merely absent (which `value` reads as 0).
    assert_eq!(
        sample(&metrics.body, "wsgate_tls_handshake_failures_total", &[]),
        Some(0.0)
    );
    gw.stop().await;
}

#[tokio::test]
async fn tls_handshake_failures_are_counted() {
    let toml = "[[listeners]]\nbind = \"127.0.0.1:0\"\n[listeners.tls]\nself_signed = true\n\n\
                [[routes]]\nbackends = [\"builtin:echo\"]\n";
    let gw = TestGateway::start(toml).await;
    for _ in 0..2 {
        // A handshake record that is no ClientHello. (Plain HTTP on a TLS
        // port is answered 400 instead, and counted apart: plain_http_on_tls.)
        let mut stream = tokio::net::TcpStream::connect(gw.addr()).await.unwrap();
        stream
            .write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5])
            .await
            .unwrap();
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut rest)).await;
    }
    metric_reaches(gw.admin, "wsgate_tls_handshake_failures_total", &[], 2.0).await;
    gw.stop().await;
}

#[tokio::test]
async fn rejections_by_subprotocol_version_and_backend_timeout() {
    let backend = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let (silent, dialed) = silent_backend().await;
    let toml = format!(
        "[[listeners]]\nbind = \"127.0.0.1:0\"\n\
         [[routes]]\nname = \"proto\"\npath = \"/proto\"\nbackends = [{:?}]\nsubprotocols = [\"chat.v2\"]\n\
         [[routes]]\nname = \"slow\"\npath = \"/slow\"\nbackends = [\"ws://{silent}\"]\nresponse_timeout = \"200ms\"\n",
        backend.url()
    );
    let gw = TestGateway::start(&toml).await;
    let offer = upgrade_request("/proto", &["Sec-WebSocket-Protocol: chat.v0"]);
    assert_eq!(raw_request(gw.addr(), &offer).await.status, 400);
    let old = upgrade_request("/proto", &[]).replace("Version: 13", "Version: 8");
    assert_eq!(raw_request(gw.addr(), &old).await.status, 426);
    let old = upgrade_request("/proto", &[]).replace("Version: 13", "Version: 12");
    assert_eq!(raw_request(gw.addr(), &old).await.status, 426);
    let slow = upgrade_request("/slow", &[]);
    assert_eq!(raw_request(gw.addr(), &slow).await.status, 504);
    assert_eq!(backend.connection_count(), 0, "checks fail before any dial");
    assert_eq!(dialed.load(std::sync::atomic::Ordering::SeqCst), 1);

    let m = scrape(gw.admin).await;
    let rejected = |route, reason| {
        [
            ("route", route),
            ("outcome", "rejected"),
            ("reason", reason),
        ]
    };
    let count = |labels: &[(&str, &str)]| sample(&m, "wsgate_websocket_handshakes_total", labels);
    assert_eq!(count(&rejected("proto", "subprotocol")), Some(1.0));
    assert_eq!(count(&rejected("proto", "version")), Some(2.0));
    assert_eq!(count(&rejected("slow", "backend_timeout")), Some(1.0));
    let accepted = [("outcome", "accepted")];
    assert_eq!(
        value(&m, "wsgate_websocket_handshakes_total", &accepted),
        0.0
    );
    let class = |c| value(&m, "wsgate_http_requests_total", &[("class", c)]);
    assert_eq!((class("4xx"), class("5xx")), (3.0, 1.0));
    gw.stop().await;
}

/// Sends a message one byte over the route's `max_message_size` (16).
async fn oversized_message(gw: &TestGateway) -> Option<u16> {
    let (mut ws, _) = connect(ws_request(&gw.ws_url("/"), &[])).await.unwrap();
    ws.send(Message::Text("x".repeat(17))).await.unwrap();
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.unwrap() {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| f.code.into()),
            Some(Ok(_)) => continue,
            _ => return None,
        }
    }
}

#[tokio::test]
async fn gateway_close_codes_for_a_violation_and_a_drain() {
    let backend = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let mut gw =
        TestGateway::start(&one_route(&[backend.url()], "max_message_size = \"16\"")).await;
    assert_eq!(oversized_message(&gw).await, Some(1009));
    let code = |side| [("route", ROUTE), ("side", side), ("code", "1009")];
    let gateway_closes = "wsgate_websocket_gateway_close_codes_total";
    metric_reaches(gw.admin, gateway_closes, &code("client"), 1.0).await;
    metric_reaches(gw.admin, gateway_closes, &code("backend"), 1.0).await;

    let (mut ws, _) = connect(ws_request(&gw.ws_url("/"), &[])).await.unwrap();
    // Never answers its 1001, so the drain stays open for the scrapes.
    let mut stubborn = crate::support::raw_ws::raw_upgrade(gw.addr()).await;
    gw.begin_stop();
    assert_eq!(
        crate::support::raw_ws::read_close(&mut stubborn).await,
        Some(1001)
    );
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.unwrap() {
            Some(Ok(Message::Close(frame))) => {
                assert_eq!(frame.map(|f| u16::from(f.code)), Some(1001));
            }
            Some(Ok(_)) => continue,
            _ => break,
        }
    }
    let ready = admin_get(gw.admin, "/readyz").await;
    assert_eq!((ready.status, ready.body.as_str()), (503, "draining\n"));
    let code = |side| [("route", ROUTE), ("side", side), ("code", "1001")];
    metric_reaches(gw.admin, gateway_closes, &code("client"), 1.0).await;
    metric_reaches(gw.admin, gateway_closes, &code("backend"), 1.0).await;
    let m = scrape(gw.admin).await;
    let ended = |end| value(&m, "wsgate_websocket_sessions_ended_total", &[("end", end)]);
    assert_eq!((ended("message_too_big"), ended("shutdown")), (1.0, 1.0));
    // The stubborn relay has had its 1001 but has not ended: not counted yet.
    assert_eq!(value(&m, gateway_closes, &code("client")), 1.0);
    let close = crate::support::raw_ws::client_frame(0x88, &1001u16.to_be_bytes());
    stubborn.write_all(&close).await.unwrap();
    tokio::time::timeout(WAIT, gw.join()).await.unwrap();
}

/// `start * factor^i` for `i` in `0..n`, as prometheus-client lays them out.
fn exponential(start: f64, factor: f64, n: i32) -> Vec<f64> {
    (0..n).map(|i| start * factor.powi(i)).collect()
}

/// Checks one observation's histogram: the documented bounds, cumulative
/// counts, and the observation (at most `bound`) in every bucket from the
/// first bound at or above `bound` on.
fn assert_one_observation(buckets: &[(f64, f64)], bounds: &[f64], bound: f64) {
    let les: Vec<f64> = buckets.iter().map(|(le, _)| *le).collect();
    assert_eq!(les.len(), bounds.len() + 1, "{buckets:?}");
    for (le, want) in les.iter().zip(bounds) {
        assert!((le - want).abs() <= want * 1e-9, "{le} vs {want}");
    }
    assert_eq!(buckets.last().copied(), Some((f64::INFINITY, 1.0)));
    assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "{buckets:?}");
    for (le, count) in buckets {
        assert!(*count == 0.0 || *count == 1.0, "{buckets:?}");
        if *le >= bound {
            assert_eq!(*count, 1.0, "le={le}, observation <= {bound}: {buckets:?}");
        }
    }
}

#[tokio::test]
async fn histograms_export_their_buckets() {
    let backend = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let gw = TestGateway::start(&one_route(&[backend.url()], "")).await;
    let started = std::time::Instant::now();
    let (mut ws, _) = connect(ws_request(&gw.ws_url("/"), &[])).await.unwrap();
    let connected = started.elapsed();
    ws.send(Message::Close(None)).await.unwrap();
    while tokio::time::timeout(WAIT, ws.next())
        .await
        .unwrap()
        .is_some()
    {}
    let route = [("route", ROUTE)];
    metric_reaches(gw.admin, "wsgate_websocket_connections_active", &route, 0.0).await;
    let lived = started.elapsed();
    let m = scrape(gw.admin).await;

    let session = "wsgate_websocket_session_duration_seconds";
    let session_buckets = buckets(&m, session, &route);
    assert_one_observation(
        &session_buckets,
        &exponential(0.1, 3.0, 12),
        lived.as_secs_f64(),
    );
    assert_eq!(sample(&m, &format!("{session}_count"), &route), Some(1.0));
    let sum = sample(&m, &format!("{session}_sum"), &route).unwrap();
    assert!(
        sum > 0.0 && sum <= lived.as_secs_f64(),
        "{sum} vs {lived:?}"
    );

    let connect = "wsgate_backend_connect_duration_seconds";
    let url = backend.url();
    let at = [("backend", url.as_str())];
    let connect_buckets = buckets(&m, connect, &at);
    assert_one_observation(
        &connect_buckets,
        &exponential(0.0005, 2.0, 15),
        connected.as_secs_f64(),
    );
    let sum = sample(&m, &format!("{connect}_sum"), &at).unwrap();
    assert!(
        sum > 0.0 && sum <= connected.as_secs_f64(),
        "{sum} vs {connected:?}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn request_ids_reach_backends_and_responses() {
    let backend = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let gw = TestGateway::start(&one_route(&[backend.url()], "")).await;
    let request = ws_request(&gw.ws_url("/"), &[("x-request-id", "trace-42")]);
    let (first, response) = connect(request).await.unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-42");
    assert_eq!(backend.request(0).1["x-request-id"], "trace-42");
    let (second, response) = connect(ws_request(&gw.ws_url("/"), &[])).await.unwrap();
    let generated = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(generated.len(), 32);
    assert_eq!(backend.request(1).1["x-request-id"], generated.as_str());
    drop((first, second));
    gw.stop().await;

    let (http, _) = http_echo_backend().await;
    let gw = TestGateway::start(&one_route(&[format!("http://{http}")], "")).await;
    let get = "GET /x HTTP/1.1\r\nHost: a\r\nX-Request-Id: abc\r\nConnection: close\r\n\r\n";
    let response = raw_request(gw.addr(), get).await;
    assert_eq!(response.header("x-request-id").as_deref(), Some("abc"));
    assert!(
        response.body.contains("x-request-id: abc"),
        "{}",
        response.body
    );
    gw.stop().await;
}
