//! Runtime TLS settings: what a listener terminates and how a route dials
//! its `wss://` / `https://` backends. Kept apart from the rest of the
//! runtime config because only the TLS layers (`tls`, `upstream::tls`) read
//! them.

use std::path::PathBuf;
use std::time::Duration;

use http::HeaderName;

use super::{AcmeSettings, CertPair};

/// TLS settings of a listener, `[listeners.tls]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ListenerTls {
    /// Certificate chains with their keys; the first is the default when the
    /// client sends no SNI or a name no certificate covers.
    pub certs: Vec<CertPair>,
    /// Generate a self-signed certificate for localhost, 127.0.0.1 and ::1 at
    /// start-up (development); used after `certs`, or alone when it is empty.
    pub self_signed: bool,
    /// How long a client may take to complete the TLS handshake.
    pub handshake_timeout: Duration,
    /// How often cert and key files are checked for changes; zero turns the
    /// check off (SIGHUP still reloads).
    pub watch_interval: Duration,
    /// CA certificates (PEM) that client certificates must chain to; `None`
    /// means client certificates are not requested.
    pub client_ca: Option<PathBuf>,
    /// Header carrying the verified client certificate's subject to the
    /// backend; any copy the client sent is always removed.
    pub client_subject_header: Option<HeaderName>,
    /// Automatic certificates for the names listed there, beside `certs`
    /// and `self_signed` (SNI picks).
    pub acme: Option<AcmeSettings>,
    /// Offer HTTP/2 (ALPN `h2`) beside HTTP/1.1, with WebSocket over
    /// HTTP/2 (RFC 8441).
    pub http2: bool,
}

/// How a route dials TLS backends (`backend_ca`, `backend_sni`,
/// `backend_client_cert`); ignored for `ws://` and `http://` backends.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct BackendTls {
    /// CA certificates (PEM) the backend's certificate must chain to; `None`
    /// uses the public web PKI roots (webpki-roots).
    pub ca: Option<PathBuf>,
    /// Name sent as SNI and verified against the certificate instead of the
    /// backend URL's host.
    pub sni: Option<String>,
    /// Client certificate presented to backends that require mTLS.
    pub client_cert: Option<CertPair>,
}
