//! Relay tests over real TCP loopback, where large binary payloads are
//! spliced (Linux): byte-exact both ways, text never spliced and still
//! checked, the limits still checked at the header, a destination that dies
//! mid-splice handled as on the copy path.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::ws::frame::OpCode;
use crate::ws::test_support::{client_frame, encode, read_close, read_frame, relay_config};

fn cfg() -> RelayConfig {
    relay_config(8 << 20)
}

/// Both ends of a loopback TCP connection.
async fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (connected, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    (connected.unwrap(), accepted.unwrap().0)
}

/// The peers' sockets and the running relay (client leg as hyper hands it
/// over, unwrapped to `Leg::Raw`).
struct Harness {
    client: TcpStream,
    backend: TcpStream,
    stats: Arc<RelayStats>,
    relay: JoinHandle<RelayReport>,
}

async fn start(cfg: RelayConfig) -> Harness {
    let (client, gw_client) = tcp_pair().await;
    let (backend, gw_backend) = tcp_pair().await;
    let stats = Arc::new(RelayStats::default());
    let relay = tokio::spawn(relay(
        Leg::Raw(gw_client),
        gw_backend,
        cfg,
        stats.clone(),
        CancellationToken::new(),
    ));
    Harness {
        client,
        backend,
        stats,
        relay,
    }
}

/// `len` bytes that show any reordering or loss.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8) ^ ((i >> 9) as u8).wrapping_mul(31) ^ seed)
        .collect()
}

fn spliced(stats: &RelayStats) -> u64 {
    stats.spliced_bytes.load(Ordering::Relaxed)
}

#[tokio::test]
async fn large_binary_messages_are_spliced_both_ways_byte_exact() {
    let h = start(cfg()).await;
    let mut client = WebSocketStream::from_raw_socket(h.client, Role::Client, None).await;
    let mut backend = WebSocketStream::from_raw_socket(h.backend, Role::Server, None).await;
    let mut sent = 0u64;
    for (i, len) in [1usize << 20, 4 << 20].into_iter().enumerate() {
        let up = pattern(len, i as u8);
        let before = spliced(&h.stats);
        let (send, got) = tokio::join!(client.send(Message::binary(up.clone())), backend.next());
        send.unwrap();
        assert!(got.unwrap().unwrap() == Message::binary(up), "{len} up");
        let after_up = spliced(&h.stats);
        assert!(
            after_up > before,
            "client → backend spliced nothing at {len}"
        );

        let down = pattern(len, 0x80 | i as u8);
        let (send, got) = tokio::join!(backend.send(Message::binary(down.clone())), client.next());
        send.unwrap();
        assert!(got.unwrap().unwrap() == Message::binary(down), "{len} down");
        assert!(
            spliced(&h.stats) > after_up,
            "backend → client spliced nothing at {len}"
        );
        sent += len as u64;
    }
    let stats = &h.stats;
    assert_eq!(stats.client_to_backend_bytes.load(Ordering::Relaxed), sent);
    assert_eq!(stats.backend_to_client_bytes.load(Ordering::Relaxed), sent);
    assert_eq!(stats.client_to_backend_messages.load(Ordering::Relaxed), 2);
    assert_eq!(stats.backend_to_client_messages.load(Ordering::Relaxed), 2);

    // A small message after the spliced ones still goes through.
    client.send(Message::text("after")).await.unwrap();
    assert_eq!(
        backend.next().await.unwrap().unwrap(),
        Message::text("after")
    );
    client.close(None).await.unwrap();
    while let Some(Ok(_)) = backend.next().await {}
    while let Some(Ok(_)) = client.next().await {}
    let report = h.relay.await.unwrap();
    assert_eq!(
        report.end,
        RelayEnd::CloseHandshake {
            initiator: Side::Client
        }
    );
}

