//! Requests h2 or hyper answer before the gateway's code sees them, made to
//! answer as the gateway would: with a status, a log line and a metric.
//!
//! h2 resets a malformed request with RST_STREAM `PROTOCOL_ERROR` (RFC 9113
//! §8.1.1: an extended CONNECT without `:path` or `:scheme`, a
//! connection-specific field such as `transfer-encoding`, a
//! `content-length` its DATA contradicts), and hyper resets a CONNECT that
//! declares a body with `INTERNAL_ERROR`. The same section lets a server
//! send a response before it resets a malformed request, so the watch puts
//! a `400` in front of that reset. When the client had already ended its
//! side, the `400` ends the stream and the reset is left out (a frame after
//! both ends closed a stream is not allowed, §5.1). h2 also answers a header
//! list over `SETTINGS_MAX_HEADER_LIST_SIZE` with a `431` of its own; the
//! watch counts that one.
//!
//! What makes this exact is knowing which streams still await their
//! response ([`Awaiting`]): a reset after the response started is not a
//! refusal. And h2's `431` is told from the gateway's own responses by its
//! header block: h2's holds `:status` alone (h2 makes no other response),
//! while hyper adds `date` to every response the gateway sends.
//!
//! The `400` is one indexed field of HPACK's static table (`:status: 400`,
//! index 12), so it neither reads nor changes the dynamic table and the
//! client's decoder stays in step with h2's encoder. The one case where it
//! could not: a client that lowers `SETTINGS_HEADER_TABLE_SIZE` expects the
//! next header block to start with a size update, which only h2 can write.
//! From such a client the refusal is counted and logged, and the reset goes
//! out alone.

/// Streams tracked at most per connection; beyond, a new stream is not
/// tracked and a refusal on it is a bare reset. h2 keeps far fewer open
/// (`limits.http2_max_streams`) and refuses the rest at once.
const MAX_AWAITING: usize = 512;

/// The HPACK table size the client may not go below without making the
/// `400` unsafe to send (RFC 9113 §6.5.2's initial value, which h2 keeps).
pub(super) const TABLE_SIZE: u32 = 4096;

/// RFC 9113 §7 error codes of the resets that refuse a request.
const PROTOCOL_ERROR: u32 = 0x1;
const INTERNAL_ERROR: u32 = 0x2;

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;

use super::frame::Head;

/// An RST_STREAM frame's length: its head and its error code.
pub(super) const RESET_LEN: usize = 9 + 4;

/// The `400` HEADERS frame's length.
const BAD_REQUEST_LEN: usize = 10;

/// The requests of one connection, as far as refusals go.
#[derive(Debug)]
pub(super) struct Requests {
    /// Streams that await their response.
    pub(super) awaiting: Awaiting,
    /// Whether a `400` may be put in front of a reset: not once the client
    /// lowered its HPACK table.
    answerable: bool,
}

impl Default for Requests {
    fn default() -> Requests {
        Requests {
            awaiting: Awaiting::default(),
            answerable: true,
        }
    }
}

/// A reset that refuses a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Refused {
    /// The `reason` label.
    pub reason: &'static str,
    /// Whether the client had ended its side: a `400` then ends the
    /// stream, and no reset may follow it.
    pub client_done: bool,
}

impl Requests {
    /// The client sent SETTINGS whose first `captured` bytes are these, of
    /// `len`: a table size below [`TABLE_SIZE`], or settings beyond what
    /// was captured, end the `400`s on this connection.
    pub(super) fn settings(&mut self, captured: &[u8], len: u32) {
        let lowered = captured.chunks_exact(6).any(|setting| {
            let id = u16::from_be_bytes([setting[0], setting[1]]);
            let value = u32::from_be_bytes([setting[2], setting[3], setting[4], setting[5]]);
            id == 0x1 && value < TABLE_SIZE
        });
        self.answerable &= !lowered && captured.len() == len as usize;
    }

    /// Whether a `400` can be put in front of a reset now.
    pub(super) fn may_answer(&self) -> bool {
        self.answerable && !self.awaiting.is_empty()
    }

    /// Whether an RST_STREAM of payload `len` with `code` on `stream`, as
    /// the next frame out, would be a refusal the watch answers.
    pub(super) fn refused_peek(&self, stream: u32, code: u32, len: u32) -> bool {
        len == 4 && self.answerable && self.awaiting.contains(stream) && refusal(code).is_some()
    }

    /// The gateway reset `stream` with `code`: a refusal if it awaited its
    /// response and the code says so. The stream no longer awaits.
    pub(super) fn refused(&mut self, stream: u32, code: u32) -> Option<Refused> {
        let client_done = self.awaiting.take(stream)?;
        Some(Refused {
            reason: refusal(code)?,
            client_done,
        })
    }

