//! The frames of one HTTP/2 connection, watched between TLS and hyper.
//!
//! hyper hides the HTTP/2 frames, and how its h2 library ended a connection
//! reaches the caller only as an error kind (the GOAWAY's debug text is
//! dropped on the way). Reading the frame heads as the bytes pass lets the
//! gateway do three things hyper cannot:
//!
//! - tell whether the client had acknowledged our SETTINGS (and so
//!   `SETTINGS_ENABLE_CONNECT_PROTOCOL`) before it sent a request: the
//!   watch notes how many streams the client had opened when its ACK
//!   passed, and requests reach the service in the order their streams
//!   opened, so a request is known to predate the ACK by its place in
//!   that order, even when both arrived in one read;
//! - bound the control frames h2 answers without limit: SETTINGS, PING and
//!   RST_STREAM floods cost CPU per frame though never memory, so past a
//!   token budget the connection is cut (an I/O error to h2);
//! - name why the connection ended: the GOAWAY h2 wrote says it
//!   (`too_many_resets`, `too_many_continuations`, ...), and count every
//!   RST_STREAM either side sent, by error code. The first stream the
//!   gateway resets for an error on a connection (a malformed request, a
//!   stream over the limit) is also logged: h2 does it before any request
//!   reaches the gateway's code, which would otherwise say nothing.
//!
//! The watch reads only frame heads (and four to forty payload bytes of
//! RST_STREAM and GOAWAY); it never buffers or changes a byte.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use super::budget::{Bucket, PING_BUDGET, RESET_BUDGET, SETTINGS_BUDGET};
use super::frame::{kind, Head, Scanner, ACK};
use crate::telemetry::metrics::Metrics;

/// What a flood of one frame type ended the connection as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum Flood {
    /// SETTINGS over [`SETTINGS_BUDGET`].
    Settings = 1,
    /// PING over [`PING_BUDGET`].
    Ping = 2,
    /// RST_STREAM over [`RESET_BUDGET`].
    Reset = 3,
}

impl Flood {
    fn from_u8(n: u8) -> Option<Flood> {
        [Flood::Settings, Flood::Ping, Flood::Reset]
            .into_iter()
            .find(|f| *f as u8 == n)
    }

    /// The `end` label of `wsgate_http2_connections_total`.
    pub(super) fn label(self) -> &'static str {
        match self {
            Flood::Settings => "settings_flood",
            Flood::Ping => "ping_flood",
            Flood::Reset => "rapid_reset",
        }
    }
}

/// A GOAWAY the gateway sent: its error code and the start of its debug data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct GoAway {
    /// The error code.
    pub code: u32,
    /// The debug data, as far as it was kept.
    pub debug: Vec<u8>,
}

/// What the watch learned about one connection; shared with the server.
#[derive(Debug)]
pub(super) struct Seen {
    /// How many streams the client had opened when its first SETTINGS ACK
    /// passed; `u64::MAX` until then.
    opened_before_ack: AtomicU64,
    /// Streams the client opened (HEADERS frames on a new stream).
    streams: AtomicU64,
    /// The [`Flood`] that cut the connection, as its `u8`; 0 for none.
    flood: AtomicU8,
    /// The first GOAWAY with an error code the gateway sent.
    goaway: Mutex<Option<GoAway>>,
    /// The client said it was leaving: its GOAWAY, or the end of its stream.
    client_left: AtomicBool,
}

impl Default for Seen {
    fn default() -> Seen {
        Seen {
            opened_before_ack: AtomicU64::new(u64::MAX),
            streams: AtomicU64::default(),
            flood: AtomicU8::default(),
            goaway: Mutex::default(),
            client_left: AtomicBool::default(),
        }
    }
}

impl Seen {
    /// Whether the client had acknowledged our SETTINGS before it opened
    /// its `nth` stream (1 for the first).
    pub(super) fn settings_acked_before(&self, nth: u64) -> bool {
        nth > self.opened_before_ack.load(Ordering::Acquire)
    }

    /// The client's first SETTINGS ACK passed, after `opened` streams.
    fn acked_after(&self, opened: u64) {
        let not_yet = u64::MAX;
        let (now, first) = (Ordering::AcqRel, Ordering::Relaxed);
        self.opened_before_ack
            .compare_exchange(not_yet, opened, now, first)
            .ok();
    }

    /// Streams the client opened.
    pub(super) fn streams(&self) -> u64 {
        self.streams.load(Ordering::Relaxed)
    }

    /// The flood that cut the connection, if one did.
    pub(super) fn flood(&self) -> Option<Flood> {
        Flood::from_u8(self.flood.load(Ordering::Relaxed))
    }

    /// The GOAWAY with an error the gateway sent, if any.
    pub(super) fn goaway(&self) -> Option<GoAway> {
        self.goaway
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether the client sent GOAWAY or closed its side.
    pub(super) fn client_left(&self) -> bool {
        self.client_left.load(Ordering::Relaxed)
    }
}

/// The client's side of the watch: what it scans and spends.
#[derive(Debug)]
struct Inbound {
    scanner: Scanner,
    settings: Bucket,
    pings: Bucket,
    resets: Bucket,
    /// The highest stream id the client opened.
    last_stream: u32,
}

/// The gateway's side of the watch: what it scans, and whether it logged
/// a reset yet.
#[derive(Debug)]
struct Outbound {
    scanner: Scanner,
    /// The client, for the log line.
    peer: SocketAddr,
    /// A reset for an error was logged on this connection (only the first
    /// is; the rest are counted).
    logged_reset: bool,
}

/// A connection's stream with the watch on it.
#[derive(Debug)]
pub(super) struct Watched<IO> {
    io: IO,
    seen: Arc<Seen>,
    metrics: Arc<Metrics>,
    inbound: Inbound,
    outbound: Outbound,
}

impl<IO> Watched<IO> {
    /// Watches `io`, the connection from `peer`; what is learned goes to
    /// `seen`, resets to `metrics`.
    pub(super) fn new(io: IO, peer: SocketAddr, seen: Arc<Seen>, metrics: Arc<Metrics>) -> Self {
        let now = Instant::now();
        Watched {
            io,
            seen,
            metrics,
            inbound: Inbound {
                scanner: Scanner::client(),
                settings: Bucket::full(SETTINGS_BUDGET, now),
                pings: Bucket::full(PING_BUDGET, now),
                resets: Bucket::full(RESET_BUDGET, now),
                last_stream: 0,
            },
            outbound: Outbound {
                scanner: Scanner::server(),
                peer,
                logged_reset: false,
            },
        }
    }

