//! The TLS side of ACME's TLS-ALPN-01 challenge (RFC 8737): a CA that
//! validates a name opens TLS with ALPN `acme-tls/1` (and nothing else)
//! and expects a self-signed certificate carrying the challenge's digest.
//! Certificates for those handshakes come from the `acme` layer above
//! through [`ValidationCerts`]; this module only recognises the handshake.

use std::fmt::Debug;
use std::sync::Arc;

use rustls::server::ClientHello;
use rustls::sign::CertifiedKey;

/// The ALPN protocol of TLS-ALPN-01 validation handshakes.
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// Answers TLS-ALPN-01 validation handshakes: the validation certificate
/// for a name while a challenge for it is pending.
pub trait ValidationCerts: Send + Sync + Debug {
    /// The validation certificate for `name` (lower-cased), if a challenge
    /// for it is pending.
    fn validation_cert(&self, name: &str) -> Option<Arc<CertifiedKey>>;
}

/// Whether the client offers `acme-tls/1` and only that, as a validating
/// CA does (RFC 8737 §3); any other client gets the ordinary certificate.
pub fn is_validation(hello: &ClientHello<'_>) -> bool {
    let Some(mut offered) = hello.alpn() else {
        return false;
    };
    offered.next() == Some(ACME_TLS_ALPN) && offered.next().is_none()
}
