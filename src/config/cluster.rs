//! `[cluster]` at run time: the shared secret, the peer listener and the
//! address peers reach this instance at (docs/cluster.md).

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

/// The shortest secret accepted, in bytes: a MAC key is as strong as its
/// entropy, and 32 random bytes (256 bits) match HMAC-SHA256.
pub const MIN_SECRET_LEN: usize = 32;

/// Validated `[cluster]` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    /// The secret every instance shares: it signs session ids and the
    /// requests instances forward to each other.
    pub secret: Secret,
    /// Where the peer listener binds.
    pub bind: SocketAddr,
    /// How peers reach this instance, `host:port`; it is written into
    /// every session id this instance opens.
    pub advertise: String,
}

/// The cluster secret; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<[u8]>);

impl Secret {
    /// Wraps the secret's bytes.
    pub fn new(bytes: &[u8]) -> Self {
        Secret(bytes.into())
    }

    /// The secret's bytes, to key a MAC with.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<{} bytes, redacted>)", self.0.len())
    }
}
