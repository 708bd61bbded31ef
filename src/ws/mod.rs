//! WebSocket after the handshake: the frame-header codec and the relay.
//!
//! The gateway never reassembles or unmasks messages it forwards. [`frame`]
//! reads and writes just enough of RFC 6455 §5 to find frame boundaries,
//! enforce the protocol and build the few control frames the gateway sends
//! itself; [`relay`] streams payload bytes straight from one side's read
//! buffer to the other side, so memory per connection is bounded by two small
//! buffers, not by message size.

pub mod frame;
pub mod relay;

#[cfg(test)]
mod test_support;
