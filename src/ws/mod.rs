//! WebSocket: admission (the handshake checks and the backend dial), then,
//! after the 101, the frame-header codec and the relay.
//!
//! [`admit`] is the one admission path every way in shares: [`handshake`]
//! decides whether a client may open a WebSocket (before any backend is
//! touched) and [`dial`] performs the gateway's own handshake with a
//! backend. [`upgrade`] answers an HTTP/1.1 upgrade and starts its relay as a
//! task the drain can see. [`close`] holds the close codes the gateway sends.
//!
//! The gateway never reassembles or unmasks messages it forwards. [`frame`]
//! reads and writes just enough of RFC 6455 §5 to find frame boundaries,
//! enforce the protocol and build the few control frames the gateway sends
//! itself; [`relay`] streams payload bytes straight from one side's read
//! buffer to the other side, so memory per connection is bounded by two small
//! buffers, not by message size. Text messages are checked for UTF-8 on
//! the way ([`utf8`]) from an unmasked stack copy; what is forwarded stays
//! as it came.

pub mod admit;
pub mod close;
pub mod dial;
pub mod frame;
pub mod handshake;
pub mod relay;
pub mod upgrade;
pub mod utf8;

#[cfg(test)]
mod test_support;
