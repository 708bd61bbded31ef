//! The backend handshake on the wire, without an HTTP client.
//!
//! A dial is one request and one answer on a fresh connection, so hyper's
//! client machinery (a spawned connection task and a channel per dial, 8 KiB
//! read and write buffers) buys nothing here. The upgrade request is written
//! with one write from a per-thread reused buffer; the answer's head is read
//! into the same buffer and parsed with `httparse`, the parser hyper uses.
//! Bytes that follow the head (frames a backend sent right behind its 101)
//! are handed on, never lost.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::StatusCode;
use tokio::io::{AsyncWriteExt, ReadBuf};

use crate::net::short_read::RelayRead;
use crate::upstream::BackendStream;

/// Largest answer head accepted. A 101 is a few hundred bytes; a refusal's
/// head rarely more than a few KiB.
pub(super) const MAX_HEAD: usize = 64 * 1024;

/// Most header lines in an answer head (hyper's default too).
const MAX_HEADERS: usize = 100;

/// Header lines a first parse makes room for: a 101 has a handful.
const FEW_HEADERS: usize = 16;

/// The first read's size, and how much the buffer grows per further read.
const READ_CHUNK: usize = 4 * 1024;

/// Free buffers kept per thread; a busy thread needs about one per dial in
/// flight.
const FREE_PER_THREAD: usize = 16;

/// A buffer that grew past this is freed rather than kept for reuse.
const KEEP_UP_TO: usize = 16 * 1024;

thread_local! {
    /// This thread's free buffers.
    static FREE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// A buffer for one dial: the request, then the answer's head. Back in this
/// thread's free list when dropped. Its length is how much of it has ever
/// been written (initialized), so reuse never zeroes it again.
pub(super) struct Scratch(Vec<u8>);

impl Scratch {
    /// A free buffer of this thread, or a new one.
    pub(super) fn take() -> Self {
        let reused = FREE.try_with(|free| free.borrow_mut().pop()).ok().flatten();
        Scratch(reused.unwrap_or_else(|| vec![0; READ_CHUNK]))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.0);
        if buf.len() > KEEP_UP_TO {
            return;
        }
        let _ = FREE.try_with(|free| {
            let mut free = free.borrow_mut();
            if free.len() < FREE_PER_THREAD {
                free.push(buf);
            }
        });
    }
}

/// Writes `GET path HTTP/1.1` and `headers` into `buf` and sends it with
/// one write (more only if the socket takes less).
pub(super) async fn send_request(
    stream: &mut BackendStream,
    buf: &mut Scratch,
    path: &str,
    headers: &HeaderMap,
) -> io::Result<()> {
    let buf = &mut buf.0;
    let mut request = Cursor(buf, 0);
    request.put(b"GET ");
    request.put(path.as_bytes());
    request.put(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        request.put(name.as_str().as_bytes());
        request.put(b": ");
        request.put(value.as_bytes());
        request.put(b"\r\n");
    }
    request.put(b"\r\n");
    let len = request.1;
    stream.write_all(&buf[..len]).await?;
    // A TLS stream may still hold records; a TCP flush is free.
    stream.flush().await
}

/// Writes over an initialized buffer from the start, growing it only past
/// its end: `.1` is how far it has written.
struct Cursor<'b>(&'b mut Vec<u8>, usize);

impl Cursor<'_> {
    fn put(&mut self, bytes: &[u8]) {
        let end = self.1 + bytes.len();
        if end > self.0.len() {
            self.0.resize(end, 0);
        }
        self.0[self.1..end].copy_from_slice(bytes);
        self.1 = end;
    }
}

/// The head of the backend's answer (1xx informational answers other than
/// 101 are skipped, as hyper does).
#[derive(Debug)]
pub(super) struct Head {
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    /// Where the head ends in the buffer.
    len: usize,
    /// How many bytes the buffer holds: the head and what followed it.
    filled: usize,
}

/// Why no head was read.
#[derive(Debug)]
pub(super) enum HeadError {
    /// The connection ended or failed before a complete head: the backend
    /// said nothing usable, so another backend may be tried.
    Hangup(io::Error),
    /// The backend answered something that is not an HTTP/1.1 head.
    Invalid(String),
}

/// Reads and parses the answer's head into `buf`.
pub(super) async fn read_head(
    stream: &mut BackendStream,
    buf: &mut Scratch,
) -> Result<Head, HeadError> {
    let buf = &mut buf.0;
    let mut filled = 0;
    loop {
        if filled == buf.len() {
            if buf.len() >= MAX_HEAD {
                return Err(HeadError::Invalid(format!(
                    "answer head larger than {} KiB",
                    MAX_HEAD / 1024
                )));
            }
            buf.resize((buf.len() + READ_CHUNK).min(MAX_HEAD), 0);
        }
        let n = read_some(stream, &mut buf[filled..])
            .await
            .map_err(HeadError::Hangup)?;
        if n == 0 {
            let closed = io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before a complete answer",
            );
            return Err(HeadError::Hangup(closed));
        }
        filled += n;
        while let Some(head) = parse(&buf[..filled]).map_err(HeadError::Invalid)? {
            if head.status.is_informational() && head.status != StatusCode::SWITCHING_PROTOCOLS {
                buf.copy_within(head.len..filled, 0);
                filled -= head.len;
                continue;
            }
            return Ok(Head { filled, ..head });
        }
    }
}

