//! WebSocket clients of the soak: each *slot* keeps one connection open,
//! reconnecting whenever it ends, and sends one sequenced binary message per
//! interval. Every echo is checked against what was sent (sequence number,
//! connection nonce, length, filler), so a lost, duplicated, reordered or
//! damaged message on a live connection is a failure.
//!
//! A connection ends in one of these ways:
//! - its lifetime is over (churn) or the phase ends: a clean close (1000),
//!   after which every message sent must have been echoed;
//! - a vanish ticket: it sends a message, writes half a frame and drops the
//!   socket, with FIN or RST at random;
//! - the gateway closes it with 1011 because its backend was killed: its
//!   messages in flight are counted as lost (expected), but only within the
//!   kill window; a 1011 at any other time, any other close code, or an EOF
//!   without a close is a failure;
//! - the gateway closes it in the middle of a frame, within the kill window:
//!   the killed backend was echoing a message (the echo streams, so with
//!   messages of tens of KiB a kill can land inside one), the frame can never
//!   be finished and no close can follow half a frame (RFC 6455 §7.1.7, and
//!   docs/proxying.md). Counted like a 1011; at a frame boundary, or outside
//!   a kill window, a bare EOF still fails.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{watch, Semaphore};
use tokio::time::{sleep, sleep_until, timeout, Instant};

use super::{lost_since, Ctx, Rng, Tally};
use crate::client::{upgrade, Target, MASK_KEY};
use crate::frame::{
    client_frame, encode_header, parse_header, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG,
};

/// Upgrade, including the TCP connect, must finish within this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// An echo must arrive within this, or the connection counts as stuck.
const ECHO_TIMEOUT: Duration = Duration::from_secs(15);

/// The close handshake (our close → the server's close → EOF) bound.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Read buffer; it grows for a larger frame, up to [`MAX_FRAME`].
const READ_BUF: usize = 4096;

/// Largest frame accepted from the gateway.
const MAX_FRAME: usize = 1 << 20;

/// Declared payload length of the frame a vanishing client leaves half-sent.
const VANISH_FRAME: usize = 1000;

/// Seq (8 bytes) and connection nonce (8 bytes) start every payload.
const MIN_PAYLOAD: usize = 16;

/// How the slots of a phase behave.
#[derive(Clone)]
pub struct WsPlan {
    /// Where to connect.
    pub target: Target,
    /// Time between two messages on one connection.
    pub interval: Duration,
    /// Largest message payload (at least [`MIN_PAYLOAD`]).
    pub max_size: usize,
    /// Connection lifetime range; `None` keeps connections until the end.
    pub lifetime: Option<(Duration, Duration)>,
    /// Whether connections take vanish tickets.
    pub vanish: bool,
}

