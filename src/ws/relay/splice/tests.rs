//! A backend that dies at every interesting point of a large frame, relayed
//! once with splicing and once by copying over the same kind of sockets:
//! what the client gets (byte for byte, and the close) and what the relay
//! reports must be the same both ways. The copy path is the reference; the
//! splice path is an optimisation and may not change an outcome.
//!
//! The points: before the frame, inside its header, at and around
//! [`SPLICE_MIN`] into the payload, one byte short of its end, right after
//! it, one byte into the next header; the backend closing (FIN, or RST
//! when it left bytes unread, as a killed process does), resetting (RST,
//! `SO_LINGER` 0) or half-closing; the client reading at once, or only after
//! the backend died (the pipe then holds bytes when the source ends); the
//! client sending a large frame of its own meanwhile (spliced the other way).

use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::super::*;
use crate::net::short_read::poll_read_tcp;
use crate::ws::frame::{parse_header, OpCode};
use crate::ws::test_support::{client_frame, encode, relay_config};

fn cfg() -> RelayConfig {
    relay_config(8 << 20)
}

/// A TCP stream the relay cannot splice: the copy path, with the reads
/// production uses (`Leg::Raw` over TCP).
struct NoSplice(TcpStream);

impl SpliceTcp for NoSplice {}

impl RelayRead for NoSplice {
    fn poll_relay_read(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        poll_read_tcp(&self.0, cx, buf)
    }
}

impl AsyncRead for NoSplice {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for NoSplice {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

/// Both ends of a loopback TCP connection.
async fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (connected, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    (connected.unwrap(), accepted.unwrap().0)
}

/// `len` bytes that show any reordering or loss.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8) ^ ((i >> 9) as u8).wrapping_mul(31) ^ seed)
        .collect()
}

/// How the backend goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Death {
    /// close(2): FIN, or RST if it left bytes unread (a killed process).
    Drop,
    /// RST (`SO_LINGER` 0).
    Reset,
    /// shutdown(SHUT_WR): FIN, and it keeps reading.
    HalfClose,
}

/// When the client reads what the gateway forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reader {
    /// As it comes.
    Prompt,
    /// Only once the backend is gone: the gateway's pipe (or buffer) holds
    /// bytes when its source ends.
    Slow,
}

/// One backend death.
#[derive(Debug, Clone, Copy)]
struct Case {
    /// Payload of the large binary frame the client sends (0: none).
    client_sends: usize,
    /// Bytes of the client's frame the backend reads before it dies.
    backend_reads: usize,
    /// Payload of the large binary frame the backend sends.
    frame: usize,
    /// Bytes the backend sends of that frame and the next one (a small
    /// frame) before it dies.
    cut: usize,
    death: Death,
    reader: Reader,
}

/// The backend's bytes: a small frame, the large one, a small one after.
fn backend_bytes(frame: usize) -> Vec<u8> {
    let mut bytes = encode(0x82, &pattern(100, 1), None);
    bytes.extend(encode(0x82, &pattern(frame, 2), None));
    bytes.extend(encode(0x82, &pattern(100, 3), None));
    bytes
}

/// Where the large frame starts in [`backend_bytes`].
const LARGE_AT: usize = 102;

/// How many of the first `cut` bytes of [`backend_bytes`] the gateway
/// forwards before more come: not the start of a frame header.
fn forwardable(frame: usize, cut: usize) -> usize {
    let headers = [(0, 2), (LARGE_AT, 10), (LARGE_AT + 10 + frame, 2)];
    match headers
        .iter()
        .find(|&&(at, len)| at < cut && cut < at + len)
    {
        Some(&(at, _)) => at,
        None => cut,
    }
}

