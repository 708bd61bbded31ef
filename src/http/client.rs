//! Who the client is and what it asked for: its address and transport, and
//! the host it named. Every path (upgrade, fallback, plain HTTP, forward
//! auth, limits, logs) reads the client from [`ClientInfo`], the same way.
//!
//! The client's address is established once per request, in this order:
//! the source of a PROXY protocol header sent by a trusted proxy (read by
//! the server layer before anything else on the connection), else the
//! socket peer; and when that hop is itself a trusted proxy, the right-most
//! address of `X-Forwarded-For` that is not one (the left-most when all
//! are). Nothing an untrusted peer sends changes it.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use http::{header, HeaderMap, Request};

use crate::config::TrustedProxies;

/// What the backend should learn about the downstream connection.
#[derive(Debug, Clone, Copy)]
pub struct ClientInfo {
    /// The socket peer: the client itself, or a proxy in front of it.
    pub peer: SocketAddr,
    /// The client, as established (see the module docs). What limits,
    /// logs, `X-Real-IP` and forward auth use.
    pub addr: ClientAddr,
    /// The hop the request came from, as the gateway counts hops: a PROXY
    /// header's source, else the socket peer. Its address is the one the
    /// gateway appends to `X-Forwarded-For`.
    pub hop: IpAddr,
    /// Whether `hop` is a trusted proxy: its forwarding headers are kept
    /// and appended to; otherwise they are dropped and set afresh.
    pub trusted: bool,
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

/// The client's address; the port is known for a direct or PROXY client,
/// not for one named by `X-Forwarded-For` (shown without one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(SocketAddr);

impl ClientAddr {
    /// The client's IP address.
    pub fn ip(&self) -> IpAddr {
        self.0.ip()
    }

    /// The client's address as a socket address (port 0 when a forwarding
    /// header named only an IP).
    pub fn socket(&self) -> SocketAddr {
        self.0
    }
}

impl fmt::Display for ClientAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.port() {
            0 => self.0.ip().fmt(f),
            _ => self.0.fmt(f),
        }
    }
}

/// What the server layer knows about a connection before any request.
#[derive(Debug, Clone, Copy)]
pub struct Connection {
    /// The socket peer.
    pub peer: SocketAddr,
    /// The client a trusted proxy's PROXY header named, if any.
    pub proxied: Option<SocketAddr>,
    /// Whether the connection is TLS.
    pub tls: bool,
    /// The HTTP the connection speaks (ALPN on TLS, else HTTP/1.1).
    pub http: HttpVersion,
}

impl ClientInfo {
    /// A client that connected directly, trusting no one.
    pub fn direct(peer: SocketAddr, tls: bool) -> ClientInfo {
        ClientInfo {
            peer,
            addr: ClientAddr(peer),
            hop: peer.ip(),
            trusted: false,
            tls,
            http: HttpVersion::Http1,
        }
    }

    /// Establishes the client of one request on `connection`, believing
    /// `headers` only as far as `trusted` says.
    pub fn resolve(
        connection: &Connection,
        headers: &HeaderMap,
        trusted: &TrustedProxies,
    ) -> ClientInfo {
        let source = connection.proxied.unwrap_or(connection.peer);
        let hop = source.ip();
        let is_trusted = !trusted.is_empty() && trusted.contains(hop);
        let addr = match is_trusted {
            true => forwarded_client(headers, trusted).map_or(source, |ip| SocketAddr::new(ip, 0)),
            false => source,
        };
        ClientInfo {
            peer: connection.peer,
            addr: ClientAddr(addr),
            hop,
            trusted: is_trusted,
            tls: connection.tls,
            http: connection.http,
        }
    }

    /// `http` or `https`.
    pub fn proto(&self) -> &'static str {
        if self.tls {
            "https"
        } else {
            "http"
        }
    }
}

/// The right-most `X-Forwarded-For` entry that is not a trusted proxy
/// (the left-most if all are). An entry that is not an address ends the
/// walk: what stands left of it cannot be told apart from a forgery.
fn forwarded_client(headers: &HeaderMap, trusted: &TrustedProxies) -> Option<IpAddr> {
    let mut entries: Vec<&str> = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let Ok(text) = value.to_str() else { break };
        entries.extend(text.split(','));
    }
    let mut client = None;
    for entry in entries.iter().rev() {
        let Some(ip) = parse_hop(entry.trim()) else {
            break;
        };
        client = Some(ip);
        if !trusted.contains(ip) {
            break;
        }
    }
    client
}

/// One `X-Forwarded-For` entry: `ip`, `ip:port` or `[v6]:port`.
fn parse_hop(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))
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

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn trusted(nets: &[&str]) -> TrustedProxies {
        TrustedProxies(nets.iter().map(|n| n.parse().unwrap()).collect())
    }

    fn resolve(peer: &str, proxied: Option<&str>, xff: &[&str], nets: &[&str]) -> ClientInfo {
        let mut headers = HeaderMap::new();
        for value in xff {
            headers.append("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        }
        let connection = Connection {
            peer: peer.parse().unwrap(),
            proxied: proxied.map(|p| p.parse().unwrap()),
            tls: false,
            http: HttpVersion::Http1,
        };
        ClientInfo::resolve(&connection, &headers, &trusted(nets))
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let client = resolve("203.0.113.7:4000", None, &["6.6.6.6"], &["10.0.0.0/8"]);
        assert_eq!(client.addr.to_string(), "203.0.113.7:4000");
        assert!(!client.trusted);
    }

    #[test]
    fn a_trusted_peer_names_the_right_most_untrusted_hop() {
        let nets = ["10.0.0.0/8"];
        let client = resolve(
            "10.0.0.2:4000",
            None,
            &["6.6.6.6, 198.51.100.4", "10.1.1.1"],
            &nets,
        );
        assert_eq!(client.addr.to_string(), "198.51.100.4");
        assert!(client.trusted);
        assert_eq!(client.hop.to_string(), "10.0.0.2");
        let all_trusted = resolve("10.0.0.2:1", None, &["10.0.0.9, 10.0.0.8"], &nets);
        assert_eq!(all_trusted.addr.to_string(), "10.0.0.9");
        let none = resolve("10.0.0.2:1", None, &[], &nets);
        assert_eq!(none.addr.to_string(), "10.0.0.2:1");
    }

    #[test]
    fn garbage_in_the_chain_stops_the_walk() {
        let client = resolve(
            "10.0.0.2:1",
            None,
            &["6.6.6.6, junk, 10.0.0.3"],
            &["10.0.0.0/8"],
        );
        assert_eq!(client.addr.to_string(), "10.0.0.3");
    }

    #[test]
    fn a_proxy_header_names_the_hop() {
        let nets = ["127.0.0.1/32"];
        let client = resolve(
            "127.0.0.1:5000",
            Some("192.0.2.8:61000"),
            &["6.6.6.6"],
            &nets,
        );
        assert_eq!(client.addr.to_string(), "192.0.2.8:61000");
        assert_eq!(client.peer.to_string(), "127.0.0.1:5000");
        assert!(!client.trusted, "the PROXY source is an ordinary client");
    }

    #[test]
    fn ipv6_and_ported_entries_parse() {
        assert_eq!(
            parse_hop("[2001:db8::1]:443"),
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(
            parse_hop("192.0.2.1:80"),
            Some("192.0.2.1".parse().unwrap())
        );
        assert_eq!(parse_hop("unknown"), None);
        let mapped = trusted(&["10.0.0.0/8"]);
        assert!(mapped.contains("::ffff:10.0.0.1".parse().unwrap()));
    }
}