/// Why a connection ended.
enum End {
    /// The phase ended and the close handshake completed.
    Stopped,
    /// Its lifetime ended and the close handshake completed.
    Churned,
    /// It vanished mid-frame.
    Vanished,
    /// The gateway sent a close frame with this code.
    Closed(u16),
    /// The gateway's stream ended inside a frame, within a kill window.
    CutByKill,
    /// A broken expectation: (kind, detail).
    Failed(&'static str, String),
}

/// Keeps one connection open until `stop`, reconnecting after each end;
/// `permits` bounds the handshakes in progress over all slots.
pub async fn slot(
    id: u64,
    ctx: Arc<Ctx>,
    plan: Arc<WsPlan>,
    permits: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) {
    let mut rng = Rng::new(id);
    let mut generation = 0u64;
    let mut failures_in_a_row = 0u32;
    while !*stop.borrow() {
        generation += 1;
        let nonce = id << 32 | (generation & 0xffff_ffff);
        let connected = {
            let _permit = permits.acquire().await;
            timeout(CONNECT_TIMEOUT, Conn::open(&plan.target, nonce)).await
        };
        let mut conn = match connected {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                count_refusal(&ctx, &e);
                failures_in_a_row += 1;
                backoff(&mut rng, failures_in_a_row, &mut stop).await;
                continue;
            }
            Err(_) => {
                let detail = format!("no 101 within {CONNECT_TIMEOUT:?}");
                ctx.failures.record("ws: connect failed", detail);
                failures_in_a_row += 1;
                backoff(&mut rng, failures_in_a_row, &mut stop).await;
                continue;
            }
        };
        failures_in_a_row = 0;
        Tally::bump(&ctx.tally.ws_connects);
        Tally::bump(&ctx.tally.ws_held);
        let end = conn.run(&ctx, &plan, &mut rng, &mut stop).await;
        Tally::drop_one(&ctx.tally.ws_held);
        let in_flight = conn.pending.len() as u64;
        let t = &ctx.tally;
        match end {
            End::Stopped => Tally::bump(&t.ws_final_closes),
            End::Churned => Tally::bump(&t.ws_churn_closes),
            End::Vanished => Tally::add(&t.ws_abandoned_at_vanish, in_flight),
            End::Closed(1011) | End::CutByKill if ctx.chaos.recent() => {
                if matches!(end, End::CutByKill) {
                    Tally::bump(&t.ws_cut_by_kill);
                } else {
                    Tally::bump(&t.ws_backend_closes);
                }
                Tally::add(&t.ws_lost_in_flight, in_flight);
                if let Some(&oldest) = conn.pending.front() {
                    lost_since(&ctx.ws_lost_age_ms, &ctx.chaos, oldest);
                }
                // Everyone on the killed backend reconnects: spread them.
                sleep(rng.duration(Duration::ZERO, Duration::from_secs(1))).await;
            }
            End::CutByKill => {
                // The kill window closed between the EOF and here.
                Tally::add(&t.ws_unechoed_at_failure, in_flight);
                let detail = format!("{in_flight} in flight");
                ctx.failures
                    .record("ws: frame cut short outside a kill window", detail);
            }
            End::Closed(code) => {
                Tally::add(&t.ws_unechoed_at_failure, in_flight);
                let kind = match code {
                    1011 => "ws: close 1011 outside a kill window",
                    _ => "ws: unexpected close code",
                };
                ctx.failures
                    .record(kind, format!("code {code}, {in_flight} in flight"));
            }
            End::Failed(kind, detail) => {
                Tally::add(&t.ws_unechoed_at_failure, in_flight);
                ctx.failures.record(kind, detail);
            }
        }
    }
}

/// A failed upgrade: a 502 is expected only right after a kill (the
/// backend chosen died mid-handshake); anything else is a failure.
fn count_refusal(ctx: &Ctx, e: &io::Error) {
    let text = e.to_string();
    let status = text
        .strip_prefix("upgrade refused: HTTP/1.1 ")
        .and_then(|rest| rest.get(..3));
    match status {
        Some("502") if ctx.chaos.recent() => Tally::bump(&ctx.tally.ws_refused_502),
        Some(_) => ctx.failures.record("ws: upgrade refused", text),
        None => ctx.failures.record("ws: connect failed", text),
    }
}

/// Waits before a retry: 50 ms doubling to 2 s, jittered, cut short by stop.
async fn backoff(rng: &mut Rng, attempt: u32, stop: &mut watch::Receiver<bool>) {
    let cap = Duration::from_millis(50 << attempt.min(6)).min(Duration::from_secs(2));
    let wait = rng.duration(cap / 2, cap);
    tokio::select! {
        _ = sleep(wait) => {}
        _ = stop.changed() => {}
    }
}

/// One open connection.
struct Conn {
    tcp: TcpStream,
    buf: Vec<u8>,
    filled: usize,
    /// Identifies this connection in every payload it sends.
    nonce: u64,
    /// Seq of the next message to send.
    next_seq: u64,
    /// Send times of the messages not echoed yet, oldest first.
    pending: VecDeque<Instant>,
}

/// What one read brought.
enum Read {
    /// Frames handled, nothing final.
    More,
    /// The server's close frame, with its code (1005 when it had none).
    Close(u16),
}

