//! Hostile input, end to end on real sockets: smuggling, upgrade abuse,
//! header injection, frame-level attacks from either side, floods and
//! permessage-deflate bombs (the limits are in `tests/it/limits.rs`). Each case checks the answer, that the
//! backend was protected, and that nothing is left behind (no relay task,
//! no connection slot).

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::backend::{
    close_code, frames_until_close, http_echo_backend, raw_ws_backend_duplex, switching_backend,
    Answer, Behaviour, RawEvent, WsBackend,
};
use crate::support::client::{raw_request, read_response, upgrade_request, WAIT};
use crate::support::raw_ws::{
    client_frame, deflate_bomb, frame, misbehaving_backend, raw_upgrade, read_close, read_frame,
};
use crate::support::{one_route, TestGateway};

/// A gateway in front of an HTTP echo backend that reports what it saw.
async fn http_gateway() -> (TestGateway, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let (addr, count) = http_echo_backend().await;
    let gw = TestGateway::start(&one_route(&[format!("http://{addr}")], "")).await;
    (gw, count)
}

/// Sends raw bytes, then reads everything until the gateway closes.
async fn exchange(addr: std::net::SocketAddr, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut out))
        .await
        .expect("the gateway answers and closes");
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn request_smuggling_never_reaches_the_backend_as_a_second_request() {
    let (gw, count) = http_gateway().await;
    let smuggled = "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";
    // Refused outright (400): an unknown coding next to Content-Length, two
    // Content-Lengths, obsolete line folding.
    let refused = [
        format!("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\nContent-Length: 3\r\n\r\nabc{smuggled}"),
        format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 40\r\n\r\nabc{smuggled}"),
        format!("GET / HTTP/1.1\r\nHost: a\r\nX-Folded: a\r\n b\r\n\r\n{smuggled}"),
    ];
    for case in &refused {
        let answer = exchange(gw.addr(), case.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 400 "), "{case:?} → {answer}");
        assert!(!answer.contains("/smuggled"), "{case:?} → {answer}");
    }
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 0);
    // CL.TE: chunked wins (RFC 9112 §6.3), Content-Length is dropped, the
    // backend gets one request framed by the gateway, and the connection is
    // closed after the answer, so the trailing bytes are never parsed.
    let cl_te = format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}");
    let answer = exchange(gw.addr(), cl_te.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");
    assert!(
        !answer.contains("/smuggled")
            && !answer.to_ascii_lowercase().contains("\ncontent-length: 6")
    );
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1);
    gw.wait_quiet().await;
    gw.stop().await;
}

#[tokio::test]
async fn conflicting_framing_is_400_without_a_backend() {
    let (gw, count) = http_gateway().await;
    let cases = [
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 40\r\n\r\nabc",
        "GET / HTTP/1.1\r\nHost: a\r\nX-Folded: a\r\n b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX-Bare: a\rb\r\n\r\n",
    ];
    for case in cases {
        let response = raw_request(gw.addr(), case).await;
        assert_eq!(response.status, 400, "{case:?}");
    }
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 0);
    gw.stop().await;
}

#[tokio::test]
async fn h2c_upgrade_attempts_are_400_and_never_reach_the_backend() {
    let (gw, count) = http_gateway().await;
    let settings = "HTTP2-Settings: AAMAAABkAAQAAP__";
    let attempts = [
        format!("GET /h2c HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n{settings}\r\n\r\n"),
        format!("GET /h2c HTTP/1.1\r\nHost: a\r\n{settings}\r\n\r\n"),
        "POST /h2c HTTP/1.1\r\nHost: a\r\nUpgrade: H2C\r\nConnection: upgrade\r\nContent-Length: 2\r\n\r\nhi".to_string(),
        upgrade_request("/", &[]).replace("Upgrade: websocket", "Upgrade: websocket, h2c"),
    ];
    for attempt in &attempts {
        let response = raw_request(gw.addr(), attempt).await;
        assert_eq!(response.status, 400, "{attempt:?}");
        assert!(
            response.body.contains("h2c upgrade refused"),
            "{}",
            response.body
        );
    }
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 0);
    gw.wait_quiet().await;
    gw.stop().await;
}