    /// A HEADERS frame went out: the stream's response started. Whether it
    /// is h2's own `431` (its head and first bytes are these).
    pub(super) fn answered(&mut self, head: Head, captured: &[u8]) -> bool {
        const END_STREAM_AND_HEADERS: u8 = 0x1 | 0x4;
        const PADDED_OR_PRIORITY: u8 = 0x8 | 0x20;
        let awaited = self.awaiting.take(head.stream).is_some();
        awaited
            && head.flags & END_STREAM_AND_HEADERS == END_STREAM_AND_HEADERS
            && head.flags & PADDED_OR_PRIORITY == 0
            && captured.len() == head.len as usize
            && is_lone_status(captured)
    }
}

/// A `400`, and the reset behind it if kept, on its way to the client:
/// written before any more of h2's bytes.
#[derive(Debug, Default)]
pub(super) struct Answer {
    bytes: [u8; BAD_REQUEST_LEN + RESET_LEN],
    len: u8,
    written: u8,
}

impl Answer {
    /// Stages the `400` for `stream`, and behind it the reset with `code`
    /// if one is kept. Anything staged before was sent already: a reset is
    /// taken in only once the answer before it is out.
    pub(super) fn stage(&mut self, stream: u32, reset: Option<u32>) {
        let mut len = BAD_REQUEST_LEN;
        self.bytes[..len].copy_from_slice(&bad_request(stream));
        if let Some(code) = reset {
            let mut frame = [0, 0, 4, 0x3, 0, 0, 0, 0, 0, 0, 0, 0, 0];
            frame[5..9].copy_from_slice(&stream.to_be_bytes());
            frame[9..].copy_from_slice(&code.to_be_bytes());
            self.bytes[len..len + RESET_LEN].copy_from_slice(&frame);
            len += RESET_LEN;
        }
        (self.len, self.written) = (len as u8, 0);
    }

    /// Writes what is staged to `io`; ready once none is left.
    pub(super) fn poll_send<IO: AsyncWrite>(
        &mut self,
        mut io: Pin<&mut IO>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        while self.written < self.len {
            let rest = &self.bytes[self.written as usize..self.len as usize];
            let n = std::task::ready!(io.as_mut().poll_write(cx, rest))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n as u8;
        }
        Poll::Ready(Ok(()))
    }
}

/// Streams whose request came in and whose response has not started, in
/// stream order, each with whether the client has ended its side.
#[derive(Debug, Default)]
pub(super) struct Awaiting {
    streams: Vec<(u32, bool)>,
}

impl Awaiting {
    /// The client opened `stream` (ids only grow), ending its side with the
    /// request head if `done`.
    pub(super) fn opened(&mut self, stream: u32, done: bool) {
        if self.streams.len() < MAX_AWAITING {
            self.streams.push((stream, done));
        }
    }

    /// The client ended its side of `stream`.
    pub(super) fn client_done(&mut self, stream: u32) {
        if let Some(i) = self.find(stream) {
            self.streams[i].1 = true;
        }
    }

    /// `stream` got its response or a reset: no longer awaiting. Whether
    /// it was, and if so whether the client had ended its side.
    pub(super) fn take(&mut self, stream: u32) -> Option<bool> {
        let i = self.find(stream)?;
        Some(self.streams.remove(i).1)
    }

    /// Whether `stream` awaits its response.
    pub(super) fn contains(&self, stream: u32) -> bool {
        self.find(stream).is_some()
    }

    /// Whether no stream awaits its response.
    pub(super) fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    fn find(&self, stream: u32) -> Option<usize> {
        self.streams.binary_search_by_key(&stream, |s| s.0).ok()
    }
}

/// Why a reset of a stream that awaits its response refuses a request: the
/// `reason` label, or `None` for a reset that is not a refusal
/// (`REFUSED_STREAM` over the stream limit, `CANCEL`, ...).
pub(super) fn refusal(code: u32) -> Option<&'static str> {
    match code {
        PROTOCOL_ERROR => Some("malformed"),
        INTERNAL_ERROR => Some("connect_body"),
        _ => None,
    }
}

/// A `400` ending `stream`: a HEADERS frame (END_STREAM | END_HEADERS)
/// whose block is HPACK's static `:status: 400`.
pub(super) fn bad_request(stream: u32) -> [u8; BAD_REQUEST_LEN] {
    let id = stream.to_be_bytes();
    [0, 0, 1, 0x1, 0x5, id[0], id[1], id[2], id[3], 0x80 | 12]
}

/// Whether `block`, a whole header block, holds one `:status` field and
/// nothing else (size updates aside): h2's own `431`. Only lengths are
/// read, never the Huffman-coded strings.
pub(super) fn is_lone_status(block: &[u8]) -> bool {
    lone_status(block).unwrap_or(false)
}

