//! WebSocket over HTTP/2 (RFC 8441): every row of the handshake table for
//! an extended CONNECT, the backend's ordinary HTTP/1.1 upgrade behind it,
//! and the relay over the h2 stream behaving exactly as over TCP.

use std::sync::atomic::Ordering;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use crate::support::backend::{refused_addr, silent_backend, Answer, Behaviour, WsBackend};
use crate::support::client::{close_code, next_message, WAIT};
use crate::support::h2::{WsH2, H2, TLS_LISTENER};
use crate::support::ops::{metric_reaches, scrape, value};
use crate::support::TestGateway;

fn config(backend: &str, extra: &str) -> String {
    format!("{TLS_LISTENER}\n[server]\nshutdown_grace = \"5s\"\n\n[[routes]]\npath = \"/\"\nbackends = [\"{backend}\"]\n{extra}\n")
}

/// A gateway in front of a `DieOnCommand` echo backend, one h2
/// connection, and one WebSocket on it.
async fn setup(extra: &str) -> (TestGateway, WsBackend, H2, WsH2) {
    let backend = WsBackend::start(Answer::AcceptFirst, Behaviour::DieOnCommand).await;
    let gw = TestGateway::start(&config(&backend.url(), extra)).await;
    let mut h2 = H2::connect(gw.addr()).await;
    let (_, ws) = h2.websocket("/echo", &[]).await.unwrap();
    (gw, backend, h2, ws)
}

