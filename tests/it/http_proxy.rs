//! Plain HTTP forwarding through the gateway.

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::support::backend::{
    handed_over_backend, http_echo_backend, refused_addr, silent_backend_reporting_close,
};
use crate::support::client::{raw_request, read_response, read_until, WAIT};
use crate::support::{one_route, TestGateway};

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
    // Refused before routing (tests/it/hostile.rs has the variants).
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

    let (silent, mut closed) = silent_backend_reporting_close().await;
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
    tokio::time::timeout(WAIT, closed.recv())
        .await
        .expect("after the 504 the gateway closes its socket to the backend");
    gw.wait_quiet().await;
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
    let (mut ws, _) = crate::support::client::connect(crate::support::client::ws_request(
        &gw.ws_url("/echo"),
        &[],
    ))
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

/// The backend's end of the gateway's connection, once it is dialed.
async fn backend_side(accepted: tokio::sync::oneshot::Receiver<TcpStream>) -> TcpStream {
    tokio::time::timeout(WAIT, accepted)
        .await
        .expect("the gateway dials the backend")
        .unwrap()
}

#[tokio::test]
async fn chunked_request_body_reaches_the_backend_before_the_client_finishes() {
    let (addr, accepted) = handed_over_backend().await;
    let gw = TestGateway::start(&one_route(&[format!("http://{addr}")], "")).await;
    let mut client = TcpStream::connect(gw.addr()).await.unwrap();
    let head = "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    client
        .write_all(format!("{head}5\r\nfirst\r\n").as_bytes())
        .await
        .unwrap();
    let mut backend = backend_side(accepted).await;
    let mut seen = Vec::new();
    read_until(&mut backend, &mut seen, b"first").await;
    // Only now does the client send the rest of its body.
    client.write_all(b"6\r\nsecond\r\n0\r\n\r\n").await.unwrap();
    read_until(&mut backend, &mut seen, b"second").await;
    read_until(&mut backend, &mut seen, b"0\r\n\r\n").await;
    backend
        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        .await
        .unwrap();
    let res = tokio::time::timeout(WAIT, read_response(&mut client))
        .await
        .unwrap();
    assert_eq!((res.status, res.body.as_str()), (200, "ok"));
    drop(client);
    gw.stop().await;
}

#[tokio::test]
async fn streamed_response_reaches_the_client_before_the_backend_finishes() {
    let (addr, accepted) = handed_over_backend().await;
    let gw = TestGateway::start(&one_route(&[format!("http://{addr}")], "")).await;
    let mut client = TcpStream::connect(gw.addr()).await.unwrap();
    client
        .write_all(b"GET /feed HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut backend = backend_side(accepted).await;
    read_until(&mut backend, &mut Vec::new(), b"\r\n\r\n").await;
    let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    backend
        .write_all(format!("{head}5\r\nfirst\r\n").as_bytes())
        .await
        .unwrap();
    let mut seen = Vec::new();
    read_until(&mut client, &mut seen, b"first").await;
    assert!(
        seen.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&seen)
    );
    // Only now does the backend finish its response.
    backend
        .write_all(b"6\r\nsecond\r\n0\r\n\r\n")
        .await
        .unwrap();
    read_until(&mut client, &mut seen, b"second").await;
    read_until(&mut client, &mut seen, b"0\r\n\r\n").await;
    drop(client);
    gw.stop().await;
}

#[tokio::test]
async fn all_of_several_backends_down_is_502() {
    let mut dead = Vec::new();
    for _ in 0..3 {
        dead.push(format!("http://{}", refused_addr().await));
    }
    let gw = TestGateway::start(&one_route(&dead, "")).await;
    for _ in 0..dead.len() {
        // Each request starts at another backend; none of them answers.
        let res = raw_request(
            gw.addr(),
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(res.status, 502);
    }
    gw.stop().await;
}
