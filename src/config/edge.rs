//! Runtime settings of the policies at the edge: whom a listener trusts to
//! say who the client is, and what a route asks of a client before and
//! while it is served (forward auth, message and byte rates, a cap on its
//! WebSockets). Kept apart from the rest of the runtime config because
//! other keys are added beside these at the same time.

use std::net::IpAddr;
use std::time::Duration;

use http::HeaderName;
use ipnet::IpNet;

use super::RemoteBackend;

/// `trusted_proxies` of a listener: the peers whose forwarding headers
/// (and PROXY headers) are believed. Empty trusts no one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(pub Vec<IpNet>);

impl TrustedProxies {
    /// Whether `ip` is a trusted proxy. An IPv4-mapped IPv6 address is
    /// judged as the IPv4 address it carries.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            IpAddr::V4(_) => ip,
        };
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// Whether no one is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What a route asks of a client beyond the handshake's own checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EdgePolicy {
    /// `auth`: a subrequest that must admit the request first.
    pub auth: Option<ForwardAuth>,
    /// `client_messages_per_second`: the rate of messages a client may
    /// send (a WebSocket's, or a fallback session's POSTed messages).
    pub messages_per_second: Option<MessageRate>,
    /// `client_bytes_per_second`: above it, the relay stops reading the
    /// client for a while.
    pub bytes_per_second: Option<u64>,
    /// `websockets_per_client`: WebSockets one client address may hold on
    /// the route at once.
    pub websockets_per_client: Option<u64>,
}

/// A message rate with its burst: a token bucket that holds `burst`
/// tokens and gains `per_second` of them each second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageRate {
    /// Messages per second, sustained.
    pub per_second: u32,
    /// Messages that may come at once after a quiet spell.
    pub burst: u32,
}

/// `auth = { forward = URL, copy_headers = [...], timeout = "2s" }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardAuth {
    /// The auth service, dialled as a backend is (`http://` or `https://`).
    pub service: RemoteBackend,
    /// The path and query the subrequest asks for (`/` when the URL has none).
    pub path: String,
    /// Response headers of a 2xx copied onto the backend request; the
    /// client's own copies are always removed first.
    pub copy_headers: Vec<HeaderName>,
    /// The whole subrequest, connect included, must finish within this.
    pub timeout: Duration,
}
