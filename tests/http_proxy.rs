//! Plain HTTP forwarding through the gateway.

mod support;

use support::backend::{http_echo_backend, refused_addr, silent_backend};
use support::client::raw_request;
use support::{one_route, TestGateway};

#[tokio::test]
async fn get_is_forwarded_with_forwarding_headers_and_credentials() {
    let (addr, count) = http_echo_backend().await;
    let gw = TestGateway::start(&one_route(&[format!("ws://{addr}")], "")).await;
    let res = raw_request(
        gw.addr(),
        "GET /api/items?page=2 HTTP/1.1\r\nHost: app.example.com\r\nCookie: sid=1\r\nAuthorization: Basic eDp5\r\nConnection: close, X-Hop\r\nX-Hop: secret\r\n\r\n",
    )
    .await;
    assert_eq!(res.status, 200);
    assert_eq!(res.header("x-backend").as_deref(), Some("http-echo"));
    let body = res.body.to_lowercase();
    assert!(body.starts_with("get /api/items?page=2\n"), "{body}");
    for line in [
        "host: app.example.com",
        "cookie: sid=1",
        "authorization: basic edp5",
        "x-forwarded-for: 127.0.0.1",
        "x-forwarded-proto: http",
        "x-forwarded-host: app.example.com",
        "forwarded: for=127.0.0.1;proto=http;host=\"app.example.com\"",
    ] {
        assert!(body.contains(line), "missing {line:?} in {body}");
    }
    assert!(
        !body.contains("x-hop"),
        "headers named in Connection are hop-by-hop: {body}"
    );
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1);
    gw.stop().await;
}

#[tokio::test]
async fn request_bodies_stream_through_chunked_and_sized() {
    let (addr, _) = http_echo_backend().await;
    let gw = TestGateway::start(&one_route(&[format!("http://{addr}")], "")).await;
    let sized = raw_request(
        gw.addr(),
        "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\nConnection: close\r\n\r\nhello world",
    )
    .await;
    assert!(sized.body.ends_with("\n\nhello world"), "{}", sized.body);
    let chunked = raw_request(
        gw.addr(),
        "POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(chunked.status, 200);
    assert!(chunked.body.contains("hello world"), "{}", chunked.body);
    gw.stop().await;
}

#[tokio::test]
async fn h2c_upgrade_is_not_passed_to_the_backend() {
    let (addr, count) = http_echo_backend().await;
    let gw = TestGateway::start(&one_route(&[format!("ws://{addr}")], "")).await;
    let res = raw_request(
        gw.addr(),
        "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
    )
    .await;
    // Refused before routing (tests/hostile.rs has the variants).
    assert_eq!(res.status, 400);
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 0);
    gw.stop().await;
}

#[tokio::test]
async fn unreachable_backend_is_502_and_silent_one_504() {
    let dead = refused_addr().await;
    let gw = TestGateway::start(&one_route(&[format!("ws://{dead}")], "")).await;
    let res = raw_request(
        gw.addr(),
        "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(res.status, 502);
    gw.stop().await;

    let (silent, _) = silent_backend().await;
    let gw = TestGateway::start(&one_route(
        &[format!("ws://{silent}")],
        "response_timeout = \"200ms\"",
    ))
    .await;
    let res = raw_request(
        gw.addr(),
        "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(res.status, 504);
    gw.stop().await;
}

#[tokio::test]
async fn unrouted_request_is_404() {
    let (addr, count) = http_echo_backend().await;
    let gw = TestGateway::start(&one_route(
        &[format!("ws://{addr}")],
        "host = \"only.example.com\"",
    ))
    .await;
    let res = raw_request(
        gw.addr(),
        "GET / HTTP/1.1\r\nHost: other.example.com\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(res.status, 404);
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 0);
    gw.stop().await;
}

#[tokio::test]
async fn builtin_echo_serves_the_demo_page_and_echoes() {
    use futures_util::{SinkExt, StreamExt};
    let gw = TestGateway::start(&one_route(&["builtin:echo".to_string()], "")).await;
    let page = raw_request(
        gw.addr(),
        "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<title>wsgate demo</title>"));
    let (mut ws, _) =
        support::client::connect(support::client::ws_request(&gw.ws_url("/echo"), &[]))
            .await
            .unwrap();
    ws.send(tokio_tungstenite::tungstenite::Message::Text(
        "ping?".into(),
    ))
    .await
    .unwrap();
    let reply = ws.next().await.unwrap().unwrap();
    assert_eq!(
        reply,
        tokio_tungstenite::tungstenite::Message::Text("ping?".into())
    );
    drop(ws);
    gw.stop().await;
}