/// What the client saw and the relay reported.
#[derive(PartialEq, Eq)]
struct Outcome {
    /// Length and hash of the bytes before the gateway's close frame (all
    /// the bytes if none came).
    bytes: (usize, u64),
    /// Whole frames among them, and the bytes of one cut short after them.
    frames: usize,
    cut_short: usize,
    close: Option<(u16, String)>,
    /// How the client's stream ended after that.
    end: Result<(), io::ErrorKind>,
    report: (RelayEnd, Option<u16>, Option<u16>, Option<u16>, Option<u16>),
}

impl fmt::Debug for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} bytes ({} frames + {} cut short), close {:?}, end {:?}, relay {:?}",
            self.bytes.0, self.frames, self.cut_short, self.close, self.end, self.report
        )
    }
}

impl Outcome {
    /// The outcome where an RST may have dropped bytes still in the
    /// backend's send queue: whether a frame was cut short, not where.
    fn coarse(mut self) -> Self {
        self.bytes = (0, 0);
        self.cut_short = self.cut_short.min(1);
        self
    }
}

/// Whole frames in `bytes`, and the length of the incomplete rest.
fn frames_in(bytes: &[u8]) -> (usize, usize) {
    let (mut frames, mut pos) = (0, 0);
    while let Ok(Some(header)) = parse_header(&bytes[pos..], false) {
        let end = pos + header.header_len + header.payload_len as usize;
        if end > bytes.len() {
            break;
        }
        frames += 1;
        pos = end;
    }
    (frames, bytes.len() - pos)
}

/// What the client read: the bytes up to the gateway's close, that close.
struct Read {
    bytes: Vec<u8>,
    close: Option<(u16, String)>,
    end: Result<(), io::ErrorKind>,
}

/// Reads until the stream ends, publishing how many bytes came; answers the
/// gateway's close (through `closed`) and reads on to the end.
async fn client_reads(
    mut rd: tokio::net::tcp::OwnedReadHalf,
    start: oneshot::Receiver<()>,
    got: watch::Sender<usize>,
    closed: oneshot::Sender<u16>,
) -> Read {
    let _ = start.await;
    let mut bytes = Vec::new();
    let mut chunk = vec![0; 64 * 1024];
    let mut closed = Some(closed);
    let mut close = None;
    let end = loop {
        let n = match rd.read(&mut chunk).await {
            Ok(0) => break Ok(()),
            Ok(n) => n,
            Err(e) => break Err(e.kind()),
        };
        if close.is_some() {
            bytes.extend_from_slice(&chunk[..n]); // nothing may follow
            continue;
        }
        bytes.extend_from_slice(&chunk[..n]);
        got.send_replace(bytes.len());
        close = take_close(&mut bytes);
        if let Some((code, _)) = &close {
            if let Some(tx) = closed.take() {
                let _ = tx.send(*code);
            }
        }
    };
    Read { bytes, close, end }
}

/// Removes a close frame the gateway sent at the end of `bytes` (it comes
/// after the last whole frame) and returns its code and reason.
fn take_close(bytes: &mut Vec<u8>) -> Option<(u16, String)> {
    let (frames, rest) = frames_in(bytes);
    if frames == 0 {
        return None;
    }
    // The last whole frame: walk again to find where it starts.
    let (mut pos, mut last) = (0, 0);
    for _ in 0..frames {
        let header = parse_header(&bytes[pos..], false).unwrap().unwrap();
        last = pos;
        pos += header.header_len + header.payload_len as usize;
    }
    let header = parse_header(&bytes[last..], false).unwrap().unwrap();
    if header.opcode != OpCode::Close {
        return None;
    }
    assert_eq!(rest, 0, "bytes after the gateway's close");
    let payload = &bytes[last + header.header_len..pos];
    let code = u16::from_be_bytes([payload[0], payload[1]]);
    let reason = String::from_utf8_lossy(&payload[2..]).into_owned();
    bytes.truncate(last);
    Some((code, reason))
}

