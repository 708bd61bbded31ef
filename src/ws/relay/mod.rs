//! The relay: forwards WebSocket frames between client and backend after the 101.
//!
//! Why it is shaped this way:
//!
//! - **Streaming, not buffering.** Each direction reads into one buffer at
//!   a time ([`BUF_SIZE`], or four times that once a read filled it: the
//!   socket has more, so fewer, larger `recv`s and `send`s move it). Frame
//!   headers are parsed in place; payload bytes are written out as
//!   contiguous runs straight from that buffer, still masked. Memory per
//!   connection is at most two buffers, whatever the message size.
//! - **Idle costs no buffer.** The buffer comes from a per-thread pool for a
//!   read that returns data and goes back once those bytes are forwarded; a
//!   read that would block hands it straight back. An idle connection keeps
//!   only an incomplete header or control frame, inline.
//! - **Large payloads bypass user space** where both legs are plain TCP
//!   (Linux): the rest of a binary frame's payload from [`SPLICE_MIN`] on
//!   goes socket → pipe → socket with splice(2) ([`splice`](self::splice)).
//! - **Backpressure.** A direction reads again only once everything it read
//!   has been written, so a slow reader slows the writer down through TCP.
//! - **One future.** Both directions and every timer run inside one future
//!   (`select!` over cancel-safe steps), so shutdown and the caller see the
//!   whole connection, and there is nothing to leak.
//! - **Explicit states.** Frame position and message state live in each
//!   [`pump`](self::pump) direction; the connection phase (open / closing with
//!   a deadline) lives in [`conn`](self::conn).

mod conn;
mod leg;
mod pool;
mod pump;
mod splice;
#[cfg(all(test, target_os = "linux"))]
mod splice_tests;
mod split;
#[cfg(test)]
mod tests;

use std::fmt;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

use super::frame::FrameError;

pub use crate::net::short_read::RelayRead;
use crate::telemetry::relays::RelayEnded;
pub use crate::telemetry::relays::RelayStats;
pub use leg::Leg;
pub use splice::{SpliceTcp, SPLICE_MIN};

/// Read buffer per direction while bytes are in flight: big enough to batch
/// many small frames per syscall and to always hold a whole control frame,
/// small enough that 100k connections stuck behind slow readers still fit.
pub const BUF_SIZE: usize = 16 * 1024;

/// Limits and timers of one relayed connection.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Largest message (sum of its frames' payloads); larger → close 1009.
    pub max_message_size: u64,
    /// No frame relayed in either direction for this long → close 1001 both.
    /// Zero disables it.
    pub idle_timeout: Duration,
    /// How often the gateway pings the client. Zero disables pings.
    pub ping_interval: Duration,
    /// How long the client has to answer a gateway ping before it is
    /// considered dead.
    pub pong_timeout: Duration,
    /// How long to wait for the peer's close reply before giving up.
    pub close_timeout: Duration,
    /// Once shutdown is signalled, how long this relay waits before it
    /// closes both legs with 1001: its share of the drain spread, so that
    /// clients do not all reconnect in the same instant.
    pub drain_delay: Duration,
    /// permessage-deflate was negotiated: RSV1 may be set on the first frame
    /// of a data message.
    pub deflate: bool,
    /// Text messages must be UTF-8 (compressed ones cannot be checked
    /// without inflating them and pass as they are); otherwise close 1007.
    pub validate_utf8: bool,
    /// `client_messages_per_second`: a message from the client beyond it
    /// closes both sides with 1008.
    pub client_messages: Option<crate::config::MessageRate>,
    /// `client_bytes_per_second`: beyond it the client is not read until
    /// it is back under (backpressure).
    pub client_bytes_per_second: Option<u64>,
}

/// Which end of the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The browser side; the gateway is its server.
    Client,
    /// The application side; the gateway is its client.
    Backend,
}

impl Side {
    /// The other end.
    pub fn other(self) -> Self {
        match self {
            Self::Client => Self::Backend,
            Self::Backend => Self::Client,
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Client => "client",
            Self::Backend => "backend",
        })
    }
}

/// Adds relayed bytes and messages to a relay's counters, by direction.
pub(crate) trait Count {
    /// Payload bytes that came from `from`.
    fn add_bytes(&self, from: Side, n: u64);
    /// A complete message that came from `from`.
    fn add_message(&self, from: Side);
}

