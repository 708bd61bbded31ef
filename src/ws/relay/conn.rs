//! The connection: both pumps, the timers and the phase, in one future.
//!
//! The pumps know frames; this module knows the connection's story: who
//! closed, what the gateway must send to whom, and how long it may wait.
//! Every wait in the closing phase is bounded by `close_timeout`.
//!
//! All deadlines (ping, pong, idle, close) share one timer entry. It is moved
//! only when a deadline comes *earlier* than the one it is armed for; when a
//! later one is due (the idle deadline slides with every frame) it just
//! fires early and is re-armed. A relayed frame therefore never touches the
//! timer wheel, and shutdown is one long-lived waiter, not one per event.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;

use super::pump::{Event, Injected, Pump, Then, Violation};
use super::split::WithTcp;
use super::{RelayConfig, RelayEnd, RelayReport, Side};
use crate::ws::close::{reason, GOING_AWAY, INTERNAL_ERROR};

/// Where the connection is in its life.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Relaying; timers for pings and idleness are live.
    Open,
    /// A close is under way; `end` is what started it.
    Closing { end: RelayEnd, deadline: Instant },
}

/// The connection's timers, as in [`RelayConfig`].
#[derive(Debug, Clone, Copy)]
struct Timers {
    idle_timeout: Duration,
    ping_interval: Duration,
    pong_timeout: Duration,
    close_timeout: Duration,
    drain_delay: Duration,
}

/// Both directions of one relayed connection.
pub(super) struct Conn<CR, CW, BR, BW> {
    c2b: Pump<CR, BW>,
    b2c: Pump<BR, CW>,
    /// The timers of the config (the rest went into the pumps): kept
    /// apart so that every open WebSocket stores no more than it uses.
    cfg: Timers,
    phase: Phase,
    started: Instant,
    /// When the next gateway ping is due.
    next_ping: Instant,
    ping_counter: u64,
    /// Set once our ping has been written; cleared by its pong.
    pong_deadline: Option<Instant>,
    /// When the drain closes this connection with 1001, once shutdown was
    /// signalled (`cfg.drain_delay` later).
    going_away: Option<Instant>,
    client_close: Option<u16>,
    backend_close: Option<u16>,
    sent_to_client: Option<u16>,
    sent_to_backend: Option<u16>,
}