async fn backend_close(backend: &mut WsBackend) -> (u16, String) {
    tokio::time::timeout(WAIT, backend.closes.recv())
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn the_client_gets_200_after_the_backends_101_with_its_choices() {
    let backend = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let route = "subprotocols = [\"chat.v2\", \"chat.v1\"]";
    let gw = TestGateway::start(&config(&backend.url(), route)).await;
    let mut h2 = H2::connect(gw.addr()).await;
    let headers = [
        ("sec-websocket-protocol", "chat.v1, other, chat.v2"),
        (
            "sec-websocket-extensions",
            "permessage-deflate; client_max_window_bits, x-unknown",
        ),
        ("cookie", "a=1"),
        ("cookie", "b=2"),
        ("authorization", "Bearer token"),
        ("origin", &format!("https://{}", h2.authority)),
    ];
    let (response, mut ws) = h2.websocket("/chat?room=7", &headers).await.unwrap();
    assert_eq!(response.status(), 200);
    let h = response.headers();
    assert_eq!(
        h["sec-websocket-protocol"], "chat.v1",
        "the backend's choice"
    );
    assert_eq!(
        h["set-cookie"], "session=abc",
        "the backend's other headers"
    );
    for absent in ["sec-websocket-accept", "upgrade", "connection"] {
        assert!(
            h.get(absent).is_none(),
            "{absent} has no place in an HTTP/2 200"
        );
    }
    let (uri, seen) = backend.request(0);
    assert_eq!(uri, "/chat?room=7");
    assert_eq!(seen["upgrade"], "websocket");
    assert_eq!(seen["sec-websocket-version"], "13");
    let key = seen["sec-websocket-key"].to_str().unwrap();
    assert_eq!(base64_len(key), 16, "the gateway's own key");
    assert_eq!(seen["sec-websocket-protocol"], "chat.v1, chat.v2");
    assert_eq!(
        seen["host"].to_str().unwrap(),
        h2.authority,
        ":authority as Host"
    );
    assert_eq!(seen["cookie"], "a=1; b=2");
    assert_eq!(seen["authorization"], "Bearer token");
    assert_eq!(seen["x-forwarded-proto"], "https");
    assert!(seen.get("sec-websocket-extensions").is_some_and(|v| {
        let v = v.to_str().unwrap();
        v.starts_with("permessage-deflate") && !v.contains("x-unknown")
    }));
    ws.send(Message::Text("over h2".into())).await.unwrap();
    assert_eq!(
        next_message(&mut ws).await,
        Some(Message::Text("over h2".into()))
    );
    let big: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
    ws.send(Message::Binary(big.clone())).await.unwrap();
    assert_eq!(next_message(&mut ws).await, Some(Message::Binary(big)));
    drop((ws, h2));
    gw.stop().await;
}

fn base64_len(key: &str) -> usize {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(key)
        .map_or(0, |b| b.len())
}

/// A path, the request's headers, the status and a word of the body.
type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, u16, &'a str);

/// 404, 403, 400 (subprotocol, malformed version), 426, 501: answered by
/// the gateway, no backend contacted.
#[tokio::test]
async fn refusals_before_any_backend_is_touched() {
    let backend = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let route = format!(
        "[[routes]]\npath = \"/chat\"\nbackends = [\"{}\"]\norigins = [\"https://app.example\"]\nsubprotocols = [\"chat.v2\"]\n",
        backend.url()
    );
    let gw = TestGateway::start(&format!("{TLS_LISTENER}\n{route}")).await;
    let mut h2 = H2::connect(gw.addr()).await;
    let cases: [Case; 5] = [
        ("/elsewhere", vec![], 404, ""),
        (
            "/chat",
            vec![("origin", "https://evil.example")],
            403,
            "evil.example",
        ),
        (
            "/chat",
            vec![
                ("origin", "https://app.example"),
                ("sec-websocket-protocol", "chat.v1"),
            ],
            400,
            "chat.v2",
        ),
        (
            "/chat",
            vec![
                ("origin", "https://app.example"),
                ("sec-websocket-protocol", "chat.v2"),
                ("sec-websocket-version", "8"),
            ],
            426,
            "",
        ),
        (
            "/chat",
            vec![
                ("origin", "https://app.example"),
                ("sec-websocket-protocol", "chat.v2"),
                ("sec-websocket-version", "thirteen"),
            ],
            400,
            "malformed",
        ),
    ];
    for (path, headers, status, body) in cases {
        let (got, h, text) = h2.websocket(path, &headers).await.unwrap_err();
        assert_eq!(got.as_u16(), status, "{path} {headers:?}: {text}");
        assert!(text.contains(body), "{text}");
        if status == 426 {
            assert_eq!(h["sec-websocket-version"], "13");
        }
    }
    let (status, _, text) = h2
        .websocket_with("/chat", "chat", &[("origin", "https://app.example")])
        .await
        .unwrap_err();
    assert_eq!(status.as_u16(), 501, "{text}");
    assert!(text.contains("\"chat\""), "{text}");
    assert_eq!(backend.connection_count(), 0);
    let m = scrape(gw.admin).await;
    let count = |reason| {
        value(
            &m,
            "wsgate_websocket_handshakes_total",
            &[("reason", reason), ("http_version", "2")],
        )
    };
    for reason in [
        "no_route",
        "origin",
        "subprotocol",
        "version",
        "version_malformed",
        "connect_protocol",
    ] {
        assert_eq!(count(reason), 1.0, "{reason}\n{m}");
    }
    gw.stop().await;
}

/// The backend's refusal reaches the client as its own status; a backend
/// that is down, slow, answers 200 or picks an unoffered subprotocol is a
/// 502/504, never a 200 followed by a reset.
#[tokio::test]
async fn backend_answers_reach_the_client_as_statuses() {
    let refusing =
        WsBackend::start(Answer::Refuse(401, "who are you".into()), Behaviour::Echo).await;
    let wrong = WsBackend::start(Answer::AcceptWith("nope".into()), Behaviour::Echo).await;
    let (silent, _) = silent_backend().await;
    let down = refused_addr().await;
    let ok200 = answer_200_backend().await;
    let routes: String = [
        ("/refuse", refusing.url(), ""),
        ("/wrong", wrong.url(), "subprotocols = [\"a\"]"),
        (
            "/slow",
            format!("ws://{silent}"),
            "response_timeout = \"300ms\"",
        ),
        ("/down", format!("ws://{down}"), ""),
        ("/ok200", format!("ws://{ok200}"), ""),
    ]
    .iter()
    .map(|(path, url, extra)| {
        format!("[[routes]]\npath = \"{path}\"\nbackends = [\"{url}\"]\n{extra}\n")
    })
    .collect();
    let gw = TestGateway::start(&format!("{TLS_LISTENER}\n{routes}")).await;
    let mut h2 = H2::connect(gw.addr()).await;
    let (status, headers, body) = h2.websocket("/refuse", &[]).await.unwrap_err();
    assert_eq!((status.as_u16(), body.as_str()), (401, "who are you"));
    assert_eq!(headers["x-backend"], "refused");
    let offer = [("sec-websocket-protocol", "a")];
    for (path, want) in [
        ("/wrong", 502),
        ("/slow", 504),
        ("/down", 502),
        ("/ok200", 502),
    ] {
        let (status, _, text) = h2.websocket(path, &offer).await.unwrap_err();
        assert_eq!(status.as_u16(), want, "{path}: {text}");
    }
    gw.stop().await;
}

/// A backend that answers every upgrade with a plain 200.
async fn answer_200_backend() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let mut head = [0u8; 4096];
            let _ = tcp.read(&mut head).await;
            let _ = tcp
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await;
        }
    });
    addr
}

