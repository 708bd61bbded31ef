//! A route's client limits through the whole gateway: the message rate
//! closes a flooding WebSocket 1008 near the expected count and answers a
//! fallback POST 429 while the session stays, the byte rate holds the
//! gateway's memory flat while a client floods, and `websockets_per_client`
//! caps one client's WebSockets on a route. (The exact counts under paused
//! time are unit tests in `src/ws/relay/tests.rs`.)

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;

use crate::support::backend::{Answer, Behaviour, WsBackend};
use crate::support::client::{connect, raw_upgrade, ws_request, WAIT};
use crate::support::fallback::{self, text, Session};
use crate::support::ops::{eventually, metric, Binary};
use crate::support::raw_ws::{client_frame, read_frame};
use crate::support::{one_route, TestGateway};

/// Opens a WebSocket through a gateway whose route allows `rate` messages
/// per second, writes `frames` one-byte text frames in one write, and
/// reads until the close: the echoes, the close code and reason, and the
/// most echoes the bucket allows (`rate` + `rate` × elapsed + 1, the +1 for
/// a refill landing mid-walk).
async fn flood(gw: &TestGateway, frames: usize, rate: usize) -> (usize, u16, String, usize) {
    let (mut stream, _) = raw_upgrade(gw.addr(), &[]).await;
    let started = Instant::now();
    let flood: Vec<u8> = (0..frames).flat_map(|_| client_frame(0x81, b"m")).collect();
    stream.write_all(&flood).await.unwrap();
    let mut echoed = 0;
    loop {
        let frame = tokio::time::timeout(WAIT, read_frame(&mut stream))
            .await
            .unwrap();
        match frame.expect("a close comes") {
            (0x1, _) => echoed += 1,
            (0x8, payload) => {
                let code = u16::from_be_bytes([payload[0], payload[1]]);
                let reason = String::from_utf8_lossy(&payload[2..]).into_owned();
                let most =
                    rate + (rate as f64 * started.elapsed().as_secs_f64()).ceil() as usize + 1;
                return (echoed, code, reason, most);
            }
            _ => {}
        }
    }
}

/// Waits for the rate limit's close on `/metrics`.
async fn counted_closed(gw: &TestGateway) {
    let labels = [
        ("limit", "client_messages_per_second"),
        ("action", "closed"),
    ];
    eventually("the close counted", || async {
        metric(gw.admin, "wsgate_client_rate_limited_total", &labels).await == 1.0
    })
    .await;
}

/// 200 tiny messages in one write against 20 per second with a burst of
/// 20: the burst is echoed, then the close is 1008. Tolerance: the bucket
/// refills by 20 per second while the flood is walked.
#[tokio::test]
async fn a_flooding_client_is_closed_1008_near_the_expected_count() {
    let backend = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let route = "client_messages_per_second = 20";
    let gw = TestGateway::start(&one_route(&[backend.url()], route)).await;
    let (echoed, code, reason, most) = flood(&gw, 200, 20).await;
    assert_eq!((code, reason.as_str()), (1008, "message rate exceeded"));
    assert!(
        (20..=most).contains(&echoed),
        "{echoed} echoed, expected 20..={most}"
    );
    counted_closed(&gw).await;
    let ended = [("end", "rate_limited")];
    assert_eq!(
        metric(gw.admin, "wsgate_websocket_sessions_ended_total", &ended).await,
        1.0
    );
}

/// The bad input over a real socket: 10,000 one-byte frames in one
/// write (70 kB, a few loopback segments). The walk stops at the bucket:
/// the rest is never forwarded, and the client still reads its 1008.
#[tokio::test]
async fn ten_thousand_tiny_frames_in_one_write_are_cut_at_the_rate_over_tcp() {
    let backend = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let route = "client_messages_per_second = 50";
    let gw = TestGateway::start(&one_route(&[backend.url()], route)).await;
    let (echoed, code, reason, most) = flood(&gw, 10_000, 50).await;
    assert_eq!((code, reason.as_str()), (1008, "message rate exceeded"));
    assert!(
        (50..=most).contains(&echoed),
        "{echoed} echoed, expected 50..={most}"
    );
    counted_closed(&gw).await;
}

