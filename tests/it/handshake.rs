//! Every row of DESIGN.md's handshake table over real sockets, asserting the
//! answer and whether the backend was contacted.

use std::time::{Duration, Instant};

use crate::support::backend::{
    full_backlog_backend, hang_up_backend, refused_addr, silent_backend,
    silent_backend_reporting_close, Answer, Behaviour, WsBackend,
};
use crate::support::client::{connect, raw_request, upgrade_request, ws_request};
use crate::support::ops::metric;
use crate::support::{one_route, TestGateway};

async fn echo_backend() -> WsBackend {
    WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await
}

#[tokio::test]
async fn no_route_is_404_without_contacting_a_backend() {
    let backend = echo_backend().await;
    let config = one_route(&[backend.url()], "host = \"other.example.com\"");
    let gw = TestGateway::start(&config).await;
    let res = raw_request(gw.addr(), &upgrade_request("/chat", &[])).await;
    assert_eq!(res.status, 404);
    assert_eq!(backend.connection_count(), 0);
    gw.stop().await;
}

#[tokio::test]
async fn origin_not_allowed_is_403_naming_the_reason() {
    let backend = echo_backend().await;
    let config = one_route(
        &[backend.url()],
        "origins = [\"https://chat.example.com\", \"https://*.example.com\"]",
    );
    let gw = TestGateway::start(&config).await;
    for origin in [
        "https://evil.com",
        "https://example.com",
        "http://chat.example.com",
        "null",
    ] {
        let res = raw_request(
            gw.addr(),
            &upgrade_request("/", &[&format!("Origin: {origin}")]),
        )
        .await;
        assert_eq!(res.status, 403, "{origin}");
        assert!(
            res.body.contains("origin"),
            "body names the reason: {}",
            res.body
        );
    }
    assert_eq!(backend.connection_count(), 0);
    for origin in ["https://chat.example.com", "https://a.b.example.com"] {
        let req = ws_request(&gw.ws_url("/"), &[("origin", origin)]);
        assert!(connect(req).await.is_ok(), "{origin} is allowed");
    }
    assert_eq!(backend.connection_count(), 2);
    gw.stop().await;
}

#[tokio::test]
async fn default_origin_policy_is_same_origin_only() {
    let backend = echo_backend().await;
    let gw = TestGateway::start(&one_route(&[backend.url()], "")).await;
    let same = format!("http://{}", gw.addr());
    assert!(connect(ws_request(&gw.ws_url("/"), &[("origin", &same)]))
        .await
        .is_ok());
    let res = raw_request(
        gw.addr(),
        &upgrade_request("/", &["Origin: http://attacker.example"]),
    )
    .await;
    assert_eq!(res.status, 403);
    assert_eq!(backend.connection_count(), 1);
    gw.stop().await;
}

#[tokio::test]
async fn star_allows_any_origin() {
    let backend = echo_backend().await;
    let gw = TestGateway::start(&one_route(&[backend.url()], "origins = [\"*\"]")).await;
    let req = ws_request(&gw.ws_url("/"), &[("origin", "https://anywhere.example")]);
    assert!(connect(req).await.is_ok());
    gw.stop().await;
}

#[tokio::test]
async fn missing_origin_follows_allow_missing_origin() {
    let backend = echo_backend().await;
    let gw = TestGateway::start(&one_route(&[backend.url()], "")).await;
    assert!(
        connect(ws_request(&gw.ws_url("/"), &[])).await.is_ok(),
        "allowed by default"
    );
    gw.stop().await;

    let gw = TestGateway::start(&one_route(&[backend.url()], "allow_missing_origin = false")).await;
    let res = raw_request(gw.addr(), &upgrade_request("/", &[])).await;
    assert_eq!(res.status, 403);
    assert_eq!(
        backend.connection_count(),
        1,
        "only the first gateway's client got through"
    );
    gw.stop().await;
}

#[tokio::test]
async fn no_allowed_subprotocol_is_400_listing_the_allowed_ones() {
    let backend = echo_backend().await;
    let gw = TestGateway::start(&one_route(
        &[backend.url()],
        "subprotocols = [\"chat.v2\", \"chat.v1\"]",
    ))
    .await;
    for extra in [vec!["Sec-WebSocket-Protocol: mqtt"], vec![]] {
        let res = raw_request(gw.addr(), &upgrade_request("/", &extra)).await;
        assert_eq!(res.status, 400);
        assert!(res.body.contains("chat.v2, chat.v1"), "{}", res.body);
    }
    assert_eq!(backend.connection_count(), 0);
    gw.stop().await;
}