/// The client's writes: its large frame, then the reply to the gateway's
/// close once it comes.
async fn client_writes(
    mut wr: tokio::net::tcp::OwnedWriteHalf,
    frame: Vec<u8>,
    closed: oneshot::Receiver<u16>,
) {
    // The gateway may stop reading a client whose backend is gone.
    let _ = wr.write_all(&frame).await;
    if let Ok(code) = closed.await {
        let _ = wr.write_all(&client_frame(0x88, &code.to_be_bytes())).await;
    }
    // Dropped here: FIN.
}

/// The backend: reads what it must of the client's frame, sends its bytes,
/// dies.
async fn backend_acts(
    mut backend: TcpStream,
    case: Case,
    client_got: watch::Receiver<usize>,
    dead: oneshot::Sender<()>,
) -> Option<TcpStream> {
    let mut read = vec![0; case.backend_reads];
    backend.read_exact(&mut read).await.unwrap();
    let bytes = backend_bytes(case.frame);
    backend.write_all(&bytes[..case.cut]).await.unwrap();
    if case.reader == Reader::Prompt && case.death != Death::HalfClose {
        // An RST drops what the backend's kernel has not sent yet: die once
        // the client has it all, so the outcome does not hang on timing.
        let mut client_got = client_got;
        let forwarded = forwardable(case.frame, case.cut);
        let _ = client_got.wait_for(|&n| n >= forwarded).await;
    }
    let kept = match case.death {
        Death::Drop => None,
        Death::Reset => {
            backend.set_zero_linger().unwrap();
            None
        }
        Death::HalfClose => {
            backend.shutdown().await.unwrap();
            Some(backend)
        }
    };
    let _ = dead.send(());
    let mut kept = kept?;
    // Half-closed: read on until the gateway closes its side.
    let mut sink = vec![0; 64 * 1024];
    while matches!(kept.read(&mut sink).await, Ok(n) if n > 0) {}
    Some(kept)
}

/// Runs `case` through a relay, spliced or copied; also says how many
/// bytes were spliced.
async fn run(case: Case, splice: bool) -> (Outcome, u64) {
    let (client, gw_client) = tcp_pair().await;
    let (backend, gw_backend) = tcp_pair().await;
    let stats = Arc::new(RelayStats::default());
    let token = CancellationToken::new();
    let relay = if splice {
        let relay = relay(
            Leg::Raw(gw_client),
            Leg::Raw(gw_backend),
            cfg(),
            stats.clone(),
            token,
        );
        tokio::spawn(relay)
    } else {
        let (c, b) = (
            Leg::Raw(NoSplice(gw_client)),
            Leg::Raw(NoSplice(gw_backend)),
        );
        tokio::spawn(relay(c, b, cfg(), stats.clone(), token))
    };
    let (rd, wr) = client.into_split();
    let (got_tx, got_rx) = watch::channel(0);
    let (dead_tx, dead_rx) = oneshot::channel();
    let (start_tx, start_rx) = oneshot::channel();
    let (closed_tx, closed_rx) = oneshot::channel();
    let frame = match case.client_sends {
        0 => Vec::new(),
        n => client_frame(0x82, &pattern(n, 4)),
    };
    let writer = tokio::spawn(client_writes(wr, frame, closed_rx));
    let reader = tokio::spawn(client_reads(rd, start_rx, got_tx, closed_tx));
    let backend = tokio::spawn(backend_acts(backend, case, got_rx, dead_tx));
    match case.reader {
        Reader::Prompt => drop(start_tx),
        Reader::Slow => {
            let _ = dead_rx.await;
            let _ = start_tx.send(());
        }
    }
    let read = reader.await.unwrap();
    writer.await.unwrap();
    let report = relay.await.unwrap();
    drop(backend.await.unwrap());
    let (frames, cut_short) = frames_in(&read.bytes);
    let mut hash = DefaultHasher::new();
    read.bytes.hash(&mut hash);
    let outcome = Outcome {
        bytes: (read.bytes.len(), hash.finish()),
        frames,
        cut_short,
        close: read.close,
        end: read.end,
        report: (
            report.end,
            report.sent_to_client,
            report.sent_to_backend,
            report.client_close,
            report.backend_close,
        ),
    };
    (outcome, stats.spliced_bytes.load(Ordering::Relaxed))
}

