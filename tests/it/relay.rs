//! The relay end to end: real client → gateway → real backend.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use crate::support::backend::{Answer, Behaviour, WsBackend};
use crate::support::client::{
    close_code, connect, next_message, raw_upgrade, ws_request, Ws, WAIT,
};
use crate::support::ops::metric;
use crate::support::{one_route, TestGateway};

async fn setup(route_extra: &str) -> (TestGateway, WsBackend, Ws) {
    let backend = WsBackend::start(Answer::AcceptFirst, Behaviour::DieOnCommand).await;
    let gw = TestGateway::start(&one_route(&[backend.url()], route_extra)).await;
    let (ws, _) = connect(ws_request(&gw.ws_url("/"), &[])).await.unwrap();
    (gw, backend, ws)
}

#[tokio::test]
async fn text_and_binary_echo_byte_exact_in_order() {
    let (gw, _backend, mut ws) = setup("max_message_size = \"8MiB\"").await;
    let sizes = [0usize, 1, 125, 126, 65535, 65536, 1 << 20, 5 << 20];
    for (i, size) in sizes.iter().enumerate() {
        let payload: Vec<u8> = (0..*size).map(|b| (b * 7 + i) as u8).collect();
        ws.send(Message::Binary(payload.clone())).await.unwrap();
        ws.send(Message::Text(format!(
            "text {i} {}",
            "é".repeat(size % 1000)
        )))
        .await
        .unwrap();
        assert_eq!(
            next_message(&mut ws).await,
            Some(Message::Binary(payload)),
            "size {size}"
        );
        assert_eq!(
            next_message(&mut ws).await,
            Some(Message::Text(format!(
                "text {i} {}",
                "é".repeat(size % 1000)
            )))
        );
    }
    // Through the whole server, both legs plain TCP: the 1 MiB and 5 MiB
    // binary payloads went socket to socket (counted when scraped), the
    // texts and smaller payloads were copied, and every byte above matched.
    let spliced = metric(gw.admin, "wsgate_websocket_spliced_bytes_total", &[]).await;
    if cfg!(target_os = "linux") {
        assert!(spliced > 0.0, "large binary payloads are spliced");
        // At most every binary byte from 64 KiB up, both ways.
        let binary_large = 2.0 * (65535 + 65536 + (1u64 << 20) + (5u64 << 20)) as f64;
        assert!(spliced <= binary_large, "{spliced} > {binary_large}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn many_messages_in_flight_arrive_complete_and_in_order() {
    let (gw, _backend, ws) = setup("").await;
    let (mut sink, mut stream) = ws.split();
    let sender = tokio::spawn(async move {
        for i in 0..2000u32 {
            sink.send(Message::Text(i.to_string())).await.unwrap();
        }
        sink
    });
    for i in 0..2000u32 {
        let got = tokio::time::timeout(WAIT, stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(got, Message::Text(i.to_string()));
    }
    drop(sender.await.unwrap());
    gw.stop().await;
}

#[tokio::test]
async fn client_close_reaches_backend_with_code_and_reason() {
    let (gw, mut backend, mut ws) = setup("").await;
    let frame = CloseFrame {
        code: CloseCode::from(4000),
        reason: "bye now".into(),
    };
    ws.send(Message::Close(Some(frame))).await.unwrap();
    let seen = tokio::time::timeout(WAIT, backend.closes.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen, (4000, "bye now".to_string()));
    assert_eq!(
        close_code(next_message(&mut ws).await),
        Some(4000),
        "the backend's echoed close comes back"
    );
    gw.stop().await;
}

#[tokio::test]
async fn backend_close_reaches_client_with_code_and_reason() {
    let (gw, _backend, mut ws) = setup("").await;
    ws.send(Message::Text("bye".into())).await.unwrap();
    match next_message(&mut ws).await {
        Some(Message::Close(Some(frame))) => {
            assert_eq!(u16::from(frame.code), 4001);
            assert_eq!(frame.reason, "server bye");
        }
        other => panic!("expected a close, got {other:?}"),
    }
    gw.stop().await;
}

#[tokio::test]
async fn backend_dying_mid_session_gives_client_1011() {
    let (gw, _backend, mut ws) = setup("").await;
    ws.send(Message::Text("die".into())).await.unwrap();
    assert_eq!(close_code(next_message(&mut ws).await), Some(1011));
    gw.stop().await;
}

#[tokio::test]
async fn oversized_message_closes_both_sides_with_1009() {
    let (gw, mut backend, mut ws) = setup("max_message_size = \"64KiB\"").await;
    ws.send(Message::Binary(vec![1; 64 * 1024])).await.unwrap();
    assert_eq!(
        next_message(&mut ws).await,
        Some(Message::Binary(vec![1; 64 * 1024])),
        "the limit itself passes"
    );
    ws.send(Message::Binary(vec![2; 64 * 1024 + 1]))
        .await
        .unwrap();
    assert_eq!(close_code(next_message(&mut ws).await), Some(1009));
    let (code, _) = tokio::time::timeout(WAIT, backend.closes.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(code, 1009);
    gw.stop().await;
}

#[tokio::test]
async fn gateway_pings_the_client() {
    let (gw, _backend, mut ws) = setup("ping_interval = \"50ms\"").await;
    let ping = tokio::time::timeout(WAIT, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(matches!(ping, Message::Ping(_)), "{ping:?}");
    // tungstenite answers with a pong; the session stays usable.
    ws.send(Message::Text("still here".into())).await.unwrap();
    assert_eq!(
        next_message(&mut ws).await,
        Some(Message::Text("still here".into()))
    );
    gw.stop().await;
}

#[tokio::test]
async fn idle_session_is_closed_with_1001_on_both_legs() {
    let (gw, mut backend, mut ws) = setup("idle_timeout = \"200ms\"").await;
    assert_eq!(close_code(next_message(&mut ws).await), Some(1001));
    let (code, _) = tokio::time::timeout(WAIT, backend.closes.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(code, 1001);
    gw.stop().await;
}

#[tokio::test]
async fn client_that_never_answers_pings_is_dropped_and_backend_told() {
    let backend = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let mut backend = backend;
    let config = one_route(
        &[backend.url()],
        "ping_interval = \"50ms\"\npong_timeout = \"100ms\"",
    );
    let gw = TestGateway::start(&config).await;
    let (mut raw, _) = raw_upgrade(gw.addr(), &[]).await;
    // Never answer: the gateway must give up and tell the backend.
    let (code, _) = tokio::time::timeout(WAIT, backend.closes.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(code, 1001);
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(WAIT, raw.read_to_end(&mut rest))
        .await
        .expect("client connection closed");
    gw.stop().await;
}

#[tokio::test]
async fn unmasked_client_frame_is_a_protocol_error_for_both() {
    let mut backend = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let gw = TestGateway::start(&one_route(&[backend.url()], "")).await;
    let (mut raw, _) = raw_upgrade(gw.addr(), &[]).await;
    raw.write_all(&[0x81, 0x02, b'h', b'i']).await.unwrap();
    let mut frame = [0u8; 4];
    tokio::time::timeout(WAIT, raw.read_exact(&mut frame))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(frame[0], 0x88, "a close frame");
    assert_eq!(u16::from_be_bytes([frame[2], frame[3]]), 1002);
    let (code, _) = tokio::time::timeout(WAIT, backend.closes.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(code, 1002);
    gw.stop().await;
}

#[tokio::test]
async fn shutdown_closes_live_sessions_with_1001_both_ways() {
    let (gw, mut backend, mut ws) = setup("").await;
    ws.send(Message::Text("x".into())).await.unwrap();
    assert_eq!(next_message(&mut ws).await, Some(Message::Text("x".into())));
    let stopping = tokio::spawn(gw.stop());
    assert_eq!(close_code(next_message(&mut ws).await), Some(1001));
    let (code, _) = tokio::time::timeout(WAIT, backend.closes.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(code, 1001);
    drop(ws);
    tokio::time::timeout(WAIT + Duration::from_secs(5), stopping)
        .await
        .unwrap()
        .unwrap();
}