#[tokio::test]
async fn a_backend_switching_protocols_on_a_plain_request_is_502() {
    let (addr, count) = switching_backend().await;
    let gw = TestGateway::start(&one_route(&[format!("http://{addr}")], "")).await;
    let request = b"GET /plain HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    let answer = exchange(gw.addr(), request).await;
    assert!(answer.starts_with("HTTP/1.1 502 "), "{answer}");
    assert!(!answer.contains("TUNNELLED"), "{answer}");
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1);
    gw.wait_quiet().await;
    gw.stop().await;
}

#[tokio::test]
async fn upgrade_abuse_is_400_and_the_backend_is_never_dialed() {
    let backend = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let gw = TestGateway::start(&one_route(&[backend.url()], "")).await;
    let post = upgrade_request("/", &[]).replacen("GET", "POST", 1);
    let with_body = upgrade_request("/", &["Content-Length: 5"]) + "hello";
    let chunked = upgrade_request("/", &["Transfer-Encoding: chunked"]) + "0\r\n\r\n";
    let two_keys = upgrade_request("/", &["Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA=="]);
    let long_key = upgrade_request("/", &[]).replace(
        "dGhlIHNhbXBsZSBub25jZQ==",
        "dGhlIHNhbXBsZSBub25jZXRoZSBzYW1wbGUgbm9uY2U=",
    );
    for request in [post, with_body, chunked, two_keys, long_key] {
        let response = raw_request(gw.addr(), &request).await;
        assert_eq!(response.status, 400, "{request:?}");
    }
    assert_eq!(backend.connection_count(), 0);
    gw.wait_quiet().await;
    gw.stop().await;
}

#[tokio::test]
async fn nothing_is_injected_through_subprotocol_or_origin_values() {
    let backend = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let route = "subprotocols = [\"chat.v1\"]\norigins = [\"https://chat.example.com\"]";
    let gw = TestGateway::start(&one_route(&[backend.url()], route)).await;
    let origin = "Origin: https://chat.example.com";
    let bare_cr = upgrade_request(
        "/",
        &[origin, "Sec-WebSocket-Protocol: chat.v1\rX-Injected: 1"],
    );
    assert_eq!(raw_request(gw.addr(), &bare_cr).await.status, 400);
    let comma_origin = upgrade_request(
        "/",
        &["Origin: https://chat.example.com, https://evil.example"],
    );
    assert_eq!(raw_request(gw.addr(), &comma_origin).await.status, 403);
    assert_eq!(backend.connection_count(), 0);
    let smuggled = upgrade_request("/", &[origin, "Sec-WebSocket-Protocol: evil,chat.v1, x;y"]);
    let mut stream = TcpStream::connect(gw.addr()).await.unwrap();
    stream.write_all(smuggled.as_bytes()).await.unwrap();
    let response = read_response(&mut stream).await;
    assert_eq!(response.status, 101);
    assert_eq!(
        response.header("sec-websocket-protocol").as_deref(),
        Some("chat.v1")
    );
    let (_, headers) = backend.request(0);
    let offered: Vec<_> = headers.get_all("sec-websocket-protocol").iter().collect();
    assert_eq!(offered, ["chat.v1"]);
    assert!(headers.get("x-injected").is_none());
    drop(stream);
    gw.wait_quiet().await;
    gw.stop().await;
}

/// A gateway in front of an echo backend, and a raw client already upgraded.
async fn relay_setup(route_extra: &str) -> (TestGateway, WsBackend, TcpStream) {
    let backend = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let gw = TestGateway::start(&one_route(&[backend.url()], route_extra)).await;
    let client = raw_upgrade(gw.addr()).await;
    (gw, backend, client)
}

#[tokio::test]
async fn unmasked_client_frames_get_1002() {
    let (gw, mut backend, mut client) = relay_setup("").await;
    client
        .write_all(&frame(0x81, b"unmasked", None))
        .await
        .unwrap();
    assert_eq!(read_close(&mut client).await, Some(1002));
    let to_backend = tokio::time::timeout(WAIT, backend.closes.recv())
        .await
        .unwrap();
    assert_eq!(to_backend.map(|c| c.0), Some(1002));
    drop(client);
    gw.wait_quiet().await;
    gw.stop().await;
}

