//! Metrics, health endpoints and request ids after real traffic.

mod support;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use support::backend::{http_echo_backend, refused_addr, Answer, Behaviour, WsBackend};
use support::client::{connect, raw_request, upgrade_request, ws_request, Ws, WAIT};
use support::ops::{admin_get, metric, metric_reaches, scrape, value};
use support::{one_route, TestGateway};

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
    assert_eq!(
        metric(gw.admin, "wsgate_tls_handshake_failures_total", &[]).await,
        0.0
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