#[tokio::test]
async fn backend_sees_only_allowed_subprotocols_and_client_gets_its_choice() {
    let backend = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let gw = TestGateway::start(&one_route(
        &[backend.url()],
        "subprotocols = [\"chat.v2\", \"chat.v1\"]",
    ))
    .await;
    let req = ws_request(
        &gw.ws_url("/"),
        &[("sec-websocket-protocol", "mqtt,chat.v1,chat.v2")],
    );
    let (_, res) = connect(req).await.unwrap();
    let (_, headers) = backend.request(0);
    assert_eq!(headers["sec-websocket-protocol"], "chat.v1, chat.v2");
    assert_eq!(res.headers()["sec-websocket-protocol"], "chat.v1");
    assert_eq!(
        res.headers()
            .get_all("sec-websocket-protocol")
            .iter()
            .count(),
        1
    );
    gw.stop().await;
}

#[tokio::test]
async fn route_first_match_is_chosen_when_backend_picks_none() {
    let backend = WsBackend::start(Answer::AcceptNone, Behaviour::Echo).await;
    let gw = TestGateway::start(&one_route(
        &[backend.url()],
        "subprotocols = [\"chat.v2\", \"chat.v1\"]",
    ))
    .await;
    let req = ws_request(
        &gw.ws_url("/"),
        &[("sec-websocket-protocol", "chat.v1,chat.v2")],
    );
    let (_, res) = connect(req).await.unwrap();
    assert_eq!(res.headers()["sec-websocket-protocol"], "chat.v2");
    gw.stop().await;
}

#[tokio::test]
async fn without_route_subprotocols_offer_and_choice_pass_through() {
    let backend = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let gw = TestGateway::start(&one_route(&[backend.url()], "")).await;
    let req = ws_request(&gw.ws_url("/"), &[("sec-websocket-protocol", "x.a, x.b")]);
    let (_, res) = connect(req).await.unwrap();
    assert_eq!(backend.request(0).1["sec-websocket-protocol"], "x.a, x.b");
    assert_eq!(res.headers()["sec-websocket-protocol"], "x.a");
    gw.stop().await;
}

#[tokio::test]
async fn wrong_version_is_426_advertising_13() {
    let backend = echo_backend().await;
    let gw = TestGateway::start(&one_route(&[backend.url()], "")).await;
    let req = upgrade_request("/", &[]).replace("Version: 13", "Version: 8");
    let res = raw_request(gw.addr(), &req).await;
    assert_eq!(res.status, 426);
    assert_eq!(res.header("sec-websocket-version").as_deref(), Some("13"));
    assert_eq!(backend.connection_count(), 0);
    gw.stop().await;
}

#[tokio::test]
async fn malformed_upgrades_are_400_without_contacting_a_backend() {
    let backend = echo_backend().await;
    let gw = TestGateway::start(&one_route(&[backend.url()], "")).await;
    let good = upgrade_request("/", &[]);
    let cases = [
        good.replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", ""),
        good.replace("dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ="),
        good.replace("dGhlIHNhbXBsZSBub25jZQ==", "not base64!!"),
        good.replace("GET /", "POST /")
            .replace("\r\n\r\n", "\r\nContent-Length: 0\r\n\r\n"),
        good.replace("HTTP/1.1", "HTTP/1.0"),
        upgrade_request("/", &["Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA=="]),
    ];
    for req in cases {
        let res = raw_request(gw.addr(), &req).await;
        assert_eq!(res.status, 400, "{req}");
    }
    assert_eq!(backend.connection_count(), 0);
    gw.stop().await;
}

#[tokio::test]
async fn refused_backends_are_skipped_then_502() {
    let dead = refused_addr().await;
    let backend = echo_backend().await;
    let config = one_route(&[format!("ws://{dead}"), backend.url()], "");
    let gw = TestGateway::start(&config).await;
    for _ in 0..4 {
        assert!(
            connect(ws_request(&gw.ws_url("/"), &[])).await.is_ok(),
            "the live backend answers"
        );
    }
    assert_eq!(backend.connection_count(), 4);
    gw.stop().await;

    let gw = TestGateway::start(&one_route(&[format!("ws://{dead}")], "")).await;
    let res = raw_request(gw.addr(), &upgrade_request("/", &[])).await;
    assert_eq!(res.status, 502, "never a 101 first");
    gw.stop().await;
}

