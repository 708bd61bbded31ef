//! Walking the source's frames in the read buffer: the protocol rules.
//!
//! Kept apart from the I/O half of the pump so the rules read as one list:
//! masking direction, fragmentation order, message size, UTF-8 of text
//! messages, and the control frames the gateway has to look into (close,
//! its own pongs).
//!
//! A text frame wholly in the buffer when its header is read is checked
//! before any of it is forwarded, like every other violation. A longer one is
//! checked as its bytes pass; if it turns out not to be UTF-8, the rest of
//! that frame still goes out (a close cannot be sent mid-frame) and the
//! close 1007 follows it.

use crate::ws::relay::split::WithTcp;
use std::sync::atomic::Ordering;

use tokio::io::{AsyncRead, AsyncWrite};

use super::{Event, FrameState, Message, Mode, Next, Pump, Then, Unmask, Violation};
use crate::ws::frame::{
    apply_mask, parse_close_payload, parse_header, FrameError, FrameHeader, OpCode,
    MAX_CONTROL_PAYLOAD,
};
use crate::ws::relay::{Count, Side};
use crate::ws::utf8::Utf8Stream;

impl<R: AsyncRead + Unpin + WithTcp, W: AsyncWrite + Unpin + WithTcp> Pump<R, W> {
    /// Walks the unparsed bytes, growing the run, until more input (or a
    /// write) is needed or an event happens.
    pub(super) fn process(&mut self) -> Option<Event> {
        loop {
            if !self.take_payload() {
                self.text = None;
                return match self.violation(Violation::InvalidUtf8) {
                    Next::Event(event) => Some(event),
                    _ => None,
                };
            }
            if !self.at_boundary() || !matches!(self.mode, Mode::Forward | Mode::Discard) {
                return None;
            }
            match self.next_frame() {
                Next::Progress => {}
                Next::Wait => return None,
                Next::Event(event) => return Some(event),
            }
        }
    }

    /// Accepts as much of the current data frame's payload as is buffered;
    /// false if those bytes show a text message is not UTF-8 (they are
    /// accepted all the same).
    fn take_payload(&mut self) -> bool {
        let FrameState::Payload {
            remaining,
            fin,
            forward,
            utf8,
        } = self.frame
        else {
            return true;
        };
        // Fits in usize: bounded by the buffered byte count.
        let n = remaining.min((self.end - self.pos) as u64);
        let valid = match (utf8, &mut self.text) {
            (Some(unmask), Some(text)) => {
                let data = self.buf.as_deref().unwrap_or(&[]);
                let bytes = &data[self.pos..self.pos + n as usize];
                let ends_message = fin && n == remaining;
                text.feed_payload(bytes, unmask.mask, unmask.phase)
                    && (!ends_message || text.is_complete())
            }
            _ => true,
        };
        self.pos += n as usize;
        if forward {
            self.stats.add_bytes(self.from, n);
        } else {
            self.out = self.pos;
        }
        if n < remaining {
            self.frame = FrameState::Payload {
                remaining: remaining - n,
                fin,
                forward,
                utf8: utf8.map(|u| Unmask {
                    // Only n's remainder matters; the result is below 4.
                    phase: ((u64::from(u.phase) + n) % 4) as u8,
                    ..u
                }),
            };
            return valid;
        }
        self.frame = FrameState::Boundary;
        if fin && forward {
            self.stats.add_message(self.from);
        }
        valid
    }

    /// Accepts `n` payload bytes of the current frame that were spliced
    /// into the pipe (the frame is forwarded and not checked for UTF-8).
    pub(super) fn accept_spliced(&mut self, n: u64) {
        let FrameState::Payload { remaining, fin, .. } = self.frame else {
            return;
        };
        self.stats.add_bytes(self.from, n);
        self.stats.spliced_bytes.fetch_add(n, Ordering::Relaxed);
        if n < remaining {
            self.frame = FrameState::Payload {
                remaining: remaining - n,
                fin,
                forward: true,
                utf8: None,
            };
            return;
        }
        self.frame = FrameState::Boundary;
        if fin {
            self.stats.add_message(self.from);
        }
    }

    fn next_frame(&mut self) -> Next {
        let parsed = parse_header(&self.data()[self.pos..self.end], self.deflate)
            .and_then(|h| h.map(|h| self.check_mask(h)).transpose());
        let header = match parsed {
            Ok(Some(header)) => header,
            Ok(None) => return Next::Wait,
            Err(error) => return self.violation(Violation::Protocol(error)),
        };
        if header.opcode.is_control() {
            return self.control_frame(header);
        }
        let forward = self.mode == Mode::Forward;
        let mut utf8 = None;
        if forward {
            if let Err(violation) = self.check_message(&header) {
                return self.violation(violation);
            }
            match self.check_text(&header) {
                Ok(check) => utf8 = check,
                Err(violation) => return self.violation(violation),
            }
        }
        self.pos += header.header_len;
        if !forward {
            self.out = self.pos;
        }
        self.frame = FrameState::Payload {
            remaining: header.payload_len,
            fin: header.fin,
            forward,
            utf8,
        };

        Next::Progress
    }

