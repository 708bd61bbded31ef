use std::time::Duration;

use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt};

use super::*;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A watched stream whose far end the test writes to and reads from.
fn watched() -> (
    Watched<tokio::io::DuplexStream>,
    tokio::io::DuplexStream,
    Arc<Seen>,
    Arc<Metrics>,
) {
    let (ours, theirs) = duplex(1 << 20);
    let (seen, metrics) = (Arc::new(Seen::default()), Arc::new(Metrics::default()));
    (
        Watched::new(
            ours,
            "127.0.0.1:1".parse().unwrap(),
            seen.clone(),
            metrics.clone(),
        ),
        theirs,
        seen,
        metrics,
    )
}

/// Reads until `want` bytes passed or the watch cut the stream.
async fn pump(watched: &mut Watched<tokio::io::DuplexStream>, want: usize) -> io::Result<usize> {
    let mut buf = vec![0; 64 * 1024];
    let mut total = 0;
    while total < want {
        let n = watched.read(&mut buf).await?;
        assert!(n > 0, "early EOF");
        total += n;
    }
    Ok(total)
}

#[tokio::test]
async fn the_settings_ack_is_seen_and_bytes_pass_unchanged() {
    let (mut watched, mut peer, seen, _) = watched();
    let mut sent = PREFACE.to_vec();
    sent.extend(frame(kind::SETTINGS, 0, 0, &[]));
    sent.extend(frame(kind::HEADERS, 0x4, 1, &[0x82, 0x87]));
    peer.write_all(&sent).await.unwrap();
    let mut got = vec![0; sent.len()];
    watched.read_exact(&mut got).await.unwrap();
    assert_eq!(got, sent);
    assert!(!seen.settings_acked_before(1));
    assert_eq!(seen.streams(), 1);
    peer.write_all(&frame(kind::SETTINGS, ACK, 0, &[]))
        .await
        .unwrap();
    pump(&mut watched, 9).await.unwrap();
    assert!(
        !seen.settings_acked_before(1),
        "stream 1 came before the ACK"
    );
    assert!(seen.settings_acked_before(2));
}

#[tokio::test]
async fn a_request_and_the_ack_behind_it_in_one_read_still_predate_it() {
    let (mut watched, mut peer, seen, _) = watched();
    let mut sent = PREFACE.to_vec();
    sent.extend(frame(kind::SETTINGS, 0, 0, &[]));
    sent.extend(frame(kind::HEADERS, 0x4, 1, &[0x82, 0x87]));
    sent.extend(frame(kind::SETTINGS, ACK, 0, &[]));
    sent.extend(frame(kind::HEADERS, 0x4, 3, &[0x82, 0x87]));
    sent.extend(frame(kind::SETTINGS, ACK, 0, &[]));
    peer.write_all(&sent).await.unwrap();
    pump(&mut watched, sent.len()).await.unwrap();
    assert_eq!(seen.streams(), 2);
    assert!(!seen.settings_acked_before(1), "sent before the first ACK");
    assert!(seen.settings_acked_before(2), "a later ACK moves nothing");
}

#[tokio::test(start_paused = true)]
async fn a_ping_flood_cuts_the_connection_and_is_named() {
    let (mut watched, mut peer, seen, _) = watched();
    let mut sent = PREFACE.to_vec();
    for _ in 0..PING_BUDGET.burst {
        sent.extend(frame(kind::PING, 0, 0, &[0; 8]));
    }
    peer.write_all(&sent).await.unwrap();
    pump(&mut watched, sent.len()).await.unwrap();
    assert_eq!(seen.flood(), None, "the burst is allowed");
    tokio::time::advance(Duration::from_secs(1)).await;
    let more: Vec<u8> = (0..PING_BUDGET.per_sec + 1)
        .flat_map(|_| frame(kind::PING, 0, 0, &[0; 8]))
        .collect();
    peer.write_all(&more).await.unwrap();
    let err = pump(&mut watched, more.len()).await.unwrap_err();
    assert!(err.to_string().contains("ping_flood"), "{err}");
    assert_eq!(seen.flood(), Some(Flood::Ping));
}