#[tokio::test]
async fn large_text_is_not_spliced_and_still_checked() {
    let h = start(cfg()).await;
    let mut client = WebSocketStream::from_raw_socket(h.client, Role::Client, None).await;
    let mut backend = WebSocketStream::from_raw_socket(h.backend, Role::Server, None).await;
    let text = "é".repeat(1 << 19); // 1 MiB of two-byte code points
    let (send, got) = tokio::join!(client.send(Message::text(text.clone())), backend.next());
    send.unwrap();
    assert!(got.unwrap().unwrap() == Message::text(text));
    let (send, got) = tokio::join!(backend.send(Message::binary(vec![7; 100])), client.next());
    send.unwrap();
    assert_eq!(got.unwrap().unwrap(), Message::binary(vec![7; 100]));
    assert_eq!(spliced(&h.stats), 0, "a text message was spliced");
    drop((client, backend));
    h.relay.await.unwrap();

    // 1 MiB of text with one invalid byte past its first buffer: 1007.
    let h = start(cfg()).await;
    let (mut client, mut backend) = (h.client, h.backend);
    let mut payload = vec![b'a'; 1 << 20];
    payload[600 * 1024] = 0xFF;
    let frame = client_frame(0x81, &payload);
    let writer = tokio::spawn(async move {
        client.write_all(&frame).await.unwrap();
        client
    });
    // The backend answers the gateway's close; then the client gets its own.
    let answer = tokio::spawn(async move {
        let close = read_close(&mut backend).await;
        let reply = encode(0x88, &1007u16.to_be_bytes(), None);
        backend.write_all(&reply).await.unwrap();
        close
    });
    let mut client = writer.await.unwrap();
    assert_eq!(
        read_close(&mut client).await.map(|c| c.0),
        Some(1007),
        "the client gets 1007"
    );
    assert_eq!(answer.await.unwrap().map(|c| c.0), Some(1007));
    drop(client);
    let report = h.relay.await.unwrap();
    assert_eq!(report.end, RelayEnd::InvalidUtf8 { side: Side::Client });
    assert_eq!(spliced(&h.stats), 0, "a checked text frame was spliced");
}

#[tokio::test]
async fn a_large_message_over_the_limit_is_refused_before_forwarding() {
    let h = start(RelayConfig {
        max_message_size: 1 << 20,
        ..cfg()
    })
    .await;
    let (mut client, mut backend) = (h.client, h.backend);
    let frame = client_frame(0x82, &pattern((1 << 20) + 1, 3));
    let writer = tokio::spawn(async move {
        // The relay stops reading; the write may not complete.
        let _ = client.write_all(&frame).await;
        client
    });
    // The first thing the backend gets is the close.
    let (header, payload, _) = read_frame(&mut backend).await.unwrap();
    assert_eq!(header.opcode, OpCode::Close);
    assert_eq!(payload[..2], 1009u16.to_be_bytes());
    drop(backend);
    let report = h.relay.await.unwrap();
    assert_eq!(report.end, RelayEnd::MessageTooBig { side: Side::Client });
    assert_eq!(spliced(&h.stats), 0);
    drop(writer);
}

#[tokio::test]
async fn a_backend_that_dies_mid_splice_gives_the_client_1011() {
    let h = start(cfg()).await;
    let (mut client, mut backend) = (h.client, h.backend);
    // The header of a 4 MiB binary frame and its first 2 MiB.
    let frame = client_frame(0x82, &pattern(4 << 20, 5));
    let writer = tokio::spawn(async move {
        let _ = client.write_all(&frame[..(2 << 20)]).await;
        client
    });
    let mut got = vec![0; 256 * 1024];
    backend.read_exact(&mut got).await.unwrap();
    assert!(spliced(&h.stats) > 0, "the payload was not being spliced");
    // Unread bytes: the close is a reset, the next splice fails.
    drop(backend);
    let mut client = writer.await.unwrap();
    assert_eq!(
        read_close(&mut client).await,
        Some((1011, "backend went away".into()))
    );
    drop(client);
    let report = h.relay.await.unwrap();
    assert_eq!(report.end, RelayEnd::BackendGone);
    assert_eq!(report.sent_to_client, Some(1011));
}

#[tokio::test]
async fn a_client_that_ends_mid_splice_is_gone() {
    let h = start(cfg()).await;
    let (mut client, mut backend) = (h.client, h.backend);
    let frame = client_frame(0x82, &pattern(4 << 20, 6));
    let drain = tokio::spawn(async move {
        let mut got = Vec::new();
        let _ = backend.read_to_end(&mut got).await;
        got
    });
    client.write_all(&frame[..(1 << 20)]).await.unwrap();
    drop(client);
    let got = drain.await.unwrap();
    // Everything the client sent went through, then the backend's stream
    // ended: no close can follow half a frame.
    assert_eq!(got, frame[..(1 << 20)]);
    assert!(spliced(&h.stats) > 0);
    let report = h.relay.await.unwrap();
    assert_eq!(report.end, RelayEnd::ClientGone);
}