impl Count for RelayStats {
    fn add_bytes(&self, from: Side, n: u64) {
        let counter = match from {
            Side::Client => &self.client_to_backend_bytes,
            Side::Backend => &self.backend_to_client_bytes,
        };
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn add_message(&self, from: Side) {
        let counter = match from {
            Side::Client => &self.client_to_backend_messages,
            Side::Backend => &self.backend_to_client_messages,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Why a relayed connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayEnd {
    /// A peer sent close and the other side answered (or had closed too).
    CloseHandshake {
        /// Who sent the first close.
        initiator: Side,
    },
    /// The client's connection ended without a close frame.
    ClientGone,
    /// The backend's connection ended without a close frame.
    BackendGone,
    /// A side broke RFC 6455; both sides got 1002.
    ProtocolError {
        /// The side that broke the protocol.
        side: Side,
        /// What it did.
        error: FrameError,
    },
    /// A side sent a message over `max_message_size`; both sides got 1009.
    MessageTooBig {
        /// The side that sent it.
        side: Side,
    },
    /// A side sent a text message that is not UTF-8; both sides got 1007.
    InvalidUtf8 {
        /// The side that sent it.
        side: Side,
    },
    /// The client sent messages faster than `client_messages_per_second`;
    /// both sides got 1008.
    RateLimited,
    /// Nothing was relayed for `idle_timeout`; both sides got 1001.
    IdleTimeout,
    /// The client did not answer a gateway ping in time; the backend got 1001.
    PongTimeout,
    /// The gateway is shutting down; both sides got 1001.
    Shutdown,
    /// A peer started the close handshake and the other never answered.
    CloseTimeout {
        /// Who sent the first close.
        initiator: Side,
    },
}

impl RelayEnd {
    /// The `end` label of `wsgate_websocket_sessions_ended`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::CloseHandshake { .. } => "close_handshake",
            Self::ClientGone => "client_gone",
            Self::BackendGone => "backend_gone",
            Self::ProtocolError { .. } => "protocol_error",
            Self::MessageTooBig { .. } => "message_too_big",
            Self::InvalidUtf8 { .. } => "invalid_utf8",
            Self::RateLimited => "rate_limited",
            Self::IdleTimeout => "idle_timeout",
            Self::PongTimeout => "pong_timeout",
            Self::Shutdown => "shutdown",
            Self::CloseTimeout { .. } => "close_timeout",
        }
    }
}

impl fmt::Display for RelayEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CloseHandshake { initiator } => {
                write!(f, "close handshake started by {initiator}")
            }
            Self::ClientGone => f.write_str("client went away without closing"),
            Self::BackendGone => f.write_str("backend went away without closing"),
            Self::ProtocolError { side, error } => write!(f, "protocol error from {side}: {error}"),
            Self::MessageTooBig { side } => write!(f, "message too big from {side}"),
            Self::InvalidUtf8 { side } => write!(f, "text that is not UTF-8 from {side}"),
            Self::RateLimited => f.write_str("client over its message rate"),
            Self::IdleTimeout => f.write_str("idle timeout"),
            Self::PongTimeout => f.write_str("client did not answer ping"),
            Self::Shutdown => f.write_str("gateway shutdown"),
            Self::CloseTimeout { initiator } => {
                write!(f, "close started by {initiator} was not answered in time")
            }
        }
    }
}

/// What happened on one relayed connection, for the log line and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayReport {
    /// How long the relay ran.
    pub duration: Duration,
    /// Status code in the close frame the client sent, if any.
    pub client_close: Option<u16>,
    /// Status code in the close frame the backend sent, if any.
    pub backend_close: Option<u16>,
    /// Why it ended.
    pub end: RelayEnd,
    /// Status code of a close frame the gateway itself sent to the client.
    pub sent_to_client: Option<u16>,
    /// Status code of a close frame the gateway itself sent to the backend.
    pub sent_to_backend: Option<u16>,
    /// Times reading the client paused for its `client_bytes_per_second`.
    pub client_pauses: u64,
}

impl RelayReport {
    /// The report as the metrics take it: plain values and labels;
    /// `http_version` is the client's (`1.1` or `2`).
    pub fn ended(&self, http_version: &'static str) -> RelayEnded {
        RelayEnded {
            http_version,
            client_close: self.client_close,
            backend_close: self.backend_close,
            sent_to_client: self.sent_to_client,
            sent_to_backend: self.sent_to_backend,
            end: self.end.label(),
            duration: self.duration,
        }
    }
}

/// Relays frames between `client` and `backend` until the connection ends.
///
/// Both streams are shut down before the future completes; it never panics
/// on peer input and always finishes (every waiting phase has a deadline).
///
/// Not an `async fn`: the connection is built here and moved once into the
/// future, which then holds it as its only copy. An `async fn` would keep
/// its arguments alongside the connection built from them, a few hundred
/// bytes more for every open WebSocket.
pub fn relay<C, B>(
    client: C,
    backend: B,
    cfg: RelayConfig,
    stats: Arc<RelayStats>,
    shutdown: CancellationToken,
) -> impl Future<Output = RelayReport> + Send
where
    C: AsyncRead + AsyncWrite + SpliceTcp + Unpin + Send,
    B: AsyncRead + AsyncWrite + SpliceTcp + Unpin + Send,
{
    let (client_rd, client_wr) = split::split(client);
    let (backend_rd, backend_wr) = split::split(backend);
    let c2b = pump::Pump::new(Side::Client, client_rd, backend_wr, &cfg, stats.clone());
    let b2c = pump::Pump::new(Side::Backend, backend_rd, client_wr, &cfg, stats);
    let mut conn = conn::Conn::new(c2b, b2c, cfg);
    // An async block uses what it captures in place; an `async fn` would
    // copy its arguments into its body's locals, storing them twice.
    async move { conn.run(&shutdown).await }
}