#[tokio::test]
async fn fallback_posts_over_the_rate_get_429_and_the_session_stays() {
    let backend = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let route = "fallback = true\norigins = [\"*\"]\nclient_messages_per_second = 5";
    let gw = TestGateway::start(&one_route(&[backend.url()], route)).await;
    let session = Session::open(gw.addr(), "/chat", Some("https://app.example.com")).await;
    let burst: Vec<_> = (0..5).map(|i| text(&format!("m{i}"))).collect();
    assert_eq!(session.send(1, &burst).await.status, 200);
    let over = session.send(6, &[text("m5")]).await;
    assert_eq!(over.status, 429, "{}", over.body);
    assert_eq!(over.headers["retry-after"], "1");
    // Nothing of the refused batch was applied: the same seq goes through
    // once the bucket refills, and the session carried on meanwhile.
    eventually("the bucket to refill", || async {
        session.send(6, &[text("m5")]).await.status == 200
    })
    .await;
    let echoes = fallback::texts(&session.collect(0, 6).await);
    assert_eq!(echoes, ["m0", "m1", "m2", "m3", "m4", "m5"]);
    let labels = [
        ("limit", "client_messages_per_second"),
        ("action", "refused"),
    ];
    assert!(metric(gw.admin, "wsgate_client_rate_limited_total", &labels).await >= 1.0);
}

#[tokio::test]
async fn websockets_per_client_caps_a_clients_websockets_on_a_route() {
    let backend = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let gw = TestGateway::start(&one_route(&[backend.url()], "websockets_per_client = 2")).await;
    let url = gw.ws_url("/");
    let (first, _) = connect(ws_request(&url, &[])).await.unwrap();
    let (_second, _) = connect(ws_request(&url, &[])).await.unwrap();
    let third = connect(ws_request(&url, &[])).await;
    let refused = match third {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response,
        other => panic!("expected 429, got {other:?}"),
    };
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["retry-after"], "1");
    assert_eq!(
        backend.connection_count(),
        2,
        "the third never reached the backend"
    );
    let labels = [("limit", "websockets_per_client"), ("answer", "answered")];
    assert_eq!(
        metric(gw.admin, "wsgate_limit_refusals_total", &labels).await,
        1.0
    );
    let mut first = first;
    first.close(None).await.unwrap();
    while first.next().await.is_some() {}
    eventually("the slot to come back", || async {
        connect(ws_request(&url, &[])).await.is_ok()
    })
    .await;
}

/// The gateway process's resident memory, from /proc.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

/// A client writes 256 KiB messages as fast as it can for two seconds
/// against `client_bytes_per_second = "64KiB"`. The gateway reads no
/// faster than the rate (what it relayed stays under rate × time + the
/// burst + one buffer), so what the client pushed beyond that waits in
/// the kernel's socket buffers, not in the gateway: its resident memory
/// grows by less than 16 MiB (a generous bound; measured growth is about
/// zero) while the client pushes several MiB.
#[tokio::test]
async fn backpressure_holds_the_gateways_memory_flat_while_a_client_floods() {
    const RATE: f64 = 64.0 * 1024.0;
    let backend = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let url = backend.url();
    let gw = Binary::start(|port, admin| {
        format!(
            "[[listeners]]\nbind = \"127.0.0.1:{port}\"\n[admin]\nbind = \"127.0.0.1:{admin}\"\n\
             [[routes]]\npath = \"/\"\nbackends = [\"{url}\"]\nmax_message_size = \"1MiB\"\n\
             client_bytes_per_second = \"64KiB\"\n"
        )
    })
    .await;
    let (ws, _) = connect(ws_request(&format!("ws://{}/", gw.addr), &[]))
        .await
        .unwrap();
    let (mut sink, mut stream) = ws.split();
    let echoed = tokio::spawn(async move {
        let mut bytes = 0usize;
        while let Some(Ok(message)) = stream.next().await {
            bytes += message.len();
        }
        bytes
    });
    let before = rss_bytes(gw.pid());
    let started = Instant::now();
    let message = vec![7u8; 256 * 1024];
    let mut pushed = 0usize;
    let flood = async {
        loop {
            sink.send(Message::Binary(message.clone())).await.unwrap();
            pushed += message.len();
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), flood).await;
    let elapsed = started.elapsed().as_secs_f64();
    let after = rss_bytes(gw.pid());
    let relayed_bound = RATE * (1.0 + elapsed) + 2.0 * 16.0 * 1024.0;
    drop(sink);
    let growth = after.saturating_sub(before);
    assert!(
        growth < 16 << 20,
        "gateway RSS grew by {growth} bytes while the client pushed {pushed}"
    );
    assert!(pushed >= 512 * 1024, "the client did flood: {pushed} bytes");
    let relayed = metric(
        gw.admin,
        "wsgate_websocket_bytes_total",
        &[("direction", "client_to_backend")],
    )
    .await;
    println!("pushed {pushed} B, relayed {relayed} B in {elapsed:.2} s, gateway RSS {before} -> {after} B");
    assert!(
        relayed <= relayed_bound,
        "{relayed} bytes relayed in {elapsed:.2}s, bound {relayed_bound}"
    );
    echoed.abort();
}