/// While draining, and over `max_handshakes`, an extended CONNECT gets 503.
#[tokio::test]
async fn draining_and_the_handshake_limit_answer_503() {
    let (silent, dialled) = silent_backend().await;
    let backend = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let extra = format!("[limits]\nmax_handshakes = 1\n\n[[routes]]\npath = \"/slow\"\nbackends = [\"ws://{silent}\"]\nresponse_timeout = \"10s\"\n");
    let gw = TestGateway::start(&config(&backend.url(), &extra)).await;
    let mut h2 = H2::connect(gw.addr()).await;
    let (pending, _held) = h2.open("/slow", &[]).await;
    // The slot is taken before the dial: once the backend was dialled,
    // the one handshake slot is held.
    crate::support::ops::eventually("the slow handshake to dial", || {
        let n = dialled.load(Ordering::SeqCst);
        async move { n == 1 }
    })
    .await;
    let (status, headers, _) = h2.websocket("/echo", &[]).await.unwrap_err();
    assert_eq!(status.as_u16(), 503);
    assert!(headers.get("retry-after").is_some());
    drop(pending);
    gw.gateway.shutdown.begin();
    let (status, _, body) = h2.websocket("/echo", &[]).await.unwrap_err();
    assert_eq!(
        (status.as_u16(), body.as_str()),
        (503, "the gateway is shutting down\n")
    );
    drop((_held, h2));
    gw.stop().await;
}

#[tokio::test]
async fn close_codes_pass_both_ways_over_the_h2_stream() {
    let (gw, mut backend, h2, mut ws) = setup("").await;
    let bye = CloseFrame {
        code: CloseCode::from(4000),
        reason: "done".into(),
    };
    ws.send(Message::Close(Some(bye))).await.unwrap();
    assert_eq!(backend_close(&mut backend).await, (4000, "done".into()));
    assert_eq!(
        close_code(next_message(&mut ws).await),
        Some(4000),
        "the backend's reply"
    );

    let (gw2, _backend2, h2b, mut ws2) = setup("").await;
    ws2.send(Message::Text("bye".into())).await.unwrap();
    assert_eq!(close_code(next_message(&mut ws2).await), Some(4001));
    drop((ws, h2, ws2, h2b));
    gw.stop().await;
    gw2.stop().await;
}

