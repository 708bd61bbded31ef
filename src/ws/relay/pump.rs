//! One direction of the relay: read a source, walk its frame headers, write
//! the forwardable byte ranges to the destination.
//!
//! Bytes between `out` and `pos` in the buffer are parsed and accepted but
//! not yet written; `pos..end` is read but not yet parsed. Because `out..pos`
//! is always one contiguous run, forwarding many small frames costs one write,
//! and nothing is read while the run is unwritten (backpressure). Frames the
//! gateway injects (pings, closes) wait for a frame boundary of the
//! destination so they never land inside a forwarded frame.
//!
//! The buffer is borrowed from the [`pool`](super::pool) for a read that
//! returns data and given back once all of it is forwarded; a read that is
//! not ready returns it at once. Between reads the only bytes a pump keeps
//! are an incomplete header or control frame, inline in a [`Carry`].

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::Instant;

use super::pool::Buf;
use super::{RelayConfig, RelayStats, Side};
use crate::ws::frame::{ControlFrame, FrameError, MAX_CONTROL_PAYLOAD};
use crate::ws::utf8::Utf8Stream;

mod walk;

/// What a [`Pump::step`] reports to the connection.
#[derive(Debug)]
pub(super) enum Event {
    /// The source sent a close frame (forwarded unless the pump was draining).
    Close {
        /// Its status code.
        code: Option<u16>,
    },
    /// A pong answering the gateway's own ping arrived and was swallowed.
    OurPong,
    /// A frame the gateway injected has been written completely.
    Injected(Injected),
    /// The source broke a rule; nothing of the offending frame was forwarded.
    Violation(Violation),
    /// The source ended (EOF or read error) without a close frame.
    SrcGone,
    /// Writing to the destination failed.
    DstGone,
    /// The pump has stopped and has nothing left to write.
    Idle,
}

/// Kinds of frames the gateway injects.
#[derive(Debug, Clone, Copy)]
pub(super) enum Injected {
    /// A keepalive ping to the client.
    Ping,
    /// A close frame with this status code.
    Close(u16),
}

/// Rule breaks that end the connection.
#[derive(Debug, Clone, Copy)]
pub(super) enum Violation {
    /// RFC 6455 violation → 1002.
    Protocol(FrameError),
    /// Message over `max_message_size` → 1009.
    TooBig,
    /// Text message that is not UTF-8 → 1007.
    InvalidUtf8,
}

/// Where the source stream is relative to frame boundaries.
#[derive(Debug, Clone, Copy)]
enum FrameState {
    /// The next byte starts a frame header.
    Boundary,
    /// Inside a data frame's payload.
    Payload {
        /// Payload bytes still to come.
        remaining: u64,
        /// The frame ends its message.
        fin: bool,
        /// Forwarded (true) or discarded while draining.
        forward: bool,
        /// Where the payload is checked for UTF-8 as it passes (a text frame
        /// that was not wholly buffered when its header was read).
        utf8: Option<Unmask>,
    },
}

/// What it takes to read a frame's payload bytes in plain text.
#[derive(Debug, Clone, Copy)]
struct Unmask {
    /// The frame's masking key (client frames).
    mask: Option<[u8; 4]>,
    /// Payload bytes of the frame already checked, modulo 4: where in the
    /// key the next byte starts.
    phase: u8,
}

/// Whether the source is inside a fragmented data message.
#[derive(Debug, Clone, Copy)]
enum Message {
    /// Between messages.
    Idle,
    /// After a non-final data frame; `size` counts payload so far.
    Fragmented { size: u64 },
}

/// What the pump does with its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// Relay frames.
    Forward,
    /// Finish the current frame, write any injected frame, then switch.
    Finish { then: Then },
    /// Read and drop frames until the source's close frame arrives.
    Discard,
    /// Read nothing more; only write out what is pending.
    Done,
}

/// The mode after [`Mode::Finish`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Then {
    /// Wait for the source's close reply.
    Discard,
    /// Stop reading.
    Done,
}

/// The longest unparsed tail a pump can hold when it reads again: an
/// incomplete control frame (a masked header of 6 bytes and up to 125 bytes
/// of payload); an incomplete data frame header is shorter still.
const CARRY_CAP: usize = 6 + MAX_CONTROL_PAYLOAD;

/// Unparsed bytes kept inline while the pump holds no buffer.
struct Carry {
    bytes: [u8; CARRY_CAP],
    /// How many of `bytes` are kept (at most `CARRY_CAP`).
    len: u8,
}