impl Head {
    /// The bytes that followed the head (early frames, or a body's start).
    pub(super) fn rest<'b>(&self, buf: &'b Scratch) -> &'b [u8] {
        &buf.0[self.len..self.filled]
    }

    /// The head and everything read after it.
    pub(super) fn all<'b>(&self, buf: &'b Scratch) -> &'b [u8] {
        &buf.0[..self.filled]
    }
}

/// One read; a short TCP read tells tokio the socket is drained, so the
/// relay that follows does not pay a `recv` to hear "empty".
async fn read_some(stream: &mut BackendStream, into: &mut [u8]) -> io::Result<usize> {
    let mut read = ReadBuf::new(into);
    poll_fn(|cx| stream.poll_relay_read(cx, &mut read)).await?;
    Ok(read.filled().len())
}

/// A complete head at the start of `bytes`, `None` if more is needed.
fn parse(bytes: &[u8]) -> Result<Option<Head>, String> {
    // A 101 has a handful of headers: a short array first (an array of
    // [`MAX_HEADERS`] empty headers is 3.2 KB written per parse, more than
    // the head itself), the full one only for a head that needs it.
    let mut few = [httparse::EMPTY_HEADER; FEW_HEADERS];
    match parse_into(bytes, &mut few) {
        Err(httparse::Error::TooManyHeaders) => {
            let mut many = [httparse::EMPTY_HEADER; MAX_HEADERS];
            parse_into(bytes, &mut many)
        }
        parsed => parsed,
    }
    .map_err(|e| format!("invalid answer head: {e}"))?
}

/// [`parse`] with room for `lines.len()` headers; the outer error is
/// httparse's, the inner one a head httparse took but `http` does not.
fn parse_into<'b>(
    bytes: &'b [u8],
    lines: &mut [httparse::Header<'b>],
) -> Result<Result<Option<Head>, String>, httparse::Error> {
    let mut response = httparse::Response::new(lines);
    let len = match response.parse(bytes)? {
        httparse::Status::Complete(len) => len,
        httparse::Status::Partial => return Ok(Ok(None)),
    };
    Ok(head(&response, len, bytes.len()))
}

/// The parsed head in `http`'s types.
fn head(
    response: &httparse::Response<'_, '_>,
    len: usize,
    filled: usize,
) -> Result<Option<Head>, String> {
    let code = response.code.unwrap_or_default();
    let status = StatusCode::from_u16(code).map_err(|_| format!("invalid status {code}"))?;
    let mut headers = HeaderMap::with_capacity(response.headers.len());
    for line in response.headers.iter() {
        let name = HeaderName::from_bytes(line.name.as_bytes())
            .map_err(|_| format!("invalid header name {:?}", line.name))?;
        let value = HeaderValue::from_bytes(line.value)
            .map_err(|_| format!("invalid value of header {name}"))?;
        headers.append(name, value);
    }
    Ok(Some(Head {
        status,
        headers,
        len,
        filled,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_is_parsed_and_what_follows_it_is_kept_apart() {
        let bytes = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n\x81\x02hi";
        let head = parse(bytes).unwrap().unwrap();
        assert_eq!(head.status, StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(head.headers["upgrade"], "websocket");
        assert_eq!(head.headers.get_all("set-cookie").iter().count(), 2);
        assert_eq!(&bytes[head.len..], b"\x81\x02hi");
    }

    #[test]
    fn partial_heads_wait_and_garbage_is_invalid() {
        assert!(parse(b"HTTP/1.1 101 Switching").unwrap().is_none());
        assert!(parse(b"HTTP/1.1 101 OK\r\nUpgrade: web").unwrap().is_none());
        assert!(parse(b"SSH-2.0-OpenSSH_9.2\r\n\r\n").is_err());
        assert!(parse(b"HTTP/1.1 101 OK\r\nBad Name: x\r\n\r\n").is_err());
        let some: String = (0..FEW_HEADERS * 2)
            .map(|i| format!("X-{i}: v\r\n"))
            .collect();
        let head = parse(format!("HTTP/1.1 101 OK\r\n{some}\r\n").as_bytes());
        assert_eq!(head.unwrap().unwrap().headers.len(), FEW_HEADERS * 2);
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
        assert!(parse(format!("HTTP/1.1 200 OK\r\n{many}\r\n").as_bytes()).is_err());
    }

    #[test]
    fn scratch_buffers_are_reused_on_the_same_thread() {
        let first = Scratch::take();
        assert!(
            first.0.len() >= READ_CHUNK,
            "initialized once, reused as is"
        );
        let ptr = first.0.as_ptr();
        drop(first);
        assert_eq!(Scratch::take().0.as_ptr(), ptr);
    }
}
