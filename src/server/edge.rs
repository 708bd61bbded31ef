//! Who is on the other end of an accepted connection, decided before TLS
//! and before any request: the client itself, a trusted proxy whose
//! forwarding headers name the client per request, or a trusted balancer
//! whose PROXY protocol header names it once for the connection.
//!
//! A PROXY header is read only from `trusted_proxies`, within
//! [`PROXY_HEADER_TIMEOUT`]; the connection is then counted against the
//! limits under the client it names. On a `proxy_protocol` listener an
//! untrusted peer is served as a direct client, but one that opens with
//! a PROXY header is closed: it is trying to choose its own address. Every
//! refusal is closed without an answer (there is no protocol to answer
//! in yet), logged with its reason and counted in
//! `wsgate_proxy_protocol_headers_total{result}`.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::TcpStream;

use crate::config::{Listener, TrustedProxies};
use crate::gateway::Gateway;
use crate::net::proxy_header::{self, ProxyHeader};

/// How long a trusted balancer may take to send its PROXY header, and an
/// untrusted peer on a `proxy_protocol` listener its first bytes. A
/// balancer sends the header at once with its connection; anything
/// slower is a stall.
pub const PROXY_HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// The bytes looked at to tell whether an untrusted peer opens with a
/// PROXY header (the v2 signature's length; v1's prefix is shorter).
const SNIFF_LEN: usize = 12;

/// A listener's trust settings.
#[derive(Debug, Clone)]
pub struct Edge {
    /// `trusted_proxies`.
    pub trusted: TrustedProxies,
    /// `proxy_protocol`.
    pub proxy_protocol: bool,
}

impl Edge {
    /// The settings of `listener`.
    pub fn new(listener: &Listener) -> Edge {
        Edge {
            trusted: listener.trusted_proxies.clone(),
            proxy_protocol: listener.proxy_protocol,
        }
    }

    /// How a connection from `peer` enters.
    pub(super) fn entry(&self, peer: IpAddr) -> Entry {
        let trusted = !self.trusted.is_empty() && self.trusted.contains(peer);
        match (trusted, self.proxy_protocol) {
            (true, true) => Entry::ProxyHeader,
            (true, false) => Entry::Proxy,
            (false, true) => Entry::Sniffed,
            (false, false) => Entry::Direct,
        }
    }
}

/// How a connection enters, by who its peer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Entry {
    /// An untrusted peer: it is the client.
    Direct,
    /// An untrusted peer on a `proxy_protocol` listener: it is the client,
    /// unless it opens with a PROXY header, which closes it.
    Sniffed,
    /// A trusted proxy: clients are named per request.
    Proxy,
    /// A trusted balancer: its PROXY header names the client.
    ProxyHeader,
}

/// Reads a trusted balancer's PROXY header. `Some(client)` is the client
/// it names (`Some(None)`: the balancer named none, the peer stands);
/// `None` means the connection is to be closed, logged and counted here.
pub(super) async fn read_proxy_header(
    stream: &mut TcpStream,
    peer: SocketAddr,
    gateway: &Gateway,
) -> Option<Option<SocketAddr>> {
    let read = tokio::time::timeout(PROXY_HEADER_TIMEOUT, proxy_header::read(stream));
    let result = tokio::select! {
        result = read => result,
        _ = gateway.shutdown.closing().cancelled() => return None,
    };
    let metrics = &gateway.metrics;
    match result {
        Ok(Ok(ProxyHeader::Client(client))) => {
            metrics.proxy_header("accepted");
            Some(Some(client))
        }
        Ok(Ok(ProxyHeader::Unknown)) => {
            metrics.proxy_header("local");
            Some(None)
        }
        Ok(Err(error)) => {
            metrics.proxy_header(error.label());
            tracing::warn!(peer = %peer, reason = error.label(), error = %error, "PROXY header refused; connection closed");
            None
        }
        Err(_) => {
            metrics.proxy_header("timeout");
            tracing::warn!(peer = %peer, reason = "timeout", timeout = ?PROXY_HEADER_TIMEOUT, "no PROXY header in time; connection closed");
            None
        }
    }
}

/// Whether an untrusted peer on a `proxy_protocol` listener may go on:
/// false (logged and counted) when its first bytes are a PROXY header or
/// none came in time. The bytes are only peeked at, never consumed.
pub(super) async fn untrusted_may_proceed(
    stream: &TcpStream,
    peer: SocketAddr,
    gateway: &Gateway,
) -> bool {
    let mut first = [0u8; SNIFF_LEN];
    let peek = tokio::time::timeout(PROXY_HEADER_TIMEOUT, stream.peek(&mut first));
    let peeked = tokio::select! {
        peeked = peek => peeked,
        _ = gateway.shutdown.closing().cancelled() => return false,
    };
    let reason = match peeked {
        Ok(Ok(n)) if proxy_header::looks_like_header(&first[..n]) => "untrusted",
        Ok(_) => return true,
        Err(_) => "timeout",
    };
    gateway.metrics.proxy_header(reason);
    tracing::warn!(peer = %peer, reason, "PROXY header from an untrusted peer, or no bytes in time; connection closed");
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_by_trust_and_protocol() {
        let trusted = TrustedProxies(vec!["10.0.0.0/8".parse().unwrap()]);
        let edge = |proxy_protocol| Edge {
            trusted: trusted.clone(),
            proxy_protocol,
        };
        let (inside, outside) = ("10.1.2.3".parse().unwrap(), "192.0.2.1".parse().unwrap());
        assert_eq!(edge(true).entry(inside), Entry::ProxyHeader);
        assert_eq!(edge(true).entry(outside), Entry::Sniffed);
        assert_eq!(edge(false).entry(inside), Entry::Proxy);
        assert_eq!(edge(false).entry(outside), Entry::Direct);
    }
}
