//! Header rewriting shared by HTTP forwarding and the WebSocket dial.
//!
//! Hop-by-hop headers describe one connection and must not cross the gateway
//! (RFC 9110 §7.6.1); forwarding headers tell the backend who the client was.
//! Cookies, `Authorization` and the Host header pass through untouched.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use super::client::ClientInfo;

/// Headers that are always hop-by-hop.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Removes hop-by-hop headers, including `Upgrade` and every header the
/// `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    headers.remove(header::UPGRADE);
}

/// Adds `X-Forwarded-For` (appended to any the client sent, as nginx's
/// `$proxy_add_x_forwarded_for` does), `X-Forwarded-Proto`,
/// `X-Forwarded-Host` and an appended RFC 7239 `Forwarded` element.
pub fn add_forwarding(headers: &mut HeaderMap, client: &ClientInfo) {
    let ip = client.peer.ip();
    let xff = match joined(headers, "x-forwarded-for") {
        Some(prior) => format!("{prior}, {ip}"),
        None => ip.to_string(),
    };
    set(headers, "x-forwarded-for", &xff);
    set(headers, "x-forwarded-proto", client.proto());
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned);
    match &host {
        Some(host) => set(headers, "x-forwarded-host", host),
        None => {
            headers.remove("x-forwarded-host");
        }
    }
    let mut element = format!("for={};proto={}", forwarded_node(ip), client.proto());
    if let Some(host) = host {
        element.push_str(&format!(";host=\"{}\"", host.replace(['"', '\\'], "")));
    }
    let forwarded = match joined(headers, "forwarded") {
        Some(prior) => format!("{prior}, {element}"),
        None => element,
    };
    set(headers, "forwarded", &forwarded);
}

/// An IP as RFC 7239 wants it: IPv6 quoted and bracketed.
fn forwarded_node(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("\"[{v6}]\""),
    }
}

/// All values of a header joined with ", ", if any are valid text.
fn joined(headers: &HeaderMap, name: &str) -> Option<String> {
    let values: Vec<&str> = headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

/// Replaces a header; values that are not valid header text are skipped.
fn set(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(HeaderName::from_static(name), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(addr: &str, tls: bool) -> ClientInfo {
        ClientInfo {
            peer: addr.parse().unwrap(),
            tls,
            http: crate::http::client::HttpVersion::Http1,
        }
    }

    #[test]
    fn hop_by_hop_headers_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, X-Secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::UPGRADE, HeaderValue::from_static("h2c"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert(header::COOKIE, HeaderValue::from_static("a=b"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer t"));
        strip_hop_by_hop(&mut h);
        let mut left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        left.sort();
        assert_eq!(left, ["authorization", "cookie"]);
    }

    #[test]
    fn forwarding_headers_are_added_and_appended() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("chat.example.com"));
        h.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.9"));
        add_forwarding(&mut h, &client("192.0.2.1:5555", true));
        assert_eq!(h["x-forwarded-for"], "203.0.113.9, 192.0.2.1");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "chat.example.com");
        assert_eq!(
            h["forwarded"],
            "for=192.0.2.1;proto=https;host=\"chat.example.com\""
        );
    }

    #[test]
    fn ipv6_clients_are_quoted_in_forwarded() {
        let mut h = HeaderMap::new();
        add_forwarding(&mut h, &client("[::1]:5555", false));
        assert_eq!(h["x-forwarded-for"], "::1");
        assert_eq!(h["forwarded"], "for=\"[::1]\";proto=http");
        assert!(h.get("x-forwarded-host").is_none());
    }
}
