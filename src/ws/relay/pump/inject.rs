//! The frames the gateway itself sends (its pings and closes), and the
//! stop and close decisions the connection makes for one direction. An
//! injected frame waits for a frame boundary of the destination, so it
//! never lands inside a forwarded frame.

use crate::ws::relay::split::WithTcp;
use tokio::io::{AsyncRead, AsyncWrite};

use super::{Injected, Mode, Pump, Then};
use crate::ws::frame::ControlFrame;
use crate::ws::relay::Side;

/// A gateway frame waiting or being written. Only what it says is kept (not
/// its up to 131 encoded bytes); it is encoded again for each write attempt,
/// identically, so a half-written frame resumes where it stopped.
pub(super) struct Injection {
    pub(super) kind: Injected,
    /// The ping's payload (pings only).
    ping: [u8; 8],
    /// The close reason (closes only).
    reason: &'static str,
    mask: Option<[u8; 4]>,
    /// Bytes of the encoded frame already written.
    pub(super) written: u8,
}

impl Injection {
    pub(in crate::ws::relay) fn encode(&self) -> ControlFrame {
        match self.kind {
            Injected::Ping => ControlFrame::ping(&self.ping, self.mask),
            Injected::Close(code) => ControlFrame::close(code, self.reason, self.mask),
        }
    }
}

impl<R: AsyncRead + Unpin + WithTcp, W: AsyncWrite + Unpin + WithTcp> Pump<R, W> {
    /// Queues a close frame to the destination and stops forwarding after
    /// the current frame. Returns false if a close already went there. A
    /// close waiting for the source's reply goes now instead of this one.
    pub(in crate::ws::relay) fn close_dst(
        &mut self,
        code: u16,
        reason: &'static str,
        then: Then,
    ) -> bool {
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
    pub(in crate::ws::relay) fn close_dst_after_reply(&mut self, code: u16, reason: &'static str) {
        if self.mode == Mode::Forward && !self.dst_closed && !self.dst_dead {
            self.close_on_reply = Some((code, reason));
        } else {
            self.close_dst(code, reason, Then::Done);
        }
    }

    /// Sends a close still waiting for the source's reply now; false if
    /// there is none.
    pub(in crate::ws::relay) fn close_dst_without_reply(&mut self) -> bool {
        let Some((code, reason)) = self.close_on_reply else {
            return false;
        };
        self.close_dst(code, reason, Then::Done)
    }

    /// Queues a ping to the destination; false if it cannot go now.
    pub(in crate::ws::relay) fn queue_ping(&mut self, payload: [u8; 8]) -> bool {
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
    pub(in crate::ws::relay) fn stop(&mut self, then: Then) {
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
    pub(in crate::ws::relay) fn mark_dst_dead(&mut self) {
        self.dst_dead = true;
        self.dst_closed = true;
        self.out = self.pos;
        // Closed, not given back: it may hold bytes.
        self.pipe = None;
        self.inject = None;
        self.queued = None;
        self.idle_reported = false;
    }

    /// Whether a queued frame will ever be written (false when the source
    /// stopped in the middle of a frame, or the destination is dead).
    pub(in crate::ws::relay) fn can_inject(&self) -> bool {
        !self.dst_dead && (self.at_boundary() || self.mode != Mode::Done)
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
}
