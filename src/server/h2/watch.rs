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
//!   gateway resets for an error on a connection (a stream over the
//!   limit, say) is also logged: h2 does it before any request reaches the
//!   gateway's code, which would otherwise say nothing;
//! - answer the requests h2 and hyper refuse by themselves as the gateway
//!   would (see [`refusal`](super::refusal)): a `400` before the reset of a
//!   malformed request, and a count and a log line for each.
//!
//! The watch reads frame heads, and at most sixty payload bytes of
//! RST_STREAM, GOAWAY, SETTINGS and HEADERS. The one change it makes to
//! what h2 writes is that `400`: a ten-byte HEADERS frame put in front of
//! a reset (which it replaces when the client had ended its side).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use super::budget::{Bucket, PING_BUDGET, RESET_BUDGET, SETTINGS_BUDGET};
use super::frame::{kind, Head, Scanner, ACK, END_STREAM};
use super::refusal::{self, Answer, Requests};
use crate::telemetry::metrics::Metrics;
pub(super) use seen::{Flood, GoAway, Seen};

mod seen;

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

/// The gateway's side of the watch: what it scans, whether it logged a
/// reset yet, and the `400` it is putting in front of a reset.
#[derive(Debug)]
struct Outbound {
    scanner: Scanner,
    /// The client, for the log line.
    peer: SocketAddr,
    /// A reset for an error, or a refusal, was logged on this connection
    /// (only the first is; the rest are counted).
    logged_reset: bool,
    /// Bytes the watch writes before any more of h2's.
    answer: Answer,
}

