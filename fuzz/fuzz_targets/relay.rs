//! The relay state machine on arbitrary byte streams from both sides.
//!
//! Input: byte 0 sets options (deflate negotiated, a small message limit,
//! whether each side ends with EOF or stays open), bytes 1–2 the length of
//! the client's stream, then the client's bytes, then the backend's. Each
//! stream is delivered in chunks whose sizes come from the data itself.
//!
//! Checked: `relay` always finishes (virtual time, so every timer fires
//! instantly and a hang is a failure), and everything the gateway writes is
//! a sequence of frames its own parser accepts, masked towards the backend
//! and unmasked towards the client (the last frame may be cut short when a
//! source ended mid-frame).
#![no_main]

use std::sync::Arc;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio_util::sync::CancellationToken;
use wsgate::ws::frame::parse_header;
use wsgate::ws::relay::{relay, RelayConfig, RelayStats};

/// Far beyond every relay timer below: reaching it means a hang.
const HANG: Duration = Duration::from_secs(3600);

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let flags = data[0];
    let split = usize::from(u16::from_be_bytes([data[1], data[2]])).min(data.len() - 3);
    let (client, backend) = data[3..].split_at(split);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(run(flags, client.to_vec(), backend.to_vec()));
});

async fn run(flags: u8, client_in: Vec<u8>, backend_in: Vec<u8>) {
    let cfg = RelayConfig {
        max_message_size: if flags & 2 != 0 { 64 } else { 1 << 20 },
        idle_timeout: Duration::from_secs(60),
        ping_interval: Duration::from_secs(if flags & 4 != 0 { 1 } else { 30 }),
        pong_timeout: Duration::from_secs(5),
        close_timeout: Duration::from_secs(5),
        drain_delay: Duration::ZERO,
        deflate: flags & 1 != 0,
        validate_utf8: flags & 32 == 0,
        client_messages: None,
        client_bytes_per_second: None,
    };
    let (client, client_peer) = tokio::io::duplex(4096);
    let (backend, backend_peer) = tokio::io::duplex(4096);
    let feed_client = peer(client_peer, client_in, flags & 8 != 0);
    let feed_backend = peer(backend_peer, backend_in, flags & 16 != 0);
    let relayed = relay(
        client,
        backend,
        cfg,
        Arc::new(RelayStats::default()),
        CancellationToken::new(),
    );
    let all = async { tokio::join!(relayed, feed_client, feed_backend) };
    let (_report, to_client, to_backend) = tokio::time::timeout(HANG, all)
        .await
        .expect("the relay and its peers finish");
    check_frames(&to_client, false, flags & 1 != 0);
    check_frames(&to_backend, true, flags & 1 != 0);
}

/// Plays one peer: writes `input` in data-sized chunks (then EOF unless
/// `stay_open`), and collects everything the gateway sends until it closes.
async fn peer(stream: DuplexStream, input: Vec<u8>, stay_open: bool) -> Vec<u8> {
    let (mut rd, mut wr) = tokio::io::split(stream);
    let write = async move {
        let mut rest = &input[..];
        while !rest.is_empty() {
            let n = (usize::from(rest[0]) + 1).min(rest.len());
            if wr.write_all(&rest[..n]).await.is_err() {
                return;
            }
            rest = &rest[n..];
            tokio::task::yield_now().await;
        }
        if !stay_open {
            let _ = wr.shutdown().await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    let read = async move {
        let mut out = Vec::new();
        let _ = rd.read_to_end(&mut out).await;
        out
    };
    tokio::select! {
        out = read => out,
        () = async { write.await; std::future::pending().await } => unreachable!(),
    }
}

/// The gateway's output parses frame by frame with the right masking.
fn check_frames(mut out: &[u8], to_backend: bool, deflate: bool) {
    while !out.is_empty() {
        let header = match parse_header(out, deflate) {
            Ok(Some(header)) => header,
            Ok(None) => return, // cut short: the source ended mid-frame
            Err(e) => panic!("gateway wrote an invalid frame: {e}"),
        };
        assert_eq!(header.mask.is_some(), to_backend, "masking direction");
        let total = header.header_len as u64 + header.payload_len;
        if (out.len() as u64) < total {
            return;
        }
        out = &out[total as usize..];
    }
}