fn lone_status(mut block: &[u8]) -> Option<bool> {
    // RFC 7541 §6.3: dynamic table size updates come first.
    while block.first()? & 0xe0 == 0x20 {
        block = integer(block, 5)?.1;
    }
    let first = *block.first()?;
    let (index, rest) = match first {
        // §6.1: an indexed field.
        b if b & 0x80 != 0 => integer(block, 7)?,
        // §6.2.1: a literal with incremental indexing; §6.2.2/§6.2.3:
        // without, or never, indexed. Index 0 means a literal name follows.
        b => {
            let prefix = if b & 0x40 != 0 { 6 } else { 4 };
            let (index, rest) = integer(block, prefix)?;
            let rest = if index == 0 { string(rest)? } else { rest };
            (index, string(rest)?)
        }
    };
    // Static indexes 8 to 14 are `:status`; from 62 on the dynamic table,
    // where h2 put its `:status: 431` the first time it sent one.
    let status = (8..=14).contains(&index) || index >= 62;
    Some(rest.is_empty() && status)
}

/// An HPACK integer with an `n`-bit prefix (RFC 7541 §5.1), and what
/// follows it.
fn integer(bytes: &[u8], n: u32) -> Option<(u64, &[u8])> {
    let max = (1u64 << n) - 1;
    let (first, mut rest) = bytes.split_first()?;
    let mut value = u64::from(*first) & max;
    if value < max {
        return Some((value, rest));
    }
    for shift in (0..).step_by(7).take(8) {
        let (byte, tail) = rest.split_first()?;
        rest = tail;
        value += u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some((value, rest));
        }
    }
    None
}

/// Skips an HPACK string literal (RFC 7541 §5.2).
fn string(bytes: &[u8]) -> Option<&[u8]> {
    let (len, rest) = integer(bytes, 7)?;
    rest.get(usize::try_from(len).ok()?..)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_awaits_until_its_response_or_reset() {
        let mut awaiting = Awaiting::default();
        awaiting.opened(1, true);
        awaiting.opened(3, false);
        awaiting.opened(5, false);
        awaiting.client_done(3);
        assert!(awaiting.contains(5));
        assert_eq!(awaiting.take(3), Some(true));
        assert_eq!(awaiting.take(3), None, "once");
        assert_eq!(awaiting.take(5), Some(false));
        assert_eq!(awaiting.take(1), Some(true));
        assert!(awaiting.is_empty());
    }

    #[test]
    fn tracking_is_bounded() {
        let mut awaiting = Awaiting::default();
        for stream in (1..).step_by(2).take(MAX_AWAITING + 10) {
            awaiting.opened(stream, false);
        }
        assert_eq!(awaiting.streams.len(), MAX_AWAITING);
        assert!(!awaiting.contains(2 * MAX_AWAITING as u32 + 1));
    }

    #[test]
    fn only_protocol_and_internal_errors_refuse_a_request() {
        assert_eq!(refusal(0x1), Some("malformed"));
        assert_eq!(refusal(0x2), Some("connect_body"));
        for code in [0x0, 0x7, 0x8, 0xb] {
            assert_eq!(refusal(code), None, "{code}");
        }
    }

    #[test]
    fn the_400_is_a_whole_headers_frame_on_its_stream() {
        let frame = bad_request(0x0102_0305);
        assert_eq!(&frame[..3], [0, 0, 1], "a one-byte block");
        assert_eq!(
            (frame[3], frame[4]),
            (0x1, 0x5),
            "HEADERS, END_STREAM|END_HEADERS"
        );
        assert_eq!(&frame[5..9], [1, 2, 3, 5]);
        assert_eq!(frame[9], 0x8c, "static index 12, :status 400");
    }

    #[test]
    fn h2s_431_is_a_lone_status_whichever_way_it_is_encoded() {
        // Literal with incremental indexing, name `:status` (index 8),
        // value "431" raw and Huffman-coded.
        assert!(is_lone_status(&[0x48, 0x03, b'4', b'3', b'1']));
        assert!(is_lone_status(&[0x48, 0x82, 0x68, 0x61]));
        // The same, once it is in the dynamic table, after a size update.
        assert!(is_lone_status(&[0xbe]));
        assert!(is_lone_status(&[0x3f, 0xe1, 0x1f, 0xbe]));
        // Without indexing.
        assert!(is_lone_status(&[0x08, 0x03, b'4', b'3', b'1']));
    }

    #[test]
    fn a_response_with_more_than_its_status_is_not_h2s() {
        // `:status: 200` then `date` (static name 33) with a value.
        let mut block = vec![0x88, 0x61, 0x03];
        block.extend_from_slice(b"Mon");
        assert!(!is_lone_status(&block));
        // A lone field that is not `:status` (`:path: /`, index 4).
        assert!(!is_lone_status(&[0x84]));
        // Cut short, or empty.
        assert!(!is_lone_status(&[0x48, 0x03, b'4']));
        assert!(!is_lone_status(&[]));
        assert!(!is_lone_status(&[0x3f]));
    }

    #[test]
    fn integers_follow_rfc_7541_c_1() {
        assert_eq!(integer(&[0x0a], 5), Some((10, &[][..])));
        assert_eq!(integer(&[0x1f, 0x9a, 0x0a], 5), Some((1337, &[][..])));
        assert_eq!(integer(&[0x1f, 0x9a], 5), None, "cut short");
        let mut long = vec![0x1f];
        long.extend([0xff; 11]);
        assert_eq!(integer(&long, 5), None, "too long");
    }
}
