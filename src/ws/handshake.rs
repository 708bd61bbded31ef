//! Checks on a client's upgrade request, made before any backend is touched.
//!
//! fastwebsockets and tungstenite accept any Origin and subprotocol; deciding
//! those is precisely the gateway's job. The order of the checks fixes which
//! answer a request with several faults gets: request shape (400), version
//! (426, or 400 when malformed), key (400), Origin (403), subprotocol (400).
//! An HTTP/2 extended CONNECT (RFC 8441) has its own shape and no key
//! ([`connect`]); version and policy are the same checks.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use http::header::{self, HeaderMap};
use http::{request, Method, Version};
use sha1::{Digest, Sha1};

use crate::config::{OriginPattern, OriginPolicy, Route};
use crate::http::client::ClientInfo;
use crate::http::error::ProxyError;

/// The GUID of RFC 6455 §1.3, appended to the key for the accept hash.
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The only extension the relay understands (it lets RSV1 through).
const DEFLATE: &str = "permessage-deflate";

/// What survives the checks and goes on to the backend handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedUpgrade {
    /// The client's `Sec-WebSocket-Key`, for the accept value of its 101.
    pub key: String,
    /// The subprotocols to offer the backend, in the client's order.
    pub protocols: Vec<String>,
    /// The `permessage-deflate` offers to forward, if any.
    pub extensions: Option<String>,
    /// Headers the route's auth service vouched for, for the backend
    /// request (`None` without `auth`).
    pub vouched: Option<Box<HeaderMap>>,
}

/// Whether the request asks for a WebSocket (an `Upgrade` header naming
/// `websocket`); such a request is checked here and never proxied as HTTP.
pub fn is_websocket_request(headers: &HeaderMap) -> bool {
    has_token(headers, header::UPGRADE, "websocket")
}

/// Whether the request tries an HTTP/2 cleartext upgrade (`Upgrade: h2c`
/// or an `HTTP2-Settings` header): the h2c smuggling vector, refused
/// outright rather than answered as HTTP/1.1.
pub fn is_h2c_request(headers: &HeaderMap) -> bool {
    has_token(headers, header::UPGRADE, "h2c") || headers.contains_key("http2-settings")
}

mod connect;

pub use connect::check_extended;

/// Runs every check of DESIGN.md's handshake table in order.
pub fn check(
    req: &request::Parts,
    route: &Route,
    client: &ClientInfo,
) -> Result<CheckedUpgrade, ProxyError> {
    check_shape(req)?;
    check_version(&req.headers)?;
    let key = check_key(&req.headers)?;
    let protocols = check_policy(
        &req.headers,
        &offered_protocols(&req.headers),
        route,
        client,
    )?;
    Ok(CheckedUpgrade {
        key,
        protocols,
        extensions: deflate_offers(&req.headers),
        vouched: None,
    })
}

/// The route's policy checks, which do not depend on the upgrade mechanics:
/// Origin (403), then subprotocol (400). Returns the subprotocols to offer
/// the backend. The fallback calls this for its plain-HTTP session opens, so
/// both transports admit exactly the same clients.
pub fn check_policy(
    headers: &HeaderMap,
    offered: &[String],
    route: &Route,
    client: &ClientInfo,
) -> Result<Vec<String>, ProxyError> {
    check_origin(headers, route, client)?;
    filter_protocols(offered, &route.subprotocols)
}

/// Method, HTTP version, `Connection: upgrade`, and no body.
fn check_shape(req: &request::Parts) -> Result<(), ProxyError> {
    if req.method != Method::GET {
        return Err(ProxyError::BadHandshake(
            "the upgrade request must be a GET",
        ));
    }
    if req.version != Version::HTTP_11 {
        return Err(ProxyError::BadHandshake(
            "the upgrade request must be HTTP/1.1",
        ));
    }
    if !has_token(&req.headers, header::CONNECTION, "upgrade") {
        return Err(ProxyError::BadHandshake(
            "Connection must include \"upgrade\"",
        ));
    }
    let has_length = req
        .headers
        .get(header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() != b"0");
    if has_length || req.headers.contains_key(header::TRANSFER_ENCODING) {
        return Err(ProxyError::BadHandshake(
            "the upgrade request must not have a body",
        ));
    }
    Ok(())
}

