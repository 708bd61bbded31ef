//! Who the client is and what it asked for: its address and transport, and
//! the host it named. Every path (upgrade, fallback, plain HTTP) reads these
//! the same way.

use std::net::SocketAddr;

use http::{header, Request};

/// What the backend should learn about the downstream connection.
#[derive(Debug, Clone, Copy)]
pub struct ClientInfo {
    /// The client's socket address.
    pub peer: SocketAddr,
    /// Whether the client connected over TLS (`X-Forwarded-Proto: https`).
    pub tls: bool,
    /// The HTTP the client's connection speaks.
    pub http: HttpVersion,
}

/// The HTTP of a client connection. Backends are always spoken to in
/// HTTP/1.1; this is the client's side only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpVersion {
    /// HTTP/1.1 (or 1.0).
    Http1,
    /// HTTP/2, over TLS with ALPN `h2`.
    Http2,
}

impl HttpVersion {
    /// The `http_version` label and log field: `1.1` or `2`.
    pub fn label(self) -> &'static str {
        match self {
            HttpVersion::Http1 => "1.1",
            HttpVersion::Http2 => "2",
        }
    }
}

impl ClientInfo {
    /// `http` or `https`.
    pub fn proto(&self) -> &'static str {
        if self.tls {
            "https"
        } else {
            "http"
        }
    }
}

/// The request's host: the absolute-form URI's authority wins over the Host
/// header (RFC 9112 §3.2.2).
pub fn request_host<B>(req: &Request<B>) -> Option<String> {
    if let Some(authority) = req.uri().authority() {
        return Some(authority.as_str().to_owned());
    }
    req.headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
}