#[tokio::test]
async fn huge_frame_lengths_close_without_allocating() {
    // 2^63 (MSB set): a protocol error. 2^62: valid, but over max_message_size.
    for (len, code) in [(1u64 << 63, 1002), ((1u64 << 62), 1009)] {
        let (addr, mut events, backend) = raw_ws_backend_duplex(None).await;
        let gw = TestGateway::start(&one_route(&[format!("ws://{addr}")], "")).await;
        let mut client = raw_upgrade(gw.addr()).await;
        let mut header = vec![0x82, 0xFF];
        header.extend_from_slice(&len.to_be_bytes());
        header.extend_from_slice(&[1, 2, 3, 4]);
        client.write_all(&header).await.unwrap();
        // The backend's first frame is the close: no part of the frame.
        // Its answer lets the client's close through (the side at fault
        // hears last, as it would with no gateway in between).
        let frames = frames_until_close(&mut events).await;
        assert_eq!(frames.len(), 1, "length {len}: {frames:?}");
        assert_eq!(close_code(&frames[0].1), code, "length {len}");
        backend
            .send(frame(0x88, &code.to_be_bytes(), None))
            .unwrap();
        assert_eq!(read_close(&mut client).await, Some(code), "length {len}");
        drop(client);
        gw.wait_quiet().await;
        gw.stop().await;
    }
}

#[tokio::test]
async fn a_ping_flood_is_relayed_under_backpressure_and_the_session_stays_usable() {
    const PINGS: usize = 100_000;
    let (gw, _backend, client) = relay_setup("").await;
    let (mut rd, mut wr) = client.into_split();
    let ping = client_frame(0x89, b"flood");
    let flood: Vec<u8> = ping
        .iter()
        .copied()
        .cycle()
        .take(ping.len() * PINGS)
        .collect();
    let writer = tokio::spawn(async move {
        wr.write_all(&flood).await.unwrap();
        wr.write_all(&client_frame(0x81, b"still here"))
            .await
            .unwrap();
        wr
    });
    let mut pongs = 0;
    let echoed = loop {
        let (opcode, payload) = tokio::time::timeout(WAIT, read_owned(&mut rd))
            .await
            .expect("the gateway keeps relaying")
            .expect("a frame");
        match opcode {
            0xA => pongs += 1,
            0x1 => break payload,
            other => panic!("unexpected opcode {other}"),
        }
    };
    assert_eq!(echoed, b"still here");
    assert!(pongs <= PINGS);
    let mut wr = writer.await.unwrap();
    wr.write_all(&client_frame(0x88, &1000u16.to_be_bytes()))
        .await
        .unwrap();
    drop((rd, wr));
    gw.wait_quiet().await;
    gw.stop().await;
}

/// [`read_frame`] on the read half of a split stream.
async fn read_owned(rd: &mut tokio::net::tcp::OwnedReadHalf) -> Option<(u8, Vec<u8>)> {
    let mut head = [0u8; 2];
    rd.read_exact(&mut head).await.ok()?;
    let len = match head[1] & 0x7f {
        126 => usize::from(rd.read_u16().await.ok()?),
        127 => usize::try_from(rd.read_u64().await.ok()?).ok()?,
        n => usize::from(n),
    };
    let mut payload = vec![0u8; len];
    rd.read_exact(&mut payload).await.ok()?;
    Some((head[0] & 0x0f, payload))
}

#[tokio::test]
async fn a_backend_that_masks_or_sends_garbage_gets_the_client_a_1002() {
    let masked = client_frame(0x81, b"masked from a server");
    let garbage = b"HTTP/1.1 200 OK\r\n\r\nnot a frame".to_vec();
    for after in [masked, garbage] {
        let (addr, mut received) = misbehaving_backend(after).await;
        let gw = TestGateway::start(&one_route(&[format!("ws://{addr}")], "")).await;
        let mut client = raw_upgrade(gw.addr()).await;
        // The very first frame is the close: nothing of the backend's
        // bytes was forwarded ahead of it.
        let first = tokio::time::timeout(WAIT, read_frame(&mut client))
            .await
            .expect("a frame in time")
            .expect("a frame before EOF");
        assert_eq!(first.0, 0x8, "first frame: {first:?}");
        assert_eq!(close_code(&first.1), 1002);
        let reply = client_frame(0x88, &1002u16.to_be_bytes());
        client.write_all(&reply).await.unwrap();
        let backend_got = tokio::time::timeout(WAIT, received.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            backend_got.first().map(|b| b & 0x0f),
            Some(0x8),
            "backend told too"
        );
        drop(client);
        gw.wait_quiet().await;
        gw.stop().await;
    }
}