/// `Sec-WebSocket-Version` must be exactly one header saying 13. Another
/// version, or none, is 426 (RFC 6455 §4.2.2); a value that is not a
/// version at all (§4.1's `1*DIGIT` up to 255), or a repeated header, is a
/// malformed request: 400.
fn check_version(headers: &HeaderMap) -> Result<(), ProxyError> {
    let mut values = headers.get_all(header::SEC_WEBSOCKET_VERSION).iter();
    let shown = |v: &header::HeaderValue| {
        String::from_utf8_lossy(v.as_bytes())
            .chars()
            .take(32)
            .collect::<String>()
    };
    match (values.next(), values.next()) {
        (Some(v), None) if v.as_bytes().trim_ascii() == b"13" => Ok(()),
        (Some(v), None) if is_version(v.as_bytes().trim_ascii()) => {
            Err(ProxyError::UnsupportedVersion(shown(v)))
        }
        (Some(v), _) => Err(ProxyError::MalformedVersion(shown(v))),
        (None, _) => Err(ProxyError::UnsupportedVersion(String::new())),
    }
}

/// A WebSocket version number: decimal, no leading zero, 0 to 255.
fn is_version(text: &[u8]) -> bool {
    let digits = !text.is_empty() && text.len() <= 3 && text.iter().all(u8::is_ascii_digit);
    let canonical = text.len() == 1 || text.first() != Some(&b'0');
    digits
        && canonical
        && std::str::from_utf8(text)
            .ok()
            .and_then(|t| t.parse::<u16>().ok())
            .is_some_and(|n| n <= 255)
}

/// `Sec-WebSocket-Key` must be one header, base64 of exactly 16 bytes.
fn check_key(headers: &HeaderMap) -> Result<String, ProxyError> {
    let mut values = headers.get_all(header::SEC_WEBSOCKET_KEY).iter();
    let key = match (values.next(), values.next()) {
        (Some(key), None) => key,
        (None, _) => return Err(ProxyError::BadHandshake("Sec-WebSocket-Key is missing")),
        (Some(_), Some(_)) => {
            return Err(ProxyError::BadHandshake("Sec-WebSocket-Key is repeated"))
        }
    };
    let key = key.to_str().map(str::trim).unwrap_or("");
    match BASE64.decode(key) {
        Ok(bytes) if bytes.len() == 16 => Ok(key.to_string()),
        _ => Err(ProxyError::BadHandshake(
            "Sec-WebSocket-Key must be 16 bytes in base64",
        )),
    }
}

/// Applies the route's Origin policy; a missing Origin is a non-browser client.
fn check_origin(headers: &HeaderMap, route: &Route, client: &ClientInfo) -> Result<(), ProxyError> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return match route.allow_missing_origin {
            true => Ok(()),
            false => Err(ProxyError::OriginMissing),
        };
    };
    let text = origin.to_str().unwrap_or("");
    let allowed = match &route.origins {
        OriginPolicy::Any => true,
        OriginPolicy::SameOrigin => {
            parse_origin(text).is_some_and(|o| same_origin(&o, headers, client))
        }
        OriginPolicy::List(patterns) => {
            parse_origin(text).is_some_and(|o| patterns.iter().any(|p| origin_matches(p, &o)))
        }
    };
    match allowed {
        true => Ok(()),
        false => Err(ProxyError::OriginNotAllowed {
            origin: text.chars().take(200).collect(),
        }),
    }
}

/// An Origin header value taken apart.
#[derive(Debug, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

/// Parses `scheme://host[:port]`; `null` and anything else fail.
fn parse_origin(text: &str) -> Option<Origin> {
    let (scheme, rest) = text.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let (host, port) = split_host_port(rest, default_port)?;
    Some(Origin { scheme, host, port })
}