impl Conn {
    /// TCP connect and upgrade.
    async fn open(target: &Target, nonce: u64) -> io::Result<Conn> {
        let mut tcp = TcpStream::connect(target.addr).await?;
        tcp.set_nodelay(true)?;
        let (mut buf, filled) = upgrade(&mut tcp, target).await?;
        buf.resize(READ_BUF.max(filled), 0);
        Ok(Conn {
            tcp,
            buf,
            filled,
            nonce,
            next_seq: 1,
            pending: VecDeque::new(),
        })
    }

    /// Traffic until the connection ends.
    async fn run(
        &mut self,
        ctx: &Ctx,
        plan: &WsPlan,
        rng: &mut Rng,
        stop: &mut watch::Receiver<bool>,
    ) -> End {
        let start = Instant::now();
        let die_at = plan.lifetime.map(|(lo, hi)| start + rng.duration(lo, hi));
        let mut tick = start + rng.duration(Duration::ZERO, plan.interval);
        // Bytes the upgrade response already carried.
        if self.filled > 0 {
            match self.frames(ctx).await {
                Ok(Read::More) => {}
                Ok(Read::Close(code)) => return self.answer_close(code).await,
                Err(end) => return end,
            }
        }
        loop {
            if *stop.borrow() {
                return self.close(ctx, End::Stopped).await;
            }
            tokio::select! {
                _ = stop.changed() => {}
                _ = sleep_until(tick) => {
                    tick += plan.interval;
                    if die_at.is_some_and(|d| Instant::now() >= d) {
                        return self.close(ctx, End::Churned).await;
                    }
                    if plan.vanish && ctx.take_vanish_token() {
                        return self.vanish(ctx, plan, rng).await;
                    }
                    if let Some(oldest) = self.pending.front() {
                        if oldest.elapsed() > ECHO_TIMEOUT {
                            return End::Failed(
                                "ws: echo overdue",
                                format!("{} messages unechoed, oldest {:?} ago", self.pending.len(), oldest.elapsed()),
                            );
                        }
                    }
                    if let Err(e) = self.send(ctx, plan, rng).await {
                        return self.after_io_error(ctx, "ws: write failed", e).await;
                    }
                }
                read = self.tcp.read(&mut self.buf[self.filled..]) => {
                    match read {
                        Ok(0) => return self.after_eof(ctx).await,
                        Ok(n) => self.filled += n,
                        Err(e) => return self.after_io_error(ctx, "ws: read failed", e).await,
                    }
                    match self.frames(ctx).await {
                        Ok(Read::More) => {}
                        Ok(Read::Close(code)) => return self.answer_close(code).await,
                        Err(end) => return end,
                    }
                }
            }
        }
    }

    /// Sends the next message: seq, nonce, then a filler derived from both
    /// (so the echo can be checked without keeping a copy).
    async fn send(&mut self, ctx: &Ctx, plan: &WsPlan, rng: &mut Rng) -> io::Result<()> {
        let seq = self.next_seq;
        let span = plan.max_size.max(MIN_PAYLOAD) - MIN_PAYLOAD;
        let len = MIN_PAYLOAD + rng.below(span as u64 + 1) as usize;
        let mut payload = Vec::with_capacity(len);
        payload.extend_from_slice(&seq.to_be_bytes());
        payload.extend_from_slice(&self.nonce.to_be_bytes());
        payload.resize(len, filler(seq, self.nonce));
        let frame = client_frame(OP_BINARY, &payload, MASK_KEY);
        self.tcp.write_all(&frame).await?;
        self.next_seq += 1;
        self.pending.push_back(Instant::now());
        Tally::bump(&ctx.tally.ws_sent);
        Ok(())
    }