#[tokio::test]
async fn silent_backend_is_504() {
    let (addr, count) = silent_backend().await;
    let config = one_route(&[format!("ws://{addr}")], "response_timeout = \"300ms\"");
    let gw = TestGateway::start(&config).await;
    let res = raw_request(gw.addr(), &upgrade_request("/", &[])).await;
    assert_eq!(res.status, 504);
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1);
    gw.stop().await;

    // And the gateway lets go of the backend's socket after answering.
    let (addr, mut closed) = silent_backend_reporting_close().await;
    let config = one_route(&[format!("ws://{addr}")], "response_timeout = \"300ms\"");
    let gw = TestGateway::start(&config).await;
    let res = raw_request(gw.addr(), &upgrade_request("/", &[])).await;
    assert_eq!(res.status, 504);
    let eof = tokio::time::timeout(crate::support::client::WAIT, closed.recv()).await;
    assert!(eof.is_ok(), "the backend's socket is closed after the 504");
    gw.wait_quiet().await;
    gw.stop().await;
}

#[tokio::test]
async fn backend_refusal_status_and_body_are_relayed() {
    let backend =
        WsBackend::start(Answer::Refuse(401, "login first".into()), Behaviour::Echo).await;
    let gw = TestGateway::start(&one_route(&[backend.url()], "")).await;
    let res = raw_request(gw.addr(), &upgrade_request("/", &[])).await;
    assert_eq!(res.status, 401);
    assert_eq!(res.body, "login first");
    assert_eq!(res.header("x-backend").as_deref(), Some("refused"));
    gw.stop().await;
}

#[tokio::test]
async fn backend_choosing_an_unoffered_subprotocol_is_502() {
    let backend = WsBackend::start(Answer::AcceptWith("sneaky".into()), Behaviour::Echo).await;
    let gw = TestGateway::start(&one_route(&[backend.url()], "")).await;
    let res = raw_request(
        gw.addr(),
        &upgrade_request("/", &["Sec-WebSocket-Protocol: a"]),
    )
    .await;
    assert_eq!(res.status, 502);
    assert_eq!(backend.connection_count(), 1);
    gw.stop().await;
}

#[tokio::test]
async fn backend_gets_path_query_credentials_and_forwarding_headers() {
    let backend = echo_backend().await;
    let gw = TestGateway::start(&one_route(&[backend.url()], "")).await;
    let req = ws_request(
        &gw.ws_url("/chat/room?id=7&x=y"),
        &[
            ("cookie", "sid=s3cr3t"),
            ("authorization", "Bearer tok"),
            ("x-forwarded-for", "203.0.113.7"),
        ],
    );
    let (_, res) = connect(req).await.unwrap();
    assert_eq!(
        res.headers()["set-cookie"],
        "session=abc",
        "backend's 101 headers reach the client"
    );
    let (uri, h) = backend.request(0);
    assert_eq!(uri, "/chat/room?id=7&x=y");
    assert_eq!(h["cookie"], "sid=s3cr3t");
    assert_eq!(h["authorization"], "Bearer tok");
    // The client is not a trusted proxy: its X-Forwarded-For is replaced,
    // not appended to (issue 17; the trusted case is in client_address.rs).
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert_eq!(h["x-real-ip"], "127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], gw.addr().to_string());
    assert_eq!(
        h["forwarded"],
        format!("for=127.0.0.1;proto=http;host=\"{}\"", gw.addr())
    );
    assert_eq!(h["host"], gw.addr().to_string());
    assert_ne!(
        h["sec-websocket-key"], "dGhlIHNhbXBsZSBub25jZQ==",
        "the gateway uses its own key"
    );
    gw.stop().await;
}

#[tokio::test]
async fn several_backends_are_balanced_round_robin() {
    let a = echo_backend().await;
    let b = echo_backend().await;
    let config = one_route(&[a.url(), b.url()], "balance = \"round_robin\"");
    let gw = TestGateway::start(&config).await;
    for _ in 0..6 {
        connect(ws_request(&gw.ws_url("/"), &[])).await.unwrap();
    }
    assert_eq!((a.connection_count(), b.connection_count()), (3, 3));
    gw.stop().await;
}

#[tokio::test]
async fn backend_not_accepting_within_connect_timeout_is_504_or_skipped() {
    let hole = full_backlog_backend().await;
    let url = format!("ws://{}", hole.addr);
    // The default response_timeout (30 s) cannot be what answers in < 3 s.
    let gw = TestGateway::start(&one_route(
        std::slice::from_ref(&url),
        "connect_timeout = \"300ms\"",
    ))
    .await;
    let started = Instant::now();
    let res = raw_request(gw.addr(), &upgrade_request("/", &[])).await;
    assert_eq!(res.status, 504, "never a 101 first");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(3),
        "{took:?}"
    );
    let labels = [("backend", url.as_str()), ("reason", "backend_timeout")];
    let timeouts = metric(gw.admin, "wsgate_backend_connect_errors_total", &labels).await;
    assert_eq!(timeouts, 1.0, "counted as a connect timeout");
    gw.stop().await;

    let live = echo_backend().await;
    let config = one_route(&[url, live.url()], "connect_timeout = \"300ms\"");
    let gw = TestGateway::start(&config).await;
    for _ in 0..2 {
        let connected = connect(ws_request(&gw.ws_url("/"), &[])).await;
        assert!(connected.is_ok(), "the hanging backend is skipped");
    }
    assert_eq!(live.connection_count(), 2);
    gw.stop().await;
}