/// Splits `host[:port]` (IPv6 in brackets), lower-casing the host.
fn split_host_port(authority: &str, default_port: u16) -> Option<(String, u16)> {
    let (host, port) = match authority.strip_prefix('[') {
        Some(rest) => {
            let (host, after) = rest.split_once(']')?;
            (host, after.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => default_port,
    };
    if host.is_empty() || host.contains(['/', '?', '#', '@', ' ']) {
        return None;
    }
    Some((host.to_ascii_lowercase(), port))
}

/// Same origin: the Origin's host and port equal the Host header's, with the
/// listener's scheme supplying Host's default port.
fn same_origin(origin: &Origin, headers: &HeaderMap, client: &ClientInfo) -> bool {
    let default_port = if client.tls { 443 } else { 80 };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    host.and_then(|h| split_host_port(h, default_port))
        .is_some_and(|(host, port)| host == origin.host && port == origin.port)
}

/// Whether an allowlist entry admits an origin: same scheme and port, and the
/// same host or, for `*.parent`, one or more labels below the parent.
fn origin_matches(pattern: &OriginPattern, origin: &Origin) -> bool {
    if pattern.scheme != origin.scheme || pattern.port != origin.port {
        return false;
    }
    if pattern.wildcard {
        origin
            .host
            .strip_suffix(pattern.host.as_str())
            .is_some_and(|label| label.len() > 1 && label.ends_with('.'))
    } else {
        pattern.host == origin.host
    }
}

/// Every subprotocol the client offered, in its order.
pub fn offered_protocols(headers: &HeaderMap) -> Vec<String> {
    comma_values(headers, header::SEC_WEBSOCKET_PROTOCOL)
}

/// The offer to forward: unchanged when the route lists none, else only the
/// allowed ones (at least one, or 400 listing what is allowed).
fn filter_protocols(offered: &[String], allowed: &[String]) -> Result<Vec<String>, ProxyError> {
    if allowed.is_empty() {
        return Ok(offered.to_vec());
    }
    let kept: Vec<String> = offered
        .iter()
        .filter(|p| allowed.contains(p))
        .cloned()
        .collect();
    match kept.is_empty() {
        true => Err(ProxyError::SubprotocolNotOffered {
            allowed: allowed.to_vec(),
        }),
        false => Ok(kept),
    }
}

/// The subprotocol for the client's 101: the backend's choice (which must be
/// one we offered), else the route's first allowed protocol the client offered.
pub fn choose_protocol(
    route: &Route,
    forwarded: &[String],
    backend_choice: Option<&str>,
) -> Result<Option<String>, String> {
    match backend_choice {
        Some(choice) if forwarded.iter().any(|p| p == choice) => Ok(Some(choice.to_string())),
        Some(choice) => Err(format!(
            "picked subprotocol {choice:?}, which was not offered"
        )),
        None => Ok(route
            .subprotocols
            .iter()
            .find(|p| forwarded.contains(p))
            .cloned()),
    }
}

/// The client's `permessage-deflate` offers; other extensions are dropped
/// because the relay could not tell their RSV bits from protocol errors.
fn deflate_offers(headers: &HeaderMap) -> Option<String> {
    let offers: Vec<String> = comma_values(headers, header::SEC_WEBSOCKET_EXTENSIONS)
        .into_iter()
        .filter(|offer| extension_name(offer).eq_ignore_ascii_case(DEFLATE))
        .collect();
    (!offers.is_empty()).then(|| offers.join(", "))
}

/// Checks the backend's `Sec-WebSocket-Extensions` answer: only
/// `permessage-deflate`, only when offered. Returns whether it was negotiated.
pub fn check_extension_answer(answer: &HeaderMap, offered: bool) -> Result<bool, String> {
    let accepted = comma_values(answer, header::SEC_WEBSOCKET_EXTENSIONS);
    for extension in &accepted {
        let name = extension_name(extension);
        if !name.eq_ignore_ascii_case(DEFLATE) || !offered {
            return Err(format!(
                "accepted extension {name:?}, which was not offered"
            ));
        }
    }
    Ok(!accepted.is_empty())
}

/// The name part of one extension offer (`name; param=value`).
fn extension_name(offer: &str) -> &str {
    offer.split(';').next().unwrap_or("").trim()
}

/// The `Sec-WebSocket-Accept` value for a key (RFC 6455 §4.2.2).
pub fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(ACCEPT_GUID.as_bytes());
    BASE64.encode(sha.finalize())
}

/// A fresh random key for the gateway's own handshake with a backend.
pub fn new_key() -> String {
    BASE64.encode(rand::random::<[u8; 16]>())
}

/// Whether a comma-separated header contains `token` (case-insensitive).
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    comma_values(headers, name)
        .iter()
        .any(|t| t.eq_ignore_ascii_case(token))
}

/// All comma-separated, trimmed, non-empty items of every value of a header.
fn comma_values(headers: &HeaderMap, name: header::HeaderName) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests;