/// A connection's stream with the watch on it.
#[derive(Debug)]
pub(super) struct Watched<IO> {
    io: IO,
    seen: Arc<Seen>,
    metrics: Arc<Metrics>,
    inbound: Inbound,
    outbound: Outbound,
    requests: Requests,
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
                answer: Answer::default(),
            },
            requests: Requests::default(),
        }
    }

    /// Scans bytes the client sent; the flood they complete, if any.
    fn on_read(&mut self, bytes: &[u8]) -> Option<Flood> {
        let (seen, metrics, requests) = (&self.seen, &self.metrics, &mut self.requests);
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
                kind::SETTINGS => {
                    requests.settings(captured, head.len);
                    (!settings.take(now)).then_some(Flood::Settings)
                }
                kind::PING if head.flags & ACK == 0 => (!pings.take(now)).then_some(Flood::Ping),
                kind::RST_STREAM => {
                    requests.awaiting.take(head.stream);
                    metrics.http2_stream_reset("client", code_label(error_code(captured)));
                    (!resets.take(now)).then_some(Flood::Reset)
                }
                kind::HEADERS if head.stream > *last_stream => {
                    *last_stream = head.stream;
                    seen.streams.fetch_add(1, Ordering::Relaxed);
                    let done = head.flags & END_STREAM != 0;
                    requests.awaiting.opened(head.stream, done);
                    None
                }
                kind::HEADERS | kind::DATA if head.flags & END_STREAM != 0 => {
                    requests.awaiting.client_done(head.stream);
                    None
                }
                _ => None,
            };
            flood = flood.or(over);
        });
        flood
    }

    /// Scans bytes the gateway sent, or, when `taken`, the reset the watch
    /// answers instead of sending it as is: that answer is staged here.
    fn on_write(&mut self, bytes: &[u8], taken: bool) {
        let (seen, metrics, requests) = (&self.seen, &self.metrics, &mut self.requests);
        let Outbound {
            scanner,
            peer,
            logged_reset,
            answer,
        } = &mut self.outbound;
        scanner.feed(bytes, &mut |head: Head, captured: &[u8]| match head.kind {
            kind::RST_STREAM => {
                let code = error_code(captured);
                let refused = requests.refused(head.stream, code);
                let answered = taken && refused.is_some();
                if let Some(refused) = refused {
                    metrics.http2_request_refused(refused.reason);
                    let answer = if answered { "400" } else { "reset" };
                    log_refusal(logged_reset, peer, head.stream, answer, refused.reason);
                }
                // The 400 takes the reset's place once both sides ended.
                let reset = !(answered && refused.is_some_and(|r| r.client_done));
                if answered {
                    answer.stage(head.stream, reset.then_some(code));
                }
                if reset {
                    metrics.http2_stream_reset("gateway", code_label(code));
                }
                if !*logged_reset && !matches!(code, NO_ERROR | CANCEL) {
                    *logged_reset = true;
                    let (code, stream) = (code_label(code), head.stream);
                    tracing::info!(client = %peer, stream, code, "HTTP/2 stream reset by the gateway (further resets on this connection are counted, not logged)");
                }
            }
            kind::HEADERS => {
                let h2s_own_431 = requests.answered(head, captured);
                if h2s_own_431 {
                    metrics.http2_request_refused("header_list_too_large");
                    let why = "header_list_too_large";
                    log_refusal(logged_reset, peer, head.stream, "431", why);
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

    /// Where in `bytes` (what h2 asks to write) a reset the watch answers
    /// begins, if one does.
    fn answer_at<'a>(&self, bytes: impl IntoIterator<Item = &'a [u8]>) -> Option<usize> {
        let requests = &self.requests;
        if !requests.may_answer() {
            return None;
        }
        let reset = |head: Head, captured: &[u8]| {
            head.kind == kind::RST_STREAM
                && requests.refused_peek(head.stream, error_code(captured), head.len)
        };
        self.outbound.scanner.find(bytes, reset)
    }

    /// Scans what a vectored write accepted: the first `n` bytes of `bufs`.
    fn on_write_vectored(&mut self, bufs: &[io::IoSlice<'_>], mut n: usize) {
        for buf in bufs {
            if n == 0 {
                break;
            }
            let taken = n.min(buf.len());
            self.on_write(&buf[..taken], false);
            n -= taken;
        }
    }
}

/// Logs a request h2 or hyper refused, unless something was logged on
/// this connection already.
/// `answer` is what the client got: a status, or `reset` alone.
fn log_refusal(logged: &mut bool, peer: &SocketAddr, stream: u32, answer: &str, why: &str) {
    if !std::mem::replace(logged, true) {
        tracing::info!(client = %peer, stream, answer, why, "HTTP/2 request refused before it reached the gateway (further refusals and resets on this connection are counted, not logged)");
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
        std::task::ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        if let Some(flood) = this.on_read(&buf.filled()[before..]) {
            this.seen.flood.store(flood as u8, Ordering::Relaxed);
            let message = format!("HTTP/2 {}: connection cut", flood.label());
            return Poll::Ready(Err(io::Error::other(message)));
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Watched<IO> {
    /// A write stops short of a reset the watch answers; once that reset
    /// leads the buffer, it is taken in (the answer staged in its place)
    /// and the answer goes out before any more of h2's bytes.
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        std::task::ready!(this.outbound.answer.poll_send(Pin::new(&mut this.io), cx))?;
        let len = match this.answer_at([buf]) {
            Some(0) => {
                this.on_write(&buf[..refusal::RESET_LEN], true);
                return Poll::Ready(Ok(refusal::RESET_LEN));
            }
            Some(before) => before,
            None => buf.len(),
        };
        let n = std::task::ready!(Pin::new(&mut this.io).poll_write(cx, &buf[..len]))?;
        this.on_write(&buf[..n], false);
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.answer_at(bufs.iter().map(|b| &b[..])).is_some() {
            let first = bufs.iter().find(|b| !b.is_empty());
            return Pin::new(this).poll_write(cx, first.map_or(&[], |b| &b[..]));
        }
        std::task::ready!(this.outbound.answer.poll_send(Pin::new(&mut this.io), cx))?;
        let n = std::task::ready!(Pin::new(&mut this.io).poll_write_vectored(cx, bufs))?;
        this.on_write_vectored(bufs, n);
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.outbound.answer.poll_send(Pin::new(&mut this.io), cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.outbound.answer.poll_send(Pin::new(&mut this.io), cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
