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
    watched.on_write(&bytes[12..], false);
    assert_eq!(seen.goaway().unwrap().code, 1);
}

#[test]
fn code_labels_follow_rfc_9113() {
    assert_eq!(code_label(0x7), "refused_stream");
    assert_eq!(code_label(0xb), "enhance_your_calm");
    assert_eq!(code_label(0xd), "http_1_1_required");
    assert_eq!(code_label(0xff), "unknown");
}

/// What the client gets when the gateway writes `out` after the client sent
/// `sent` (after the preface), handed to the watch in pieces of `piece`
/// bytes, through a pipe of `pipe` bytes; and the metrics.
async fn answered(sent: &[u8], out: &[u8], piece: usize, pipe: usize) -> (Vec<u8>, String) {
    let (ours, mut theirs) = duplex(pipe);
    let metrics = Arc::new(Metrics::default());
    let peer = "127.0.0.1:1".parse().unwrap();
    let mut watched = Watched::new(ours, peer, Arc::default(), metrics.clone());
    let mut bytes = PREFACE.to_vec();
    bytes.extend_from_slice(sent);
    let (sent, pumped) = tokio::join!(theirs.write_all(&bytes), pump(&mut watched, bytes.len()));
    sent.unwrap();
    pumped.unwrap();
    let write = async {
        for chunk in out.chunks(piece) {
            watched.write_all(chunk).await.unwrap();
        }
        watched.shutdown().await.unwrap();
    };
    let mut got = Vec::new();
    let (_, read) = tokio::join!(write, theirs.read_to_end(&mut got));
    read.unwrap();
    (got, metrics.encode())
}

const PROTOCOL_ERROR: [u8; 4] = [0, 0, 0, 1];
const INTERNAL_ERROR: [u8; 4] = [0, 0, 0, 2];

/// `:status: 400` ending `stream`.
fn bad_request(stream: u32) -> Vec<u8> {
    frame(kind::HEADERS, 0x5, stream, &[0x8c])
}

#[tokio::test]
async fn a_malformed_request_gets_a_400_before_h2s_reset() {
    // A CONNECT (the client's side stays open) on stream 1.
    let sent = frame(kind::HEADERS, 0x4, 1, &[0x82]);
    let settings = frame(kind::SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100]);
    let reset = frame(kind::RST_STREAM, 0, 1, &PROTOCOL_ERROR);
    let out = [settings.clone(), reset.clone()].concat();
    // h2 hands over its whole buffer each time; the socket may take it in
    // pieces (a pipe of 1, 3 or 14 bytes).
    for (piece, pipe) in [
        (out.len(), 1 << 16),
        (out.len(), 1),
        (out.len(), 3),
        (out.len(), 14),
    ] {
        let (got, text) = answered(&sent, &out, piece, pipe).await;
        let want = [settings.clone(), bad_request(1), reset.clone()].concat();
        assert_eq!(got, want, "pieces of {piece}, pipe of {pipe}");
        let refused = "wsgate_http2_requests_refused_total{reason=\"malformed\"} 1";
        assert!(text.contains(refused), "{text}");
        let reset = "wsgate_http2_stream_resets_total{side=\"gateway\",code=\"protocol_error\"} 1";
        assert!(text.contains(reset), "{text}");
    }
}

#[tokio::test]
async fn when_the_client_had_ended_its_side_the_400_takes_the_resets_place() {
    // A GET: END_STREAM on its HEADERS; and a POST ended by its DATA.
    let get = frame(kind::HEADERS, 0x5, 1, &[0x82]);
    let post = [
        frame(kind::HEADERS, 0x4, 3, &[0x83]),
        frame(kind::DATA, 0x1, 3, b"hello"),
    ]
    .concat();
    let out = [
        frame(kind::RST_STREAM, 0, 1, &PROTOCOL_ERROR),
        frame(kind::RST_STREAM, 0, 3, &PROTOCOL_ERROR),
    ]
    .concat();
    let (got, text) = answered(&[get, post].concat(), &out, out.len(), 1 << 16).await;
    assert_eq!(got, [bad_request(1), bad_request(3)].concat());
    assert!(text.contains("wsgate_http2_requests_refused_total{reason=\"malformed\"} 2"));
    assert!(
        !text.contains("code=\"protocol_error\""),
        "no reset went out: {text}"
    );
}