#[tokio::test]
async fn a_backend_hanging_up_before_its_answer_is_skipped_for_the_next() {
    let (dying, requests) = hang_up_backend().await;
    let live = echo_backend().await;
    let dying_url = format!("ws://{dying}");
    let config = one_route(
        &[dying_url.clone(), live.url()],
        "balance = \"round_robin\"",
    );
    let gw = TestGateway::start(&config).await;
    // Round-robin starts each upgrade one backend further: half of them
    // reach the dying backend first, and must still end on the live one.
    for _ in 0..4 {
        let connected = connect(ws_request(&gw.ws_url("/"), &[])).await;
        assert!(connected.is_ok(), "never a 502 while a backend is up");
    }
    assert_eq!(live.connection_count(), 4);
    let asked = requests.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(asked, 2, "the dying backend was asked twice");
    gw.stop().await;

    // With no other backend, the hang-up is the client's 502.
    let gw = TestGateway::start(&one_route(&[dying_url], "")).await;
    let res = raw_request(gw.addr(), &upgrade_request("/", &[])).await;
    assert_eq!(res.status, 502, "never a 101 first");
    gw.stop().await;
}

#[tokio::test]
async fn all_of_several_backends_down_is_502_after_trying_each() {
    let mut dead = Vec::new();
    for _ in 0..3 {
        dead.push(format!("ws://{}", refused_addr().await));
    }
    let gw = TestGateway::start(&one_route(&dead, "")).await;
    let res = raw_request(gw.addr(), &upgrade_request("/", &[])).await;
    assert_eq!(res.status, 502, "never a 101 first");
    for url in &dead {
        let labels = [("backend", url.as_str()), ("reason", "backend_refused")];
        let tried = metric(gw.admin, "wsgate_backend_connect_errors_total", &labels).await;
        assert_eq!(tried, 1.0, "{url} tried once before the 502");
    }
    gw.stop().await;
}

#[tokio::test]
async fn hop_by_hop_headers_do_not_reach_the_backend_on_upgrade() {
    let backend = echo_backend().await;
    let gw = TestGateway::start(&one_route(&[backend.url()], "")).await;
    let request = upgrade_request(
        "/",
        &[
            "X-Hop: 1",
            "Keep-Alive: timeout=5",
            "Proxy-Connection: keep-alive",
            "TE: trailers",
            "X-End: 2",
        ],
    )
    .replace("Connection: Upgrade\r\n", "Connection: Upgrade, x-hop\r\n");
    let res = raw_request(gw.addr(), &request).await;
    assert_eq!(res.status, 101, "{}", res.head);
    let (_, headers) = backend.request(0);
    for name in ["x-hop", "keep-alive", "proxy-connection", "te"] {
        assert!(
            !headers.contains_key(name),
            "{name} reached the backend: {headers:?}"
        );
    }
    assert_eq!(headers["x-end"], "2", "end-to-end headers still pass");
    let connection = headers["connection"].to_str().unwrap().to_ascii_lowercase();
    assert_eq!(connection, "upgrade", "the gateway's own Connection only");
    gw.stop().await;
}