/// Runs every case both ways; fails listing each case whose outcomes differ.
async fn compare(cases: &[Case]) {
    let (mut differ, mut spliced_bytes) = (Vec::new(), 0);
    for &case in cases {
        let run_both = async { (run(case, true).await, run(case, false).await) };
        let ((spliced, n), (copied, none)) =
            tokio::time::timeout(Duration::from_secs(60), run_both)
                .await
                .unwrap_or_else(|_| panic!("{case:?} hung"));
        assert_eq!(none, 0, "the copy path spliced");
        spliced_bytes += n;
        // An RST while the client is not reading may drop bytes from the
        // backend's send queue: compare what does not depend on how many.
        let coarse = case.death == Death::Reset && case.reader == Reader::Slow;
        let (spliced, copied) = match coarse {
            true => (spliced.coarse(), copied.coarse()),
            false => (spliced, copied),
        };
        if spliced != copied {
            differ.push(format!(
                "{case:?}\n    spliced: {spliced:?}\n    copied:  {copied:?}"
            ));
        }
    }
    assert!(spliced_bytes > 0, "nothing was spliced");
    assert!(
        differ.is_empty(),
        "{} of {} cases differ:\n{}",
        differ.len(),
        cases.len(),
        differ.join("\n")
    );
}

/// Where the backend stops in [`backend_bytes`] with a large frame of
/// `frame` bytes (header 10 bytes).
fn cuts(frame: usize) -> Vec<usize> {
    let payload = LARGE_AT + 10;
    let end = payload + frame;
    vec![
        0,
        LARGE_AT,
        LARGE_AT + 1,
        payload,
        payload + 1,
        payload + 16 * 1024,
        payload + SPLICE_MIN as usize - 1,
        payload + SPLICE_MIN as usize,
        payload + SPLICE_MIN as usize + 1,
        payload + frame / 2,
        end - 1,
        end,
        end + 1,
    ]
}

#[tokio::test]
async fn a_backend_dying_in_a_frame_it_sends_ends_as_on_the_copy_path() {
    let frame = 256 * 1024;
    let mut cases = Vec::new();
    for cut in cuts(frame) {
        for death in [Death::Drop, Death::Reset, Death::HalfClose] {
            for reader in [Reader::Prompt, Reader::Slow] {
                cases.push(Case {
                    client_sends: 0,
                    backend_reads: 0,
                    frame,
                    cut,
                    death,
                    reader,
                });
            }
        }
    }
    compare(&cases).await;
}

#[tokio::test]
async fn a_backend_dying_in_a_frame_it_receives_ends_as_on_the_copy_path() {
    let sent = 1 << 20;
    let header = 14;
    let mut cases = Vec::new();
    for backend_reads in [
        0,
        1,
        header,
        header + 1,
        header + (64 << 10),
        header + (512 << 10),
    ]
    .into_iter()
    .chain([header + sent - 1, header + sent])
    {
        for death in [Death::Drop, Death::Reset, Death::HalfClose] {
            cases.push(Case {
                client_sends: sent,
                backend_reads,
                frame: 256 * 1024,
                cut: 0,
                death,
                reader: Reader::Prompt,
            });
        }
    }
    compare(&cases).await;
}

#[tokio::test]
async fn a_backend_dying_in_frames_both_ways_ends_as_on_the_copy_path() {
    let (sent, frame) = (1 << 20, 256 * 1024);
    let mut cases = Vec::new();
    for backend_reads in [14 + (64 << 10), 14 + (512 << 10)] {
        for cut in cuts(frame) {
            for death in [Death::Drop, Death::Reset, Death::HalfClose] {
                cases.push(Case {
                    client_sends: sent,
                    backend_reads,
                    frame,
                    cut,
                    death,
                    reader: Reader::Prompt,
                });
            }
        }
    }
    compare(&cases).await;
}