    /// Handles every whole frame in the buffer.
    async fn frames(&mut self, ctx: &Ctx) -> Result<Read, End> {
        let mut pos = 0;
        let mut pongs = Vec::new();
        let mut close = None;
        while let Some(header) = parse_header(&self.buf[pos..self.filled]) {
            if header.mask.is_some() {
                return Err(End::Failed(
                    "ws: masked frame from the gateway",
                    String::new(),
                ));
            }
            let total = header.header_len as u64 + header.payload_len;
            if total > MAX_FRAME as u64 {
                return Err(End::Failed("ws: oversized frame", format!("{total} bytes")));
            }
            let end = pos + total as usize;
            if end > self.filled {
                if end - pos > self.buf.len() {
                    self.buf.resize(end - pos, 0);
                }
                break;
            }
            let payload = &self.buf[pos + header.header_len..end];
            match header.opcode {
                OP_BINARY if header.fin => {
                    let sent = check_echo(&mut self.pending, self.next_seq, self.nonce, payload)?;
                    ctx.ws_rtt.record(sent.elapsed());
                    Tally::bump(&ctx.tally.ws_echoed);
                }
                OP_PING => {
                    pongs.extend(client_frame(OP_PONG, payload, MASK_KEY));
                    Tally::bump(&ctx.tally.ws_pongs);
                }
                OP_PONG => {}
                OP_CLOSE => {
                    let code = payload
                        .get(..2)
                        .map_or(1005, |c| u16::from_be_bytes([c[0], c[1]]));
                    close = Some(code);
                    pos = end;
                    break;
                }
                op => {
                    return Err(End::Failed(
                        "ws: unexpected frame",
                        format!("opcode {op} fin {}", header.fin),
                    ))
                }
            }
            pos = end;
        }
        self.buf.copy_within(pos..self.filled, 0);
        self.filled -= pos;
        if !pongs.is_empty() {
            if let Err(e) = self.tcp.write_all(&pongs).await {
                return Err(End::Failed("ws: pong write failed", e.to_string()));
            }
        }
        Ok(close.map_or(Read::More, Read::Close))
    }

    /// Our close (1000), then the server's close and EOF; every message
    /// sent must have been echoed before the server's close.
    async fn close(&mut self, ctx: &Ctx, end: End) -> End {
        let frame = client_frame(OP_CLOSE, &1000u16.to_be_bytes(), MASK_KEY);
        if let Err(e) = self.tcp.write_all(&frame).await {
            return self.after_io_error(ctx, "ws: close write failed", e).await;
        }
        let handshake = async {
            loop {
                let n = self.tcp.read(&mut self.buf[self.filled..]).await;
                match n {
                    Ok(0) => {
                        return Err(End::Failed("ws: EOF before the close reply", String::new()))
                    }
                    Ok(n) => self.filled += n,
                    Err(e) => {
                        return Err(End::Failed("ws: read failed while closing", e.to_string()))
                    }
                }
                if let Read::Close(code) = self.frames(ctx).await? {
                    return Ok(code);
                }
            }
        };
        let code = match timeout(CLOSE_TIMEOUT, handshake).await {
            Ok(Ok(code)) => code,
            Ok(Err(end)) => return end,
            Err(_) => return End::Failed("ws: no close reply", format!("{CLOSE_TIMEOUT:?}")),
        };
        if code == 1011 && ctx.chaos.recent() {
            // The backend died while we were closing: an ordinary 1011.
            return self.wait_eof(End::Closed(1011)).await;
        }
        if code != 1000 {
            return End::Failed("ws: close reply code", format!("{code}"));
        }
        if !self.pending.is_empty() {
            return End::Failed(
                "ws: messages lost before a clean close",
                format!("{} not echoed", self.pending.len()),
            );
        }
        self.wait_eof(end).await
    }

    /// The server closed first: answer with the same code, wait for EOF.
    async fn answer_close(&mut self, code: u16) -> End {
        let reply = match code {
            1005 => client_frame(OP_CLOSE, &[], MASK_KEY),
            _ => client_frame(OP_CLOSE, &code.to_be_bytes(), MASK_KEY),
        };
        let _ = self.tcp.write_all(&reply).await;
        self.wait_eof(End::Closed(code)).await
    }

    /// Reads until EOF (bounded): the server closes the TCP connection first.
    async fn wait_eof(&mut self, end: End) -> End {
        let drain = async {
            let mut scratch = [0u8; 1024];
            while matches!(self.tcp.read(&mut scratch).await, Ok(n) if n > 0) {}
        };
        match timeout(CLOSE_TIMEOUT, drain).await {
            Ok(()) => end,
            Err(_) => End::Failed("ws: no EOF after the close handshake", String::new()),
        }
    }

