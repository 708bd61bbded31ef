//! A route's edge policies over HTTP/2. An extended CONNECT (RFC 8441) is
//! admitted by the same code as an HTTP/1.1 upgrade (`ws::admit`), and its
//! relay is the same relay: these tests show `websockets_per_client`,
//! forward auth and `client_messages_per_second` answering an h2 client
//! exactly as `rate_limits.rs` and `auth.rs` show for HTTP/1.1, counted
//! with `http_version="2"`.

use std::time::Instant;

use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;

use crate::support::auth::auth_service;
use crate::support::backend::{Answer, Behaviour, WsBackend};
use crate::support::client::WAIT;
use crate::support::h2::{H2, TLS_LISTENER};
use crate::support::ops::{eventually, metric_reaches, scrape, value};
use crate::support::raw_ws::{client_frame, read_frame};
use crate::support::TestGateway;

/// A TLS listener (HTTP/2 on) and one route `/` with `route` keys.
fn config(route: &str) -> String {
    format!(
        "{TLS_LISTENER}\n[server]\nshutdown_grace = \"5s\"\n\n[[routes]]\npath = \"/\"\n{route}\n"
    )
}

/// The cap counts a client's WebSockets whatever connection they ride: two
/// on one h2 connection fill it, a third stream and a stream of another
/// connection get HTTP/1.1's 429 with `Retry-After: 1`, and the backend
/// never hears of them. A closed WebSocket gives its place back.
#[tokio::test]
async fn websockets_per_client_caps_h2_websockets_with_a_429() {
    let backend = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let route = format!(
        "backends = [\"{}\"]\nwebsockets_per_client = 2",
        backend.url()
    );
    let gw = TestGateway::start(&config(&route)).await;
    let mut h2 = H2::connect(gw.addr()).await;
    let (_, mut first) = h2.websocket("/", &[]).await.unwrap();
    let (_, second) = h2.websocket("/", &[]).await.unwrap();
    let (status, headers, body) = h2.websocket("/", &[]).await.unwrap_err();
    assert_eq!(status.as_u16(), 429, "{body}");
    assert_eq!(headers["retry-after"], "1");
    let mut other = H2::connect(gw.addr()).await;
    let (status, headers, body) = other.websocket("/", &[]).await.unwrap_err();
    assert_eq!(
        status.as_u16(),
        429,
        "another connection, same client: {body}"
    );
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(
        backend.connection_count(),
        2,
        "the refused ones never reached the backend"
    );
    let m = scrape(gw.admin).await;
    let refused = [("limit", "websockets_per_client"), ("answer", "answered")];
    assert_eq!(
        value(&m, "wsgate_limit_refusals_total", &refused),
        2.0,
        "{m}"
    );
    let rejected = [("reason", "websockets_per_client"), ("http_version", "2")];
    assert_eq!(
        value(&m, "wsgate_websocket_handshakes_total", &rejected),
        2.0,
        "{m}"
    );
    let over_h1 = [("http_version", "1.1")];
    assert_eq!(
        value(&m, "wsgate_websocket_handshakes_total", &over_h1),
        0.0
    );

    first.send(Message::Close(None)).await.unwrap();
    while let Some(Ok(_)) = tokio::time::timeout(WAIT, first.next()).await.unwrap() {}
    // The place is the relay's: it is free once the relay task is gone.
    eventually("the first relay to end", || {
        let relays = gw.gateway.shutdown.relays().len();
        async move { relays == 1 }
    })
    .await;
    let (_, mut again) = other.websocket("/", &[]).await.unwrap();
    again.send(Message::Text("in".into())).await.unwrap();
    let echo = tokio::time::timeout(WAIT, again.next()).await.unwrap();
    assert_eq!(echo.unwrap().unwrap(), Message::Text("in".into()));
    drop((first, second, again, h2, other));
    gw.stop().await;
}

