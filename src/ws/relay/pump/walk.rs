//! Walking the source's frames in the read buffer: the protocol rules.
//!
//! Kept apart from the I/O half of the pump so the rules read as one list:
//! masking direction, fragmentation order, message size, and the control
//! frames the gateway has to look into (close, its own pongs).

use tokio::io::{AsyncRead, AsyncWrite};

use super::{Event, FrameState, Message, Mode, Next, Pump, Then, Violation};
use crate::ws::frame::{
    apply_mask, parse_close_payload, parse_header, FrameError, FrameHeader, OpCode,
    MAX_CONTROL_PAYLOAD,
};
use crate::ws::relay::Side;

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Pump<R, W> {
    /// Walks the unparsed bytes, growing the run, until more input (or a
    /// write) is needed or an event happens.
    pub(super) fn process(&mut self) -> Option<Event> {
        loop {
            self.take_payload();
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

    /// Accepts as much of the current data frame's payload as is buffered.
    fn take_payload(&mut self) {
        let FrameState::Payload {
            remaining,
            fin,
            forward,
        } = self.frame
        else {
            return;
        };
        // Fits in usize: bounded by the buffered byte count.
        let n = remaining.min((self.end - self.pos) as u64);
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
            };
            return;
        }
        self.frame = FrameState::Boundary;
        if fin && forward {
            self.stats.add_message(self.from);
        }
    }

    fn next_frame(&mut self) -> Next {
        let parsed = parse_header(&self.buf[self.pos..self.end], self.deflate)
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
        if forward {
            if let Err(violation) = self.check_message(&header) {
                return self.violation(violation);
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
        };
        Next::Progress
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
        payload.copy_from_slice(&self.buf[self.pos + header.header_len..self.pos + total]);
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
        if self.mode == Mode::Forward {
            self.dst_closed = true;
            self.inject = None;
            self.queued = None;
        }
        self.accept_control(total);
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