#[tokio::test]
async fn a_client_vanishing_mid_frame_leaves_nothing_behind() {
    let (gw, mut backend, mut client) = relay_setup("").await;
    let frame = client_frame(0x82, &[7; 1000]);
    client.write_all(&frame[..500]).await.unwrap();
    drop(client);
    tokio::time::timeout(WAIT, backend.ended.recv())
        .await
        .expect("backend session ends");
    gw.wait_quiet().await;
    assert_eq!(gw.gateway.limits.tracked_addresses(), 0);
    gw.stop().await;
}

/// The route limit of the deflate tests, and a `permessage-deflate` offer.
const DEFLATE_LIMIT: &str = "max_message_size = \"4KiB\"";
const DEFLATE_OFFER: &str = "Sec-WebSocket-Extensions: permessage-deflate";

/// A gateway (4 KiB messages) whose byte-level backend accepts deflate,
/// and a raw client that negotiated it through the gateway.
async fn deflate_setup() -> (
    TestGateway,
    tokio::sync::mpsc::UnboundedReceiver<RawEvent>,
    tokio::sync::mpsc::UnboundedSender<Vec<u8>>,
    TcpStream,
) {
    let (addr, events, backend) = raw_ws_backend_duplex(Some("permessage-deflate")).await;
    let gw = TestGateway::start(&one_route(&[format!("ws://{addr}")], DEFLATE_LIMIT)).await;
    let (client, response) = crate::support::client::raw_upgrade(gw.addr(), &[DEFLATE_OFFER]).await;
    let agreed = response.header("sec-websocket-extensions");
    assert_eq!(agreed.as_deref(), Some("permessage-deflate"));
    (gw, events, backend, client)
}

#[tokio::test]
async fn a_deflate_bomb_over_the_limit_on_the_wire_is_1009_and_never_forwarded() {
    let (gw, mut events, backend, mut client) = deflate_setup().await;
    let bomb = deflate_bomb(16_000); // 26 KB on the wire, 4 MB inflated
    assert!(bomb.len() > 4096);
    let _ = client.write_all(&client_frame(0xC2, &bomb)).await;
    let frames = frames_until_close(&mut events).await;
    assert_eq!(frames.len(), 1, "only the close reaches the backend");
    assert_eq!(close_code(&frames[0].1), 1009);
    backend
        .send(frame(0x88, &1009u16.to_be_bytes(), None))
        .unwrap();
    assert_eq!(read_close(&mut client).await, Some(1009));
    drop(client);
    gw.wait_quiet().await;
    gw.stop().await;
}

#[tokio::test]
async fn a_small_deflate_frame_inflating_past_the_limit_passes_byte_for_byte() {
    // The limit applies to what crosses the gateway: the compressed bytes.
    let (gw, mut events, backend, mut client) = deflate_setup().await;
    let bomb = deflate_bomb(1_000); // 1.6 KB on the wire, 258 KB inflated
    assert!(bomb.len() < 4096);
    let sent = client_frame(0xC2, &bomb);
    client.write_all(&sent).await.unwrap();
    let mut forwarded = Vec::new();
    while forwarded.len() < sent.len() {
        match tokio::time::timeout(WAIT, events.recv()).await.unwrap() {
            Some(RawEvent::Bytes(bytes)) => forwarded.extend(bytes),
            Some(RawEvent::Head(_)) => {}
            None => panic!("backend gone after {} bytes", forwarded.len()),
        }
    }
    assert!(forwarded == sent, "the frame reaches the backend as sent");
    // The backend ends the session; the client's reply completes it.
    backend
        .send(frame(0x88, &1000u16.to_be_bytes(), None))
        .unwrap();
    assert_eq!(read_close(&mut client).await, Some(1000));
    let reply = client_frame(0x88, &1000u16.to_be_bytes());
    client.write_all(&reply).await.unwrap();
    drop(client);
    gw.wait_quiet().await;
    gw.stop().await;
}
