//! WebSocket: the handshake checks and backend dial, then, after the 101,
//! the frame-header codec and the relay.
//!
//! [`handshake`] decides whether a client may upgrade (before any backend
//! is touched), [`dial`] performs the gateway's own handshake with a backend,
//! and [`session`] ties both to a relay task that shutdown can see.
//!
//! The gateway never reassembles or unmasks messages it forwards. [`frame`]
//! reads and writes just enough of RFC 6455 §5 to find frame boundaries,
//! enforce the protocol and build the few control frames the gateway sends
//! itself; [`relay`] streams payload bytes straight from one side's read
//! buffer to the other side, so memory per connection is bounded by two small
//! buffers, not by message size. Text messages are checked for UTF-8 on
//! the way ([`utf8`]) from an unmasked stack copy; what is forwarded stays
//! as it came.

pub mod dial;
pub mod frame;
pub mod handshake;
pub mod relay;
pub mod session;
pub mod utf8;

#[cfg(test)]
mod test_support;