#[tokio::test]
async fn limits_and_protocol_errors_close_like_over_tcp() {
    let (gw, mut backend, h2_first, mut ws) = setup("max_message_size = \"64KiB\"").await;
    ws.send(Message::Binary(vec![2; 64 * 1024 + 1]))
        .await
        .unwrap();
    assert_eq!(close_code(next_message(&mut ws).await), Some(1009));
    assert_eq!(backend_close(&mut backend).await.0, 1009);

    let mut h2 = H2::connect(gw.addr()).await;
    let (_, mut raw) = h2.raw_websocket("/", "websocket", &[]).await.unwrap();
    raw.write_all(&[0x81, 0x02, b'h', b'i']).await.unwrap();
    let mut frame = [0u8; 4];
    tokio::time::timeout(WAIT, raw.read_exact(&mut frame))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (frame[0], u16::from_be_bytes([frame[2], frame[3]])),
        (0x88, 1002)
    );
    assert_eq!(backend_close(&mut backend).await.0, 1002);
    drop((ws, h2_first, raw, h2));
    gw.stop().await;
}

#[tokio::test]
async fn pings_idle_timeout_and_a_dying_backend() {
    let (gw, mut backend, h2, mut ws) =
        setup("ping_interval = \"50ms\"\nidle_timeout = \"600ms\"").await;
    let ping = tokio::time::timeout(WAIT, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(matches!(ping, Message::Ping(_)), "{ping:?}");
    ws.send(Message::Text("still here".into())).await.unwrap();
    assert_eq!(
        next_message(&mut ws).await,
        Some(Message::Text("still here".into()))
    );
    assert_eq!(
        close_code(next_message(&mut ws).await),
        Some(1001),
        "idle, pings aside"
    );
    assert_eq!(backend_close(&mut backend).await.0, 1001);
    drop((ws, h2));
    gw.stop().await;

    let (gw, _backend, h2, mut ws) = setup("").await;
    ws.send(Message::Text("die".into())).await.unwrap();
    assert_eq!(close_code(next_message(&mut ws).await), Some(1011));
    drop((ws, h2));
    gw.stop().await;
}

/// END_STREAM and RST_STREAM from the client are the client going away:
/// the backend gets 1001. Other streams on the connection live on.
#[tokio::test]
async fn end_stream_and_reset_are_the_client_leaving() {
    let (gw, mut backend, mut h2, mut ws) = setup("").await;
    let (_, mut survivor) = h2.websocket("/", &[]).await.unwrap();
    ws.get_mut().shutdown().await.unwrap();
    assert_eq!(
        backend_close(&mut backend).await,
        (1001, "client went away".into())
    );
    let (_, mut ws) = h2.websocket("/", &[]).await.unwrap();
    ws.get_mut().reset(h2::Reason::CANCEL);
    assert_eq!(
        backend_close(&mut backend).await,
        (1001, "client went away".into())
    );
    survivor
        .send(Message::Text("unaffected".into()))
        .await
        .unwrap();
    assert_eq!(
        next_message(&mut survivor).await,
        Some(Message::Text("unaffected".into()))
    );
    drop((ws, survivor, h2));
    gw.stop().await;
}

#[tokio::test]
async fn the_drain_closes_h2_websockets_with_1001_both_ways() {
    let (gw, mut backend, _h2, mut ws) = setup("").await;
    ws.send(Message::Text("x".into())).await.unwrap();
    assert_eq!(next_message(&mut ws).await, Some(Message::Text("x".into())));
    let stopping = tokio::spawn(gw.stop());
    assert_eq!(close_code(next_message(&mut ws).await), Some(1001));
    assert_eq!(backend_close(&mut backend).await.0, 1001);
    drop(ws);
    tokio::time::timeout(WAIT * 2, stopping)
        .await
        .unwrap()
        .unwrap();
}

/// Handshakes and ended sessions carry `http_version="2"`; the session's
/// log line says it too.
#[tokio::test]
async fn metrics_and_the_log_line_name_http2() {
    let logs = crate::support::logs::capture();
    let (gw, _backend, h2, mut ws) = setup("").await;
    ws.send(Message::Close(None)).await.unwrap();
    let _ = next_message(&mut ws).await;
    let line = logs
        .wait_for_line(&["websocket session ended", "http_version=\"2\""])
        .await;
    assert!(
        line.contains("end=close_handshake") || line.contains("end=\"close"),
        "{line}"
    );
    let accepted = [("outcome", "accepted"), ("http_version", "2")];
    metric_reaches(
        gw.admin,
        "wsgate_websocket_handshakes_total",
        &accepted,
        1.0,
    )
    .await;
    let ended = [("http_version", "2")];
    metric_reaches(
        gw.admin,
        "wsgate_websocket_sessions_ended_total",
        &ended,
        1.0,
    )
    .await;
    assert_eq!(
        gw.gateway.limits.open_connections(),
        1,
        "one TCP connection for it all"
    );
    drop((ws, h2));
    gw.stop().await;
}

/// hyper 1.8 to 1.10 buffer an HTTP/2 CONNECT stream without bound when its
/// reader is slow (hyper #4102, fixed in 1.11), and 1.12 and earlier drop
/// the whole connection over a CONNECT that declares a body (1.13 resets
/// only that stream, which the gateway answers 400). Cargo.toml asks for
/// 1.13; this holds the lock file to it too.
#[test]
fn the_locked_hyper_is_at_least_1_13() {
    let lock = include_str!("../../Cargo.lock");
    let version = lock
        .split("[[package]]")
        .find(|p| p.contains("\nname = \"hyper\"\n"))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = \"")))
        .map(|v| v.trim_end_matches('"').to_string())
        .expect("hyper in Cargo.lock");
    let parts: Vec<u64> = version.split('.').map(|n| n.parse().unwrap()).collect();
    assert!(
        parts[0] == 1 && parts[1] >= 13,
        "hyper {version} in Cargo.lock"
    );
}

