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

use std::sync::Arc;

use crate::ws::relay::split::WithTcp;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::pool::{Buf, Size};
use super::splice::Pipe;
use super::{RelayConfig, RelayEnd, RelayStats, Side};
use crate::ws::close::{INVALID_PAYLOAD, MESSAGE_TOO_BIG, POLICY_VIOLATION, PROTOCOL_ERROR};
use crate::ws::frame::{FrameError, MAX_CONTROL_PAYLOAD};
use crate::ws::utf8::Utf8Stream;
use inject::Injection;
use rates::ClientRates;

mod inject;
mod rates;
mod transfer;
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
    /// The source is not read until the pump's `resume_at` (byte rate).
    Paused,
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
    /// A message over the client's `client_messages_per_second` → 1008.
    RateLimited,
}

impl Violation {
    /// How the connection fails for it: the code both sides get, the end,
    /// and the close reason.
    pub(super) fn close(self, from: Side) -> (u16, RelayEnd, &'static str) {
        let side = from;
        match (self, from) {
            (Violation::Protocol(error), Side::Client) => (
                PROTOCOL_ERROR,
                RelayEnd::ProtocolError { side, error },
                "protocol error by client",
            ),
            (Violation::Protocol(error), Side::Backend) => (
                PROTOCOL_ERROR,
                RelayEnd::ProtocolError { side, error },
                "protocol error by backend",
            ),
            (Violation::TooBig, Side::Client) => (
                MESSAGE_TOO_BIG,
                RelayEnd::MessageTooBig { side },
                "message too big from client",
            ),
            (Violation::TooBig, Side::Backend) => (
                MESSAGE_TOO_BIG,
                RelayEnd::MessageTooBig { side },
                "message too big from backend",
            ),
            (Violation::InvalidUtf8, Side::Client) => (
                INVALID_PAYLOAD,
                RelayEnd::InvalidUtf8 { side },
                "invalid UTF-8 from client",
            ),
            (Violation::InvalidUtf8, Side::Backend) => (
                INVALID_PAYLOAD,
                RelayEnd::InvalidUtf8 { side },
                "invalid UTF-8 from backend",
            ),
            (Violation::RateLimited, _) => (
                POLICY_VIOLATION,
                RelayEnd::RateLimited,
                "message rate exceeded",
            ),
        }
    }
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
    /// A pipe lent while a payload is spliced ([`splice`](super::splice)):
    /// the rest of that payload goes through it, however short. Bytes in it
    /// are accepted and come before the run.
    pipe: Option<Pipe>,
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
    /// The buffer the next read takes: large after a read that filled its
    /// buffer (the socket has more), small otherwise.
    next_read: Size,
    /// Payload of the gateway's outstanding ping (client → backend pump only).
    pub(super) expect_pong: Option<[u8; 8]>,
    /// When forwarded bytes were last written (idle timeout).
    pub(super) last_forward: Instant,
    max_message_size: u64,
    deflate: bool,
    validate_utf8: bool,
    stats: Arc<RelayStats>,
    /// The client's rate limits (client → backend only; boxed, as most
    /// routes have none).
    rates: Option<Box<ClientRates>>,
}

impl<R: AsyncRead + Unpin + WithTcp, W: AsyncWrite + Unpin + WithTcp> Pump<R, W> {
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
            pipe: None,
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
            next_read: Size::Small,
            expect_pong: None,
            last_forward: Instant::now(),
            max_message_size: cfg.max_message_size,
            deflate: cfg.deflate,
            validate_utf8: cfg.validate_utf8,
            stats,
            rates: match from {
                Side::Client => ClientRates::new(cfg),
                Side::Backend => None,
            },
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
            match self.paused() {
                Some(true) => return Event::Paused,
                // The connection's timer ends the pause.
                Some(false) => return std::future::pending().await,
                None => {}
            }
            let splice = self.start_splice();
            if !std::future::poll_fn(|cx| self.poll_take_in(splice, cx)).await {
                self.mode = if self.at_boundary() && self.mode != Mode::Discard {
                    Mode::Finish { then: Then::Done }
                } else {
                    Mode::Done
                };
                return Event::SrcGone;
            }
        }
    }

    /// Stopped, with nothing left to write.
    pub(super) fn is_idle(&self) -> bool {
        let nothing_to_inject = self.inject.is_none() || !self.can_inject();
        let written = self.out == self.pos && self.in_pipe() == 0;
        let flushed = self.dst_dead || (written && !self.needs_flush);
        self.mode == Mode::Done && nothing_to_inject && flushed
    }

    /// Shuts the destination's write side down (TCP FIN / TLS close_notify).
    pub(super) async fn shutdown_dst(&mut self) {
        if !self.dst_dead {
            // The connection is over either way; a failure here changes nothing.
            let _ = self.dst.shutdown().await;
        }
    }

    /// Spliced bytes not yet written.
    fn in_pipe(&self) -> usize {
        self.pipe.as_ref().map_or(0, Pipe::len)
    }

    fn at_boundary(&self) -> bool {
        matches!(self.frame, FrameState::Boundary)
    }

    fn wants_read(&self) -> bool {
        match self.mode {
            Mode::Forward | Mode::Discard => true,
            Mode::Finish { .. } => !self.at_boundary(),
            Mode::Done => false,
        }
    }
}