/// A gateway frame waiting or being written. Only what it says is kept (not
/// its up to 131 encoded bytes); it is encoded again for each write attempt,
/// identically, so a half-written frame resumes where it stopped.
struct Injection {
    kind: Injected,
    /// The ping's payload (pings only).
    ping: [u8; 8],
    /// The close reason (closes only).
    reason: &'static str,
    mask: Option<[u8; 4]>,
    /// Bytes of the encoded frame already written.
    written: u8,
}

impl Injection {
    fn encode(&self) -> ControlFrame {
        match self.kind {
            Injected::Ping => ControlFrame::ping(&self.ping, self.mask),
            Injected::Close(code) => ControlFrame::close(code, self.reason, self.mask),
        }
    }
}

/// Outcome of looking at the next frame header.
enum Next {
    Progress,
    Wait,
    Event(Event),
}

/// One direction: `from` → the other side.
pub(super) struct Pump<R, W> {
    /// The side the source stream belongs to.
    from: Side,
    src: R,
    dst: W,
    /// The read buffer, only while read bytes are unforwarded; never grows.
    buf: Option<Buf>,
    /// An incomplete header or control frame kept while `buf` is pooled.
    carry: Carry,
    /// Start of the accepted-but-unwritten run.
    out: usize,
    /// End of the parsed bytes.
    pos: usize,
    /// End of the bytes read.
    end: usize,
    frame: FrameState,
    message: Message,
    /// UTF-8 state of the text message being forwarded, if it is checked.
    text: Option<Utf8Stream>,
    mode: Mode,
    /// Frame to write at the next boundary, and one queued behind a
    /// half-written one.
    inject: Option<Injection>,
    queued: Option<Injection>,
    /// A close to send the destination once the source answers the close
    /// it was sent, in place of that answer (see [`Pump::close_dst_after_reply`]).
    close_on_reply: Option<(u16, &'static str)>,
    /// A close went to the destination: nothing else may follow it.
    dst_closed: bool,
    /// The destination failed; drop everything meant for it.
    dst_dead: bool,
    needs_flush: bool,
    /// `Event::Idle` was reported; report it again only after new work.
    idle_reported: bool,
    /// Payload of the gateway's outstanding ping (client → backend pump only).
    pub(super) expect_pong: Option<[u8; 8]>,
    /// When forwarded bytes were last written (idle timeout).
    pub(super) last_forward: Instant,
    max_message_size: u64,
    deflate: bool,
    validate_utf8: bool,
    stats: Arc<RelayStats>,
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Pump<R, W> {
    /// A pump forwarding from `src` (belonging to `from`) to `dst`.
    pub(super) fn new(
        from: Side,
        src: R,
        dst: W,
        cfg: &RelayConfig,
        stats: Arc<RelayStats>,
    ) -> Self {
        Self {
            from,
            src,
            dst,
            buf: None,
            carry: Carry {
                bytes: [0; CARRY_CAP],
                len: 0,
            },
            out: 0,
            pos: 0,
            end: 0,
            frame: FrameState::Boundary,
            message: Message::Idle,
            text: None,
            mode: Mode::Forward,
            inject: None,
            queued: None,
            close_on_reply: None,
            dst_closed: false,
            dst_dead: false,
            needs_flush: false,
            idle_reported: false,
            expect_pong: None,
            last_forward: Instant::now(),
            max_message_size: cfg.max_message_size,
            deflate: cfg.deflate,
            validate_utf8: cfg.validate_utf8,
            stats,
        }
    }

    /// Runs until something the connection must know about happens.
    ///
    /// Cancel-safe: every await either completes a write/read whose result
    /// is recorded in `self`, or has done nothing.
    pub(super) async fn step(&mut self) -> Event {
        loop {
            if self.write_run().await.is_err() {
                return Event::DstGone;
            }
            match self.write_injection().await {
                Err(_) => return Event::DstGone,
                Ok(Some(kind)) => return Event::Injected(kind),
                Ok(None) => {}
            }
            if let Some(event) = self.process() {
                return event;
            }
            if self.out < self.pos {
                continue;
            }
            if self.flush().await.is_err() {
                return Event::DstGone;
            }
            if !self.wants_read() {
                if self.mode == Mode::Done {
                    // Nothing more will be parsed: the tail is dead weight,
                    // dropped rather than added to the run (`out == pos` here).
                    self.pos = self.end;
                    self.out = self.end;
                    self.park();
                }
                if !self.idle_reported {
                    self.idle_reported = true;
                    return Event::Idle;
                }
                return std::future::pending().await;
            }
            self.park();
            if !self.read().await {
                self.mode = if self.at_boundary() && self.mode != Mode::Discard {
                    Mode::Finish { then: Then::Done }
                } else {
                    Mode::Done
                };
                return Event::SrcGone;
            }
        }
    }

    /// Queues a close frame to the destination and stops forwarding after
    /// the current frame. Returns false if a close already went there. A
    /// close waiting for the source's reply goes now instead of this one.
    pub(super) fn close_dst(&mut self, code: u16, reason: &'static str, then: Then) -> bool {
        let (code, reason) = self.close_on_reply.take().unwrap_or((code, reason));
        self.stop(then);
        if self.dst_closed || self.dst_dead {
            return false;
        }
        self.dst_closed = true;
        self.push_injection(Injection {
            kind: Injected::Close(code),
            ping: [0; 8],
            reason,
            mask: self.dst_mask(),
            written: 0,
        });
        true
    }

    /// Keeps forwarding until the source answers the close it has been sent,
    /// then sends this close to the destination instead of that answer: what
    /// the source sent before its answer still arrives first, as it would if
    /// the destination were talking to the source directly. Bounded by the
    /// connection's close deadline.
    pub(super) fn close_dst_after_reply(&mut self, code: u16, reason: &'static str) {
        if self.mode == Mode::Forward && !self.dst_closed && !self.dst_dead {
            self.close_on_reply = Some((code, reason));
        } else {
            self.close_dst(code, reason, Then::Done);
        }
    }

    /// Sends a close still waiting for the source's reply now; false if
    /// there is none.
    pub(super) fn close_dst_without_reply(&mut self) -> bool {
        let Some((code, reason)) = self.close_on_reply else {
            return false;
        };
        self.close_dst(code, reason, Then::Done)
    }

    /// Queues a ping to the destination; false if it cannot go now.
    pub(super) fn queue_ping(&mut self, payload: [u8; 8]) -> bool {
        if self.mode != Mode::Forward || self.dst_closed || self.dst_dead || self.inject.is_some() {
            return false;
        }
        self.push_injection(Injection {
            kind: Injected::Ping,
            ping: payload,
            reason: "",
            mask: self.dst_mask(),
            written: 0,
        });
        true
    }

    /// Stops forwarding once the current frame is done.
    pub(super) fn stop(&mut self, then: Then) {
        self.idle_reported = false;
        self.mode = match self.mode {
            Mode::Forward => Mode::Finish { then },
            Mode::Finish { then: old } if old == Then::Done || then == Then::Done => {
                Mode::Finish { then: Then::Done }
            }
            Mode::Discard if then == Then::Done => Mode::Done,
            mode => mode,
        };
    }

    /// The destination is gone: drop everything meant for it.
    pub(super) fn mark_dst_dead(&mut self) {
        self.dst_dead = true;
        self.dst_closed = true;
        self.out = self.pos;
        self.inject = None;
        self.queued = None;
        self.idle_reported = false;
    }

    /// Whether a queued frame will ever be written (false when the source
    /// stopped in the middle of a frame, or the destination is dead).
    pub(super) fn can_inject(&self) -> bool {
        !self.dst_dead && (self.at_boundary() || self.mode != Mode::Done)
    }

    /// Stopped, with nothing left to write.
    pub(super) fn is_idle(&self) -> bool {
        let nothing_to_inject = self.inject.is_none() || !self.can_inject();
        let flushed = self.dst_dead || (self.out == self.pos && !self.needs_flush);
        self.mode == Mode::Done && nothing_to_inject && flushed
    }

    /// Shuts the destination's write side down (TCP FIN / TLS close_notify).
    pub(super) async fn shutdown_dst(&mut self) {
        if !self.dst_dead {
            // The connection is over either way; a failure here changes nothing.
            let _ = self.dst.shutdown().await;
        }
    }

    fn at_boundary(&self) -> bool {
        matches!(self.frame, FrameState::Boundary)
    }

    /// Frames to a backend must be masked (RFC 6455 §5.3), with a fresh key.
    fn dst_mask(&self) -> Option<[u8; 4]> {
        (self.from == Side::Client).then(rand::random::<[u8; 4]>)
    }

    fn push_injection(&mut self, injection: Injection) {
        self.idle_reported = false;
        match &self.inject {
            Some(current) if current.written > 0 => self.queued = Some(injection),
            _ => self.inject = Some(injection),
        }
    }

    fn wants_read(&self) -> bool {
        match self.mode {
            Mode::Forward | Mode::Discard => true,
            Mode::Finish { .. } => !self.at_boundary(),
            Mode::Done => false,
        }
    }

    /// Writes the accepted run; one write call per contiguous batch.
    async fn write_run(&mut self) -> io::Result<()> {
        while self.out < self.pos {
            if self.dst_dead {
                self.out = self.pos;
                break;
            }
            let Some(buf) = &self.buf else { break };
            match self.dst.write(&buf[self.out..self.pos]).await {
                Ok(0) => return Err(self.dst_failed(io::ErrorKind::WriteZero.into())),
                Err(e) => return Err(self.dst_failed(e)),
                Ok(n) => {
                    self.out += n;
                    self.needs_flush = true;
                    self.last_forward = Instant::now();
                }
            }
        }
        Ok(())
    }

    /// At a frame boundary, writes the pending gateway frame (if any) and
    /// completes a [`Mode::Finish`].
    async fn write_injection(&mut self) -> io::Result<Option<Injected>> {
        if !self.can_inject() {
            self.inject = None;
            self.queued = None;
        }
        if !self.at_boundary() {
            return Ok(None);
        }
        let Some(injection) = self.inject.as_mut() else {
            if let Mode::Finish { then } = self.mode {
                self.mode = if then == Then::Done {
                    Mode::Done
                } else {
                    Mode::Discard
                };
            }
            return Ok(None);
        };
        let dst = &mut self.dst;
        // Encoded inside the poll, so no frame bytes live across an await.
        let result = std::future::poll_fn(|cx| loop {
            let frame = injection.encode();
            let bytes = &frame.as_bytes()[usize::from(injection.written)..];
            if bytes.is_empty() {
                return Poll::Ready(Ok(injection.kind));
            }
            match std::task::ready!(Pin::new(&mut *dst).poll_write(cx, bytes)) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Err(e) => return Poll::Ready(Err(e)),
                // Fits in u8: a control frame is at most 131 bytes.
                Ok(n) => injection.written += n as u8,
            }
        })
        .await;
        let kind = result.map_err(|e| self.dst_failed(e))?;
        self.needs_flush = true;
        self.inject = self.queued.take();
        Ok(Some(kind))
    }

    async fn flush(&mut self) -> io::Result<()> {
        if self.needs_flush && !self.dst_dead {
            if let Err(e) = self.dst.flush().await {
                return Err(self.dst_failed(e));
            }
        }
        self.needs_flush = false;
        Ok(())
    }

    fn dst_failed(&mut self, e: io::Error) -> io::Error {
        self.mark_dst_dead();
        e
    }

    /// The bytes read and not yet given back (empty while parked).
    pub(super) fn data(&self) -> &[u8] {
        self.buf.as_deref().unwrap_or(&[])
    }

    /// Gives the buffer back once everything accepted has been written,
    /// keeping the unparsed tail (an incomplete header or control frame)
    /// inline. A longer tail only exists while the pump is leaving
    /// [`Mode::Forward`]; the buffer is then kept until it is walked.
    fn park(&mut self) {
        let Some(buf) = &self.buf else { return };
        let tail = &buf[self.pos..self.end];
        if self.out < self.pos || tail.len() > CARRY_CAP {
            return;
        }
        self.carry.bytes[..tail.len()].copy_from_slice(tail);
        // Fits in u8: at most CARRY_CAP bytes.
        self.carry.len = tail.len() as u8;
        (self.out, self.pos, self.end) = (0, 0, 0);
        self.buf = None;
    }

    /// Reads more from the source; false on EOF or error. Only called when
    /// everything accepted has been written.
    async fn read(&mut self) -> bool {
        std::future::poll_fn(|cx| self.poll_read(cx)).await
    }

    /// Reads into a pooled buffer that starts with the carried tail; a read
    /// that is not ready hands the buffer straight back, so waiting for the
    /// peer holds none. A pump that could not park reads into its own buffer.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        let held = self.buf.is_some();
        let (mut buf, kept) = match self.buf.take() {
            Some(mut buf) => {
                buf.copy_within(self.pos..self.end, 0);
                (buf, self.end - self.pos)
            }
            None => {
                let mut buf = Buf::take();
                let kept = usize::from(self.carry.len);
                buf[..kept].copy_from_slice(&self.carry.bytes[..kept]);
                (buf, kept)
            }
        };
        (self.out, self.pos, self.end) = (0, 0, kept);
        let mut read_buf = ReadBuf::new(&mut buf[kept..]);
        let n = match Pin::new(&mut self.src).poll_read(cx, &mut read_buf) {
            Poll::Ready(Ok(())) => read_buf.filled().len(),
            Poll::Ready(Err(_)) => 0,
            Poll::Pending if held => {
                self.buf = Some(buf);
                return Poll::Pending;
            }
            Poll::Pending => {
                (self.pos, self.end) = (0, 0);
                return Poll::Pending;
            }
        };
        if held || n > 0 {
            self.carry.len = 0;
            self.end = kept + n;
            self.buf = Some(buf);
        } else {
            // EOF while parked: the tail stays in the carry, unparsed.
            self.end = 0;
        }
        Poll::Ready(n > 0)
    }
}