#[tokio::test(start_paused = true)]
async fn ping_answers_do_not_count_and_settings_and_resets_have_budgets() {
    let (mut watched, mut peer, seen, metrics) = watched();
    let mut sent = PREFACE.to_vec();
    for _ in 0..1000 {
        sent.extend(frame(kind::PING, ACK, 0, &[0; 8]));
    }
    peer.write_all(&sent).await.unwrap();
    pump(&mut watched, sent.len()).await.unwrap();
    let resets: Vec<u8> = (0..=RESET_BUDGET.burst)
        .flat_map(|i| frame(kind::RST_STREAM, 0, 2 * i + 1, &[0, 0, 0, 8]))
        .collect();
    peer.write_all(&resets).await.unwrap();
    assert!(pump(&mut watched, resets.len()).await.is_err());
    assert_eq!(seen.flood(), Some(Flood::Reset));
    let text = metrics.encode();
    let line = format!(
        "wsgate_http2_stream_resets_total{{side=\"client\",code=\"cancel\"}} {}",
        RESET_BUDGET.burst + 1
    );
    assert!(text.contains(&line), "{text}");

    let (mut watched, mut peer, seen, _) = super::tests::watched();
    let settings: Vec<u8> = PREFACE
        .iter()
        .copied()
        .chain((0..=SETTINGS_BUDGET.burst).flat_map(|_| frame(kind::SETTINGS, 0, 0, &[])))
        .collect();
    peer.write_all(&settings).await.unwrap();
    assert!(pump(&mut watched, settings.len()).await.is_err());
    assert_eq!(seen.flood(), Some(Flood::Settings));
}

#[tokio::test]
async fn what_the_gateway_writes_is_scanned_for_resets_and_goaway() {
    let (mut watched, mut peer, seen, metrics) = watched();
    let mut goaway = vec![0, 0, 0, 1, 0, 0, 0, 0x0b];
    goaway.extend_from_slice(b"too_many_resets");
    let mut out = frame(kind::RST_STREAM, 0, 1, &[0, 0, 0, 7]);
    out.extend(frame(kind::GOAWAY, 0, 0, &goaway));
    for piece in out.chunks(11) {
        watched.write_all(piece).await.unwrap();
    }
    let mut echoed = vec![0; out.len()];
    peer.read_exact(&mut echoed).await.unwrap();
    assert_eq!(echoed, out);
    let got = seen.goaway().unwrap();
    assert_eq!(
        (got.code, got.debug.as_slice()),
        (0x0b, &b"too_many_resets"[..])
    );
    let text = metrics.encode();
    assert!(
        text.contains(
            "wsgate_http2_stream_resets_total{side=\"gateway\",code=\"refused_stream\"} 1"
        ),
        "{text}"
    );
}

#[test]
fn vectored_writes_are_scanned_only_as_far_as_they_went() {
    let (mut watched, _peer, seen, _) = watched();
    let mut goaway = vec![0, 0, 0, 1, 0, 0, 0, 0x01];
    goaway.extend_from_slice(b"x");
    let bytes = frame(kind::GOAWAY, 0, 0, &goaway);
    let (a, b) = bytes.split_at(5);
    let bufs = [io::IoSlice::new(a), io::IoSlice::new(b)];
    watched.on_write_vectored(&bufs, 12);
    assert!(seen.goaway().is_none(), "only 12 bytes went out");
    watched.on_write(&bytes[12..]);
    assert_eq!(seen.goaway().unwrap().code, 1);
}

#[test]
fn code_labels_follow_rfc_9113() {
    assert_eq!(code_label(0x7), "refused_stream");
    assert_eq!(code_label(0xb), "enhance_your_calm");
    assert_eq!(code_label(0xd), "http_1_1_required");
    assert_eq!(code_label(0xff), "unknown");
}