impl<CR, CW, BR, BW> Conn<CR, CW, BR, BW>
where
    CR: AsyncRead + Unpin + WithTcp,
    CW: AsyncWrite + Unpin + WithTcp,
    BR: AsyncRead + Unpin + WithTcp,
    BW: AsyncWrite + Unpin + WithTcp,
{
    /// A connection in the open phase.
    pub(super) fn new(c2b: Pump<CR, BW>, b2c: Pump<BR, CW>, cfg: RelayConfig) -> Self {
        let now = Instant::now();
        Self {
            c2b,
            b2c,
            next_ping: now + cfg.ping_interval,
            cfg: Timers {
                idle_timeout: cfg.idle_timeout,
                ping_interval: cfg.ping_interval,
                pong_timeout: cfg.pong_timeout,
                close_timeout: cfg.close_timeout,
                drain_delay: cfg.drain_delay,
            },
            phase: Phase::Open,
            started: now,
            ping_counter: 0,
            pong_deadline: None,
            going_away: None,
            client_close: None,
            backend_close: None,
            sent_to_client: None,
            sent_to_backend: None,
        }
    }

    /// Relays until the end, shuts both streams down and reports.
    pub(super) async fn run(&mut self, shutdown: &CancellationToken) -> RelayReport {
        let end = self.drive(shutdown).await;
        let grace = self.cfg.close_timeout;
        let shut = async { tokio::join!(self.c2b.shutdown_dst(), self.b2c.shutdown_dst()) };
        // A peer that stopped reading cannot hold the task beyond the grace.
        let _ = tokio::time::timeout(grace, shut).await;
        RelayReport {
            duration: self.started.elapsed(),
            client_close: self.client_close,
            backend_close: self.backend_close,
            end,
            sent_to_client: self.sent_to_client,
            sent_to_backend: self.sent_to_backend,
            client_pauses: self.c2b.pauses(),
        }
    }

    async fn drive(&mut self, shutdown: &CancellationToken) -> RelayEnd {
        let cancelled = shutdown.cancelled();
        tokio::pin!(cancelled);
        // Not registered until armed; the branch is off while disarmed.
        let timer = sleep_until(self.started);
        tokio::pin!(timer);
        let mut armed: Option<Instant> = None;
        loop {
            if let Some(end) = self.finished() {
                return end;
            }
            match self.next_deadline() {
                Some(due) if armed.map_or(true, |at| due < at) => {
                    timer.as_mut().reset(due);
                    armed = Some(due);
                }
                Some(_) => {} // fires early, then re-armed
                None => armed = None,
            }
            let open = matches!(self.phase, Phase::Open);
            tokio::select! {
                biased;
                event = self.c2b.step() => self.on_event(Side::Client, event),
                event = self.b2c.step() => self.on_event(Side::Backend, event),
                () = &mut timer, if armed.is_some() => {
                    armed = None;
                    if let Some(end) = self.on_timer() {
                        return end;
                    }
                }
                () = &mut cancelled, if open && self.going_away.is_none() => {
                    self.going_away = Some(Instant::now() + self.cfg.drain_delay);
                    if self.cfg.drain_delay.is_zero() {
                        self.gateway_close(RelayEnd::Shutdown, reason::SHUTTING_DOWN);
                    }
                }
            }
        }
    }

    /// The earliest deadline of the current phase, if any; in either
    /// phase, when a client paused for its byte rate may be read again.
    fn next_deadline(&self) -> Option<Instant> {
        let phase = self.phase_deadline();
        match self.c2b.resume_at() {
            Some(resume) => Some(phase.map_or(resume, |d| d.min(resume))),
            None => phase,
        }
    }

    fn phase_deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Closing { deadline, .. } => Some(deadline),
            Phase::Open => {
                let ping = (!self.cfg.ping_interval.is_zero()).then_some(self.next_ping);
                [
                    ping,
                    self.pong_deadline,
                    self.going_away,
                    self.idle_deadline(),
                ]
                .into_iter()
                .flatten()
                .min()
            }
        }
    }

    /// The timer fired: acts on every deadline that has passed (it may have
    /// fired for one that has since moved later). Returns the end if the
    /// close wait is over.
    fn on_timer(&mut self) -> Option<RelayEnd> {
        let now = Instant::now();
        if let Phase::Closing { deadline, end } = self.phase {
            if deadline > now {
                return None;
            }
            if self.c2b.close_dst_without_reply() || self.b2c.close_dst_without_reply() {
                // The side at fault still gets its close, with one more wait.
                let deadline = now + self.cfg.close_timeout;
                self.phase = Phase::Closing { end, deadline };
                return None;
            }
            return Some(self.close_timed_out());
        }
        if self.going_away.is_some_and(|at| at <= now) {
            self.gateway_close(RelayEnd::Shutdown, reason::SHUTTING_DOWN);
            return None;
        }
        if !self.cfg.ping_interval.is_zero() && self.next_ping <= now {
            self.send_ping();
        }
        if self.pong_deadline.is_some_and(|at| at <= now) {
            self.pong_timeout();
            return None;
        }
        self.check_idle();
        None
    }

    /// Both pumps stopped with nothing left to write.
    fn finished(&self) -> Option<RelayEnd> {
        if !(self.c2b.is_idle() && self.b2c.is_idle()) {
            return None;
        }
        Some(match self.phase {
            Phase::Closing { end, .. } => end,
            // Both pumps only stop after something moved the phase on.
            Phase::Open => RelayEnd::ClientGone,
        })
    }

    fn on_event(&mut self, from: Side, event: Event) {
        match event {
            Event::Close { code } => self.on_close(from, code),
            Event::OurPong => self.pong_deadline = None,
            Event::Injected(Injected::Ping) => {
                self.pong_deadline = Some(Instant::now() + self.cfg.pong_timeout);
            }
            Event::Injected(Injected::Close(code)) => match from.other() {
                Side::Client => self.sent_to_client = Some(code),
                Side::Backend => self.sent_to_backend = Some(code),
            },
            Event::Violation(violation) => self.on_violation(from, violation),
            Event::SrcGone => self.side_gone(from),
            Event::DstGone => self.side_gone(from.other()),
            // The loop re-arms the timer for the pause's end.
            Event::Idle | Event::Paused => {}
        }
    }

    fn enter_closing(&mut self, end: RelayEnd) {
        if let Phase::Open = self.phase {
            let deadline = Instant::now() + self.cfg.close_timeout;
            self.phase = Phase::Closing { end, deadline };
        }
    }

    /// A peer's close was forwarded (or, while draining, consumed); its
    /// pump already stopped reading. The other pump keeps relaying until the
    /// reply comes through.
    fn on_close(&mut self, from: Side, code: Option<u16>) {
        match from {
            Side::Client => self.client_close = code,
            Side::Backend => self.backend_close = code,
        }
        self.enter_closing(RelayEnd::CloseHandshake { initiator: from });
    }

    /// Fails the connection: the same code to both sides. The other side
    /// hears it at once; the side at fault after the other side's answer, so
    /// what the other side sent before it still arrives, as it would without
    /// the gateway in between.
    fn on_violation(&mut self, from: Side, violation: Violation) {
        let (code, end, reason) = violation.close(from);
        self.enter_closing(end);
        match from {
            Side::Client => {
                self.c2b.close_dst(code, reason, Then::Done);
                self.b2c.close_dst_after_reply(code, reason);
            }
            Side::Backend => {
                self.b2c.close_dst(code, reason, Then::Done);
                self.c2b.close_dst_after_reply(code, reason);
            }
        }
    }

    /// A side's stream ended without a close: tell the other side (1001 for
    /// a vanished client, 1011 for a vanished backend) and wait for its reply,
    /// unless the close cannot be sent because a frame was cut in half.
    fn side_gone(&mut self, side: Side) {
        let end = match side {
            Side::Client => RelayEnd::ClientGone,
            Side::Backend => RelayEnd::BackendGone,
        };
        self.enter_closing(end);
        match side {
            Side::Client => {
                self.c2b.stop(Then::Done);
                self.b2c.mark_dst_dead();
                let sent = self
                    .c2b
                    .close_dst(GOING_AWAY, reason::CLIENT_GONE, Then::Done);
                let then = if sent && self.c2b.can_inject() {
                    Then::Discard
                } else {
                    Then::Done
                };
                self.b2c.stop(then);
            }
            Side::Backend => {
                self.b2c.stop(Then::Done);
                self.c2b.mark_dst_dead();
                let sent = self
                    .b2c
                    .close_dst(INTERNAL_ERROR, reason::BACKEND_GONE, Then::Done);
                let then = if sent && self.b2c.can_inject() {
                    Then::Discard
                } else {
                    Then::Done
                };
                self.c2b.stop(then);
            }
        }
    }

    /// Closes both sides with 1001 and waits for their replies.
    fn gateway_close(&mut self, end: RelayEnd, reason: &'static str) {
        self.enter_closing(end);
        self.c2b.close_dst(GOING_AWAY, reason, Then::Discard);
        self.b2c.close_dst(GOING_AWAY, reason, Then::Discard);
    }

    fn send_ping(&mut self) {
        self.next_ping = Instant::now() + self.cfg.ping_interval;
        if self.c2b.expect_pong.is_some() {
            return; // still outstanding; the pong deadline decides
        }
        self.ping_counter += 1;
        let payload = self.ping_counter.to_be_bytes();
        if self.b2c.queue_ping(payload) {
            self.c2b.expect_pong = Some(payload);
        }
    }

    /// The client is presumed dead: tell the backend, don't wait for anyone.
    fn pong_timeout(&mut self) {
        self.enter_closing(RelayEnd::PongTimeout);
        self.c2b
            .close_dst(GOING_AWAY, reason::PONG_TIMEOUT, Then::Done);
        self.b2c.stop(Then::Done);
    }

    fn idle_deadline(&self) -> Option<Instant> {
        if !matches!(self.phase, Phase::Open) || self.cfg.idle_timeout.is_zero() {
            return None;
        }
        let last = self.c2b.last_forward.max(self.b2c.last_forward);
        Some(last + self.cfg.idle_timeout)
    }

    /// The deadline was computed before the last writes; recheck it.
    fn check_idle(&mut self) {
        if self.idle_deadline().is_some_and(|at| at <= Instant::now()) {
            self.gateway_close(RelayEnd::IdleTimeout, reason::IDLE_TIMEOUT);
        }
    }

    fn close_timed_out(&self) -> RelayEnd {
        match self.phase {
            Phase::Closing {
                end: RelayEnd::CloseHandshake { initiator },
                ..
            } => RelayEnd::CloseTimeout { initiator },
            Phase::Closing { end, .. } => end,
            Phase::Open => RelayEnd::CloseTimeout {
                initiator: Side::Client,
            },
        }
    }
}