    /// Starts or continues the UTF-8 check of a text message. A frame that
    /// is wholly buffered is checked now, before any of it is forwarded;
    /// otherwise says how to check its bytes as they pass.
    fn check_text(&mut self, header: &FrameHeader) -> Result<Option<Unmask>, Violation> {
        match header.opcode {
            OpCode::Text if self.validate_utf8 && !header.rsv1 => {
                self.text = Some(Utf8Stream::default());
            }
            OpCode::Text | OpCode::Binary => self.text = None,
            _ => {} // a continuation belongs to the message's check
        }
        let Some(text) = self.text.as_mut() else {
            return Ok(None);
        };
        let start = self.pos + header.header_len;
        let buffered = (self.end - start) as u64;
        if buffered < header.payload_len {
            let unmask = Unmask {
                mask: header.mask,
                phase: 0,
            };
            return Ok(Some(unmask));
        }
        let data = self.buf.as_deref().unwrap_or(&[]);
        // Fits in usize: the payload is buffered.
        let payload = &data[start..start + header.payload_len as usize];
        let valid =
            text.feed_payload(payload, header.mask, 0) && (!header.fin || text.is_complete());
        if !valid {
            self.text = None;
            return Err(Violation::InvalidUtf8);
        }
        Ok(None)
    }

    /// Clients must mask, servers must not (RFC 6455 §5.1).
    fn check_mask(&self, header: FrameHeader) -> Result<FrameHeader, FrameError> {
        match (self.from, header.mask) {
            (Side::Client, None) => Err(FrameError::UnmaskedClientFrame),
            (Side::Backend, Some(_)) => Err(FrameError::MaskedServerFrame),
            _ => Ok(header),
        }
    }

    /// Fragmentation order and the message size limit, checked before any
    /// of the frame is forwarded.
    fn check_message(&mut self, header: &FrameHeader) -> Result<(), Violation> {
        let so_far = match (self.message, header.opcode) {
            (Message::Idle, OpCode::Continuation) => {
                return Err(Violation::Protocol(FrameError::UnexpectedContinuation))
            }
            (Message::Fragmented { .. }, OpCode::Text | OpCode::Binary) => {
                return Err(Violation::Protocol(FrameError::InterleavedMessage))
            }
            (Message::Fragmented { size }, _) => size,
            (Message::Idle, _) if !self.take_message() => return Err(Violation::RateLimited),
            (Message::Idle, _) => 0,
        };
        let size = so_far.saturating_add(header.payload_len);
        if size > self.max_message_size {
            return Err(Violation::TooBig);
        }
        self.message = if header.fin {
            Message::Idle
        } else {
            Message::Fragmented { size }
        };
        Ok(())
    }

    /// While draining, garbage just ends the wait; otherwise it is reported
    /// and the pump stops reading after the connection queues its closes.
    fn violation(&mut self, violation: Violation) -> Next {
        if self.mode == Mode::Discard {
            self.mode = Mode::Done;
            return Next::Wait;
        }
        self.mode = Mode::Finish { then: Then::Done };
        Next::Event(Event::Violation(violation))
    }

    /// Control frames are taken whole (≤ 139 bytes, always fit the buffer)
    /// so close and pong payloads can be inspected on an unmasked stack copy.
    fn control_frame(&mut self, header: FrameHeader) -> Next {
        // parse_header guarantees payload_len <= 125.
        let len = header.payload_len as usize;
        let total = header.header_len + len;
        if self.end - self.pos < total {
            return Next::Wait;
        }
        let mut copy = [0u8; MAX_CONTROL_PAYLOAD];
        let payload = &mut copy[..len];
        payload.copy_from_slice(&self.data()[self.pos + header.header_len..self.pos + total]);
        if let Some(key) = header.mask {
            apply_mask(payload, key, 0);
        }
        match header.opcode {
            OpCode::Close => self.close_frame(payload, total),
            OpCode::Pong if self.is_our_pong(payload) => self.swallow_pong(total),
            _ => {
                self.accept_control(total);
                Next::Progress
            }
        }
    }

    fn close_frame(&mut self, payload: &[u8], total: usize) -> Next {
        let code = match parse_close_payload(payload) {
            Ok((code, _reason)) => code,
            Err(_) if self.mode == Mode::Discard => None,
            Err(error) => return self.violation(Violation::Protocol(error)),
        };
        if let Some((ours, reason)) = self.close_on_reply {
            return self.replace_close(total, code, ours, reason);
        }
        if self.mode == Mode::Forward {
            self.dst_closed = true;
            self.inject = None;
            self.queued = None;
        }
        self.accept_control(total);
        self.mode = Mode::Done;
        Next::Event(Event::Close { code })
    }

    /// The source answered the gateway's close: drop that answer and send
    /// the destination the gateway's own close. The run before it must be
    /// written first so the run stays contiguous.
    fn replace_close(
        &mut self,
        total: usize,
        code: Option<u16>,
        ours: u16,
        reason: &'static str,
    ) -> Next {
        if self.out < self.pos {
            return Next::Wait;
        }
        self.pos += total;
        self.out = self.pos;
        self.close_dst(ours, reason, Then::Done);
        self.mode = Mode::Done;
        Next::Event(Event::Close { code })
    }

    fn is_our_pong(&self, payload: &[u8]) -> bool {
        self.mode == Mode::Forward && self.expect_pong.is_some_and(|p| p[..] == *payload)
    }

    /// Drops the pong; the run before it must be written first so the run
    /// stays contiguous.
    fn swallow_pong(&mut self, total: usize) -> Next {
        if self.out < self.pos {
            return Next::Wait;
        }
        self.pos += total;
        self.out = self.pos;
        self.expect_pong = None;
        Next::Event(Event::OurPong)
    }

    fn accept_control(&mut self, total: usize) {
        self.pos += total;
        if self.mode != Mode::Forward {
            self.out = self.pos;
        }
    }
}