#[tokio::test]
async fn a_connect_with_a_body_that_hyper_resets_gets_a_400() {
    let sent = frame(kind::HEADERS, 0x4, 1, &[0x82]);
    let reset = frame(kind::RST_STREAM, 0, 1, &INTERNAL_ERROR);
    let (got, text) = answered(&sent, &reset, reset.len(), 1 << 16).await;
    assert_eq!(got, [bad_request(1), reset].concat());
    assert!(text.contains("wsgate_http2_requests_refused_total{reason=\"connect_body\"} 1"));
}

#[tokio::test]
async fn resets_that_refuse_nothing_pass_unchanged() {
    let sent = [
        frame(kind::HEADERS, 0x4, 1, &[0x82]),
        frame(kind::HEADERS, 0x4, 3, &[0x82]),
        frame(kind::HEADERS, 0x4, 5, &[0x82]),
    ]
    .concat();
    let out = [
        // Stream 1's response started (`:status: 200`, `date`): a reset
        // after it is no refusal.
        frame(kind::HEADERS, 0x4, 1, &[0x88, 0x61, 0x01, b'x']),
        frame(kind::RST_STREAM, 0, 1, &PROTOCOL_ERROR),
        // Over the stream limit, and cancelled: not refusals.
        frame(kind::RST_STREAM, 0, 3, &[0, 0, 0, 7]),
        frame(kind::RST_STREAM, 0, 5, &[0, 0, 0, 8]),
        // A stream the client never opened.
        frame(kind::RST_STREAM, 0, 7, &PROTOCOL_ERROR),
    ]
    .concat();
    let (got, text) = answered(&sent, &out, out.len(), 1 << 16).await;
    assert_eq!(got, out);
    assert!(
        !text.contains("wsgate_http2_requests_refused_total{"),
        "{text}"
    );
}

#[tokio::test]
async fn a_client_that_lowers_its_hpack_table_gets_the_reset_alone() {
    let table_0 = frame(kind::SETTINGS, 0, 0, &[0, 1, 0, 0, 0, 0]);
    let sent = [table_0, frame(kind::HEADERS, 0x4, 1, &[0x82])].concat();
    let reset = frame(kind::RST_STREAM, 0, 1, &PROTOCOL_ERROR);
    let (got, text) = answered(&sent, &reset, reset.len(), 1 << 16).await;
    assert_eq!(got, reset, "h2's next block must start with a size update");
    assert!(text.contains("wsgate_http2_requests_refused_total{reason=\"malformed\"} 1"));
}

#[tokio::test]
async fn h2s_own_431_is_counted_and_the_gateways_responses_are_not() {
    let sent = [
        frame(kind::HEADERS, 0x5, 1, &[0x82]),
        frame(kind::HEADERS, 0x5, 3, &[0x82]),
        frame(kind::HEADERS, 0x5, 5, &[0x82]),
    ]
    .concat();
    let out = [
        // h2's 431: `:status` alone, literal then indexed.
        frame(kind::HEADERS, 0x5, 1, &[0x48, 0x82, 0x68, 0x61]),
        frame(kind::HEADERS, 0x5, 3, &[0xbe]),
        // The gateway's empty 204, with its `date`.
        frame(kind::HEADERS, 0x5, 5, &[0x89, 0x61, 0x01, b'x']),
    ]
    .concat();
    let (got, text) = answered(&sent, &out, 7, 1 << 16).await;
    assert_eq!(got, out, "counted, never changed");
    let line = "wsgate_http2_requests_refused_total{reason=\"header_list_too_large\"} 2";
    assert!(text.contains(line), "{text}");
}

#[tokio::test]
async fn a_client_with_eight_settings_and_a_larger_table_still_gets_its_400() {
    let settings: Vec<u8> = [(1, 65536), (2, 0), (3, 100), (4, 1 << 20), (5, 16384)]
        .into_iter()
        .chain([(6, 1 << 16), (8, 1), (9, 1)])
        .flat_map(|(id, value): (u16, u32)| {
            [id.to_be_bytes().to_vec(), value.to_be_bytes().to_vec()].concat()
        })
        .collect();
    let sent = [
        frame(kind::SETTINGS, 0, 0, &settings),
        frame(kind::HEADERS, 0x4, 1, &[0x82]),
    ]
    .concat();
    let reset = frame(kind::RST_STREAM, 0, 1, &PROTOCOL_ERROR);
    let (got, _) = answered(&sent, &reset, reset.len(), 1 << 16).await;
    assert_eq!(got, [bad_request(1), reset].concat());
}