    /// Sends one more message, writes half a frame, then drops the socket
    /// with FIN or RST: a client that goes away in the middle of traffic.
    async fn vanish(&mut self, ctx: &Ctx, plan: &WsPlan, rng: &mut Rng) -> End {
        let _ = self.send(ctx, plan, rng).await;
        let mut half = Vec::with_capacity(VANISH_FRAME);
        encode_header(&mut half, OP_BINARY, VANISH_FRAME as u64, Some(MASK_KEY));
        half.resize(half.len() + VANISH_FRAME / 2, 0x5a);
        let _ = self.tcp.write_all(&half).await;
        if rng.chance(0.5) {
            let _ = self.tcp.set_zero_linger();
            Tally::bump(&ctx.tally.ws_vanished_rst);
        } else {
            Tally::bump(&ctx.tally.ws_vanished_fin);
        }
        // The caller drops the connection, closing the socket.
        End::Vanished
    }

    /// EOF without a close frame: expected only inside a frame the gateway
    /// could not finish because its backend was killed.
    async fn after_eof(&mut self, ctx: &Ctx) -> End {
        if self.filled > 0 && ctx.chaos.recent() {
            return End::CutByKill;
        }
        End::Failed(
            "ws: EOF without a close frame",
            format!(
                "{} in flight, {}, port {}",
                self.pending.len(),
                self.where_cut(),
                self.tcp.local_addr().map_or(0, |a| a.port())
            ),
        )
    }

    /// Where in the gateway's stream it ended: at a frame boundary, inside
    /// a header, or inside a frame's payload (the gateway cannot send a
    /// close there). Says which failure a bare EOF is.
    fn where_cut(&self) -> String {
        let rest = &self.buf[..self.filled];
        match parse_header(rest) {
            _ if rest.is_empty() => "at a frame boundary".into(),
            None => format!("{} bytes into a frame header", rest.len()),
            Some(h) => format!(
                "{} of {} payload bytes into a frame (opcode {})",
                rest.len() - h.header_len,
                h.payload_len,
                h.opcode
            ),
        }
    }

    /// An I/O error: a reset is as unexpected as a bare EOF.
    async fn after_io_error(&mut self, _ctx: &Ctx, kind: &'static str, e: io::Error) -> End {
        End::Failed(kind, format!("{e} ({} in flight)", self.pending.len()))
    }
}

/// An echo must be the oldest message in flight, byte for byte; returns
/// when that message was sent.
fn check_echo(
    pending: &mut VecDeque<Instant>,
    next_seq: u64,
    own_nonce: u64,
    payload: &[u8],
) -> Result<Instant, End> {
    let expected = next_seq - pending.len() as u64;
    let bad = |what: String| End::Failed("ws: wrong echo", what);
    if pending.is_empty() {
        return Err(bad("an echo with nothing in flight".into()));
    }
    if payload.len() < MIN_PAYLOAD {
        return Err(bad(format!("{} byte echo", payload.len())));
    }
    let seq = u64::from_be_bytes(payload[..8].try_into().expect("8 bytes"));
    let nonce = u64::from_be_bytes(payload[8..16].try_into().expect("8 bytes"));
    if nonce != own_nonce {
        return Err(bad(format!(
            "echo of connection {nonce:x} on {own_nonce:x}"
        )));
    }
    if seq != expected {
        return Err(bad(format!("echo seq {seq}, expected {expected}")));
    }
    let fill = filler(seq, nonce);
    if payload[MIN_PAYLOAD..].iter().any(|&b| b != fill) {
        return Err(bad(format!("echo seq {seq}: payload damaged")));
    }
    Ok(pending.pop_front().expect("checked non-empty"))
}

/// The filler byte of message `seq` on connection `nonce`.
fn filler(seq: u64, nonce: u64) -> u8 {
    (seq.wrapping_mul(31) ^ nonce.wrapping_mul(17)) as u8
}
