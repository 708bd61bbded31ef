//! Which streams are plain TCP underneath, for the relay's splice(2) of
//! large payloads (`ws::relay::splice`): bytes can only bypass user space
//! between two kernel sockets, never through TLS or an HTTP/2 stream.

use tokio::net::TcpStream;

/// A stream that may be a plain TCP socket underneath.
pub trait SpliceTcp {
    /// The TCP socket whose bytes may bypass user space, if any.
    fn splice_tcp(&self) -> Option<&TcpStream> {
        None
    }
}

impl SpliceTcp for TcpStream {
    fn splice_tcp(&self) -> Option<&TcpStream> {
        Some(self)
    }
}

/// In-memory pipes (tests, the fuzz target): never spliced.
impl SpliceTcp for tokio::io::DuplexStream {}
