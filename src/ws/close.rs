//! The close codes the gateway itself sends (RFC 6455 §7.4.1 and the IANA
//! registry) and how long it waits for a peer's close reply: one place for
//! the relay and the fallback's bridge.

use std::time::Duration;

/// A normal close: the purpose of the connection is fulfilled.
pub const NORMAL: u16 = 1000;
/// Leaving: drain, idle timeout, a vanished client, an expired session.
pub const GOING_AWAY: u16 = 1001;
/// The peer broke RFC 6455.
pub const PROTOCOL_ERROR: u16 = 1002;
/// "No status code": a close frame without a payload.
pub const NO_STATUS: u16 = 1005;
/// A text message that is not UTF-8.
pub const INVALID_PAYLOAD: u16 = 1007;
/// A policy the client broke: its message rate.
pub const POLICY_VIOLATION: u16 = 1008;
/// A message over `max_message_size`.
pub const MESSAGE_TOO_BIG: u16 = 1009;
/// The backend vanished mid-connection.
pub const INTERNAL_ERROR: u16 = 1011;
/// "Service restart": a fallback client should reconnect (the drain).
pub const SERVICE_RESTART: u16 = 1012;

/// How long the gateway waits for a peer's close reply before dropping
/// the connection.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The reason texts the gateway sends with its own closes: one text per
/// cause, the same on a relayed WebSocket and on a fallback session (a
/// client cannot tell which transport it got from the reason).
pub mod reason {
    /// 1011 to the client: the backend connection broke without a close.
    pub const BACKEND_GONE: &str = "backend went away";
    /// 1001 to the backend: the client's connection broke without a close.
    pub const CLIENT_GONE: &str = "client went away";
    /// 1001 to both sides of a relay, and to a fallback session's backend:
    /// the gateway is draining.
    pub const SHUTTING_DOWN: &str = "gateway shutting down";
    /// 1012 to a fallback client: the gateway is draining, and a fallback
    /// client (unlike a WebSocket one) should reconnect at once.
    pub const RESTARTING: &str = "gateway restarting; reconnect";
    /// 1001 to both sides: nothing was relayed for `idle_timeout`.
    pub const IDLE_TIMEOUT: &str = "idle timeout";
    /// 1001 to the backend: the client did not answer a gateway ping.
    pub const PONG_TIMEOUT: &str = "client did not answer ping";
    /// 1001 to the backend: nobody polled the fallback session in time.
    pub const SESSION_EXPIRED: &str = "fallback session expired";
}