    /// Scans bytes the client sent; the flood they complete, if any.
    fn on_read(&mut self, bytes: &[u8]) -> Option<Flood> {
        let (seen, metrics) = (&self.seen, &self.metrics);
        let Inbound {
            scanner,
            settings,
            pings,
            resets,
            last_stream,
        } = &mut self.inbound;
        let mut flood = None;
        let now = Instant::now();
        scanner.feed(bytes, &mut |head, captured| {
            let over = match head.kind {
                kind::SETTINGS if head.flags & ACK != 0 => {
                    seen.acked_after(seen.streams());
                    None
                }
                kind::SETTINGS => (!settings.take(now)).then_some(Flood::Settings),
                kind::PING if head.flags & ACK == 0 => (!pings.take(now)).then_some(Flood::Ping),
                kind::RST_STREAM => {
                    metrics.http2_stream_reset("client", code_label(error_code(captured)));
                    (!resets.take(now)).then_some(Flood::Reset)
                }
                kind::GOAWAY => {
                    seen.client_left.store(true, Ordering::Relaxed);
                    None
                }
                kind::HEADERS if head.stream > *last_stream => {
                    *last_stream = head.stream;
                    seen.streams.fetch_add(1, Ordering::Relaxed);
                    None
                }
                _ => None,
            };
            flood = flood.or(over);
        });
        flood
    }

    /// Scans bytes the gateway sent.
    fn on_write(&mut self, bytes: &[u8]) {
        let (seen, metrics) = (&self.seen, &self.metrics);
        let Outbound {
            scanner,
            peer,
            logged_reset,
        } = &mut self.outbound;
        scanner.feed(bytes, &mut |head: Head, captured: &[u8]| match head.kind {
            kind::RST_STREAM => {
                let code = error_code(captured);
                metrics.http2_stream_reset("gateway", code_label(code));
                if !*logged_reset && !matches!(code, NO_ERROR | CANCEL) {
                    *logged_reset = true;
                    let (code, stream) = (code_label(code), head.stream);
                    tracing::info!(client = %peer, stream, code, "HTTP/2 stream reset by the gateway (further resets on this connection are counted, not logged)");
                }
            }
            kind::GOAWAY if captured.len() >= 8 => {
                let code = error_code(&captured[4..]);
                let mut goaway = seen.goaway.lock().unwrap_or_else(|e| e.into_inner());
                if code != NO_ERROR && goaway.is_none() {
                    *goaway = Some(GoAway {
                        code,
                        debug: captured[8..].to_vec(),
                    });
                }
            }
            _ => {}
        });
    }

    /// Scans what a vectored write accepted: the first `n` bytes of `bufs`.
    fn on_write_vectored(&mut self, bufs: &[io::IoSlice<'_>], mut n: usize) {
        for buf in bufs {
            if n == 0 {
                break;
            }
            let taken = n.min(buf.len());
            self.on_write(&buf[..taken]);
            n -= taken;
        }
    }
}

/// RFC 9113 §7 error codes of resets that are no one's fault.
const NO_ERROR: u32 = 0x0;
const CANCEL: u32 = 0x8;

/// The error code at the start of `bytes` (0 when they are too short).
fn error_code(bytes: &[u8]) -> u32 {
    match bytes {
        [a, b, c, d, ..] => u32::from_be_bytes([*a, *b, *c, *d]),
        _ => 0,
    }
}

/// An HTTP/2 error code's name (RFC 9113 §7), as a metric label.
pub(super) fn code_label(code: u32) -> &'static str {
    const NAMES: [&str; 14] = [
        "no_error",
        "protocol_error",
        "internal_error",
        "flow_control_error",
        "settings_timeout",
        "stream_closed",
        "frame_size_error",
        "refused_stream",
        "cancel",
        "compression_error",
        "connect_error",
        "enhance_your_calm",
        "inadequate_security",
        "http_1_1_required",
    ];
    NAMES.get(code as usize).copied().unwrap_or("unknown")
}

impl<IO: AsyncRead + Unpin> AsyncRead for Watched<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let read = std::task::ready!(Pin::new(&mut this.io).poll_read(cx, buf));
        // An end of stream, or a read error (a TLS stream cut without
        // close_notify is one): the client is gone.
        if read.is_err() || buf.filled().len() == before {
            this.seen.client_left.store(true, Ordering::Relaxed);
        }
        read?;
        if let Some(flood) = this.on_read(&buf.filled()[before..]) {
            this.seen.flood.store(flood as u8, Ordering::Relaxed);
            let message = format!("HTTP/2 {}: connection cut", flood.label());
            return Poll::Ready(Err(io::Error::other(message)));
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Watched<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = std::task::ready!(Pin::new(&mut this.io).poll_write(cx, buf))?;
        this.on_write(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = std::task::ready!(Pin::new(&mut this.io).poll_write_vectored(cx, bufs))?;
        this.on_write_vectored(bufs, n);
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