/// A backend that completes the handshake and then never reads.
async fn deaf_backend() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            if let Ok(ws) = tokio_tungstenite::accept_async(tcp).await {
                held.push(ws); // kept open, never polled again
            }
        }
    });
    addr
}

/// A client writing into a WebSocket whose backend stopped reading fills
/// only that stream's window: the connection's window holds every stream's,
/// so another WebSocket on the same connection goes on echoing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_upload_does_not_hold_up_the_other_streams() {
    let deaf = deaf_backend().await;
    let echo = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let routes = format!(
        "[[routes]]\npath = \"/deaf\"\nbackends = [\"ws://{deaf}\"]\nmax_message_size = \"64MiB\"\n\n\
         [[routes]]\npath = \"/echo\"\nbackends = [\"{}\"]\n",
        echo.url()
    );
    let gw = TestGateway::start(&format!("{TLS_LISTENER}\n{routes}")).await;
    let mut h2 = H2::connect(gw.addr()).await;
    let (_, mut stalled) = h2.websocket("/deaf", &[]).await.unwrap();
    let (_, mut flowing) = h2.websocket("/echo", &[]).await.unwrap();
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let progress = sent.clone();
    let upload = tokio::spawn(async move {
        let chunk = vec![1u8; 256 * 1024];
        for _ in 0..256 {
            stalled.send(Message::Binary(chunk.clone())).await.unwrap();
            progress.fetch_add(chunk.len() as u64, Ordering::SeqCst);
        }
    });
    // Stalled: no progress for 25 polls, half a second (the backend's
    // socket buffers, then the stream's window, are full).
    let mut last = (u64::MAX, 0);
    crate::support::ops::eventually("the upload to stall", || {
        let now = sent.load(Ordering::SeqCst);
        last = if now == last.0 {
            (now, last.1 + 1)
        } else {
            (now, 0)
        };
        let stalled = last.1 >= 25 && now > 0;
        async move { stalled }
    })
    .await;
    for i in 0..200 {
        let text = format!("still flowing {i}");
        flowing.send(Message::Text(text.clone())).await.unwrap();
        assert_eq!(next_message(&mut flowing).await, Some(Message::Text(text)));
    }
    assert!(
        !upload.is_finished(),
        "64 MiB cannot have gone into a backend that reads nothing"
    );
    assert_eq!(
        sent.load(Ordering::SeqCst),
        last.0,
        "the stalled stream stayed stalled"
    );
    upload.abort();
    drop((flowing, h2));
    gw.stop().await;
}
