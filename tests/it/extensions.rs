//! permessage-deflate end to end: the offer is forwarded, the backend's
//! answer relayed, and RSV1 frames pass through only once negotiated.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::backend::{raw_ws_backend, Answer, Behaviour, RawEvent, WsBackend};
use crate::support::client::{raw_request, raw_upgrade, upgrade_request, WAIT};
use crate::support::{one_route, TestGateway};

/// A masked, compressed-flagged (RSV1) binary frame with a 3-byte payload.
const RSV1_FRAME: [u8; 9] = [0xC2, 0x83, 1, 2, 3, 4, 0xAA, 0xBB, 0xCC];

async fn next_event(rx: &mut tokio::sync::mpsc::UnboundedReceiver<RawEvent>) -> RawEvent {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("backend event")
        .expect("backend alive")
}

#[tokio::test]
async fn deflate_offer_is_forwarded_and_rsv1_frames_pass_when_negotiated() {
    let (addr, mut events) =
        raw_ws_backend(Some("permessage-deflate; server_no_context_takeover")).await;
    let gw = TestGateway::start(&one_route(&[format!("ws://{addr}")], "")).await;
    let offer =
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits, x-unknown-ext";
    let (mut client, response) = raw_upgrade(gw.addr(), &[offer]).await;
    assert_eq!(
        response.header("sec-websocket-extensions").as_deref(),
        Some("permessage-deflate; server_no_context_takeover")
    );
    let RawEvent::Head(head) = next_event(&mut events).await else {
        panic!("head first")
    };
    let head = head.to_lowercase();
    assert!(
        head.contains("sec-websocket-extensions: permessage-deflate; client_max_window_bits\r\n"),
        "{head}"
    );
    assert!(
        !head.contains("x-unknown-ext"),
        "only deflate offers are forwarded: {head}"
    );

    client.write_all(&RSV1_FRAME).await.unwrap();
    let mut forwarded = Vec::new();
    while forwarded.len() < RSV1_FRAME.len() {
        let RawEvent::Bytes(bytes) = next_event(&mut events).await else {
            panic!("bytes")
        };
        forwarded.extend(bytes);
    }
    assert_eq!(
        forwarded, RSV1_FRAME,
        "the compressed frame reaches the backend byte for byte"
    );
    drop(client);
    gw.stop().await;
}

#[tokio::test]
async fn rsv1_without_negotiation_is_a_protocol_error() {
    // A backend that answers the gateway's 1002, so the client's comes at once.
    let backend = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let gw = TestGateway::start(&one_route(&[backend.url()], "")).await;
    let (mut client, response) = raw_upgrade(gw.addr(), &[]).await;
    assert_eq!(response.header("sec-websocket-extensions"), None);
    client.write_all(&RSV1_FRAME).await.unwrap();
    let mut close = [0u8; 4];
    tokio::time::timeout(WAIT, client.read_exact(&mut close))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(close[0], 0x88);
    assert_eq!(u16::from_be_bytes([close[2], close[3]]), 1002);
    gw.stop().await;
}

#[tokio::test]
async fn backend_accepting_an_unoffered_extension_is_502() {
    let (addr, _events) = raw_ws_backend(Some("permessage-deflate")).await;
    let gw = TestGateway::start(&one_route(&[format!("ws://{addr}")], "")).await;
    let res = raw_request(gw.addr(), &upgrade_request("/", &[])).await;
    assert_eq!(
        res.status, 502,
        "never a 101 for an extension nobody offered"
    );
    gw.stop().await;
}