/// Forward auth on an extended CONNECT: a 2xx admits and only the
/// service's `X-User` reaches the backend; a 401 and a 403 go back on the
/// h2 stream with their headers and bodies; a redirect is a 502; a refusal
/// never dials the backend. The service gets the client's `Authorization`
/// and `Cookie`.
#[tokio::test]
async fn forward_auth_admits_and_refuses_extended_connects() {
    let auth = auth_service().await;
    let backend = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let route = format!(
        "backends = [\"{}\"]\nauth = {{ forward = \"http://{}/verify\", copy_headers = [\"X-User\"], timeout = \"5s\" }}",
        backend.url(),
        auth.addr
    );
    let gw = TestGateway::start(&config(&route)).await;
    let mut h2 = H2::connect(gw.addr()).await;

    let (status, headers, body) = h2
        .websocket("/chat", &[("cookie", "session=stolen")])
        .await
        .unwrap_err();
    assert_eq!((status.as_u16(), body.as_str()), (401, "login first\n"));
    assert_eq!(headers["www-authenticate"], "Bearer realm=\"chat\"");
    let (status, _, body) = h2
        .websocket("/chat", &[("cookie", "session=banned")])
        .await
        .unwrap_err();
    assert_eq!((status.as_u16(), body.as_str()), (403, "banned\n"));
    let (status, _, body) = h2
        .websocket("/chat", &[("cookie", "session=redirect")])
        .await
        .unwrap_err();
    assert_eq!(status.as_u16(), 502, "a redirect never admits: {body}");
    assert_eq!(backend.connection_count(), 0, "no backend was dialled");

    let headers = [
        ("cookie", "session=good"),
        ("authorization", "Bearer h2-token"),
        ("x-user", "mallory"),
    ];
    let (response, mut ws) = h2.websocket("/chat?room=7", &headers).await.unwrap();
    assert_eq!(response.status(), 200);
    let (_, seen) = backend.request(0);
    let users: Vec<_> = seen.get_all("x-user").iter().collect();
    assert_eq!(
        users,
        ["alice"],
        "only the service's X-User reaches the backend"
    );
    assert_eq!(seen["authorization"], "Bearer h2-token");
    let asked = auth.asked.lock().unwrap().last().unwrap().clone();
    assert_eq!(asked["authorization"], "Bearer h2-token");
    assert_eq!(asked["cookie"], "session=good");
    assert_eq!(asked["x-forwarded-uri"], "/chat?room=7");
    // The service sees the same WebSocket as over HTTP/1.1: a GET.
    assert_eq!(asked["x-forwarded-method"], "GET");
    assert!(asked.get("x-user").is_none());
    ws.send(Message::Text("vouched".into())).await.unwrap();
    let echo = tokio::time::timeout(WAIT, ws.next()).await.unwrap();
    assert_eq!(echo.unwrap().unwrap(), Message::Text("vouched".into()));

    let m = scrape(gw.admin).await;
    for (result, n) in [("allowed", 1.0), ("denied", 2.0), ("auth_bad_answer", 1.0)] {
        let labels = [("result", result)];
        assert_eq!(
            value(&m, "wsgate_auth_requests_total", &labels),
            n,
            "{result}\n{m}"
        );
    }
    for (reason, n) in [("ok", 1.0), ("auth_denied", 2.0), ("auth_bad_answer", 1.0)] {
        let labels = [("reason", reason), ("http_version", "2")];
        assert_eq!(
            value(&m, "wsgate_websocket_handshakes_total", &labels),
            n,
            "{reason}\n{m}"
        );
    }
    drop((ws, h2));
    gw.stop().await;
}

/// 200 tiny messages in one write over an h2 stream against 20 per second
/// with a burst of 20: the burst is echoed, then both sides get close 1008
/// "message rate exceeded", as over TCP (`rate_limits.rs`, same tolerance).
#[tokio::test]
async fn a_flooding_h2_client_is_closed_1008_on_both_sides() {
    let mut backend = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let route = format!(
        "backends = [\"{}\"]\nclient_messages_per_second = 20",
        backend.url()
    );
    let gw = TestGateway::start(&config(&route)).await;
    let mut h2 = H2::connect(gw.addr()).await;
    let (_, mut stream) = h2.raw_websocket("/", "websocket", &[]).await.unwrap();
    let started = Instant::now();
    let flood: Vec<u8> = (0..200).flat_map(|_| client_frame(0x81, b"m")).collect();
    stream.write_all(&flood).await.unwrap();
    let mut echoed = 0;
    let close = loop {
        let frame = tokio::time::timeout(WAIT, read_frame(&mut stream))
            .await
            .unwrap();
        match frame.expect("a close comes") {
            (0x1, _) => echoed += 1,
            (0x8, payload) => break payload,
            _ => {}
        }
    };
    let most = 20 + (20.0 * started.elapsed().as_secs_f64()).ceil() as usize + 1;
    let code = u16::from_be_bytes([close[0], close[1]]);
    let reason = String::from_utf8_lossy(&close[2..]);
    assert_eq!((code, &*reason), (1008, "message rate exceeded"));
    assert!(
        (20..=most).contains(&echoed),
        "{echoed} echoed, expected 20..={most}"
    );
    let to_backend = tokio::time::timeout(WAIT, backend.closes.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(to_backend, (1008, "message rate exceeded".into()));
    // The client answers the close, should the stream still be open for it.
    let _ = stream
        .write_all(&client_frame(0x88, &1008u16.to_be_bytes()))
        .await;
    let closed = [
        ("limit", "client_messages_per_second"),
        ("action", "closed"),
    ];
    metric_reaches(gw.admin, "wsgate_client_rate_limited_total", &closed, 1.0).await;
    let ended = [("end", "rate_limited"), ("http_version", "2")];
    metric_reaches(
        gw.admin,
        "wsgate_websocket_sessions_ended_total",
        &ended,
        1.0,
    )
    .await;
    drop((stream, h2));
    gw.stop().await;
}
