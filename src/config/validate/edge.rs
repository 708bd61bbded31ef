//! The edge keys: a listener's `trusted_proxies` and `proxy_protocol`, a
//! route's `auth`, `client_messages_per_second`, `client_bytes_per_second`
//! and `websockets_per_client`.

use http::HeaderName;
use ipnet::IpNet;

use super::super::file::{defaults, AuthFile, RouteFile};
use super::{values, Errors};
use crate::config::{Backend, EdgePolicy, ForwardAuth, MessageRate, TrustedProxies};

/// Headers that describe one connection (RFC 9110 §7.6.1): copying one
/// from the auth service onto the backend request would be meaningless or
/// would break the backend connection, so naming one is a config error.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The smallest `client_bytes_per_second`: a relay reads at most one
/// second's worth at a time, and a control frame (up to 131 bytes) must
/// not take seconds to arrive.
const MIN_BYTES_PER_SECOND: u64 = 1024;

/// A listener's `trusted_proxies` and `proxy_protocol`.
pub(super) fn listener(
    errors: &mut Errors,
    path: &str,
    trusted: Option<Vec<String>>,
    proxy_protocol: Option<bool>,
) -> (TrustedProxies, bool) {
    let mut nets = Vec::new();
    for (i, text) in trusted.unwrap_or_default().iter().enumerate() {
        let at = format!("{path}.trusted_proxies[{i}]");
        if let Some(net) = errors.check(at, cidr(text)) {
            nets.push(net);
        }
    }
    let proxy_protocol = proxy_protocol.unwrap_or(defaults::PROXY_PROTOCOL);
    if proxy_protocol && nets.is_empty() {
        errors.push(
            format!("{path}.proxy_protocol"),
            "PROXY headers are accepted only from trusted_proxies; list the balancers' addresses there",
        );
    }
    (TrustedProxies(nets), proxy_protocol)
}

/// `10.0.0.0/8`, or a bare address meaning just that address.
fn cidr(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    text.parse::<std::net::IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("{text:?} is not a CIDR (e.g. \"10.0.0.0/8\") or an IP address"))
}

/// A route's edge policy.
pub(super) fn route(
    errors: &mut Errors,
    at: &dyn Fn(&str) -> String,
    raw: &RouteFile,
) -> EdgePolicy {
    let auth = raw.auth.as_ref().and_then(|a| auth(errors, &at("auth"), a));
    let messages_per_second = raw
        .client_messages_per_second
        .and_then(|n| match u32::try_from(n) {
            Ok(per_second) if per_second >= 1 => Some(MessageRate {
                per_second,
                burst: per_second,
            }),
            _ => {
                errors.push(
                    at("client_messages_per_second"),
                    format!(
                        "must be a whole number of messages from 1 to {}, not {n}",
                        u32::MAX
                    ),
                );
                None
            }
        });
    let bytes_per_second = raw.client_bytes_per_second.clone().map(|raw| {
        let path = at("client_bytes_per_second");
        let n = errors.size(path.clone(), Some(raw), MIN_BYTES_PER_SECOND);
        if n < MIN_BYTES_PER_SECOND {
            errors.push(path, format!("must be at least 1KiB, not {n} bytes"));
        }
        n.max(MIN_BYTES_PER_SECOND)
    });
    let websockets_per_client = raw
        .websockets_per_client
        .and_then(|n| match u64::try_from(n) {
            Ok(n) if n >= 1 => Some(n),
            _ => {
                errors.push(
                    at("websockets_per_client"),
                    format!("must be at least 1 (got {n})"),
                );
                None
            }
        });
    EdgePolicy {
        auth,
        messages_per_second,
        bytes_per_second,
        websockets_per_client,
    }
}

/// `auth = { forward, copy_headers, timeout }`.
fn auth(errors: &mut Errors, path: &str, raw: &AuthFile) -> Option<ForwardAuth> {
    let copy_headers = copy_headers(errors, path, raw.copy_headers.as_deref().unwrap_or(&[]));
    let timeout = errors.duration(
        format!("{path}.timeout"),
        raw.timeout.as_deref(),
        defaults::AUTH_TIMEOUT,
        false,
    );
    let Some(url) = raw.forward.as_deref() else {
        errors.push(
            format!("{path}.forward"),
            "required (e.g. \"http://auth:9000/verify\")",
        );
        return None;
    };
    let (service, path_and_query) = errors.check(format!("{path}.forward"), forward_url(url))?;
    Some(ForwardAuth {
        service,
        path: path_and_query,
        copy_headers,
        timeout,
    })
}

/// `http://host[:port][/path][?query]` or `https://…`: the service as a
/// backend, and the path the subrequest asks for.
fn forward_url(url: &str) -> Result<(crate::config::RemoteBackend, String), String> {
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    if !matches!(scheme.as_deref(), Some("http" | "https")) {
        return Err(format!(
            "the auth service is an http:// or https:// URL, got {url:?}"
        ));
    }
    if url.contains('#') {
        return Err(format!("an auth URL has no fragment, got {url:?}"));
    }
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let (origin, path) = match url[after_scheme..].find(['/', '?']) {
        Some(i) => url.split_at(after_scheme + i),
        None => (url, "/"),
    };
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_owned()
    };
    if path.parse::<http::uri::PathAndQuery>().is_err() {
        return Err(format!("invalid path {path:?} in {url:?}"));
    }
    match values::backend(origin)? {
        Backend::Remote(mut service) => {
            service.url = url.to_owned();
            Ok((service, path))
        }
        Backend::BuiltinEcho => Err(format!("the auth service is an http(s) URL, got {url:?}")),
    }
}

/// `copy_headers`: valid names, none hop-by-hop, no duplicates.
fn copy_headers(errors: &mut Errors, path: &str, raw: &[String]) -> Vec<HeaderName> {
    let mut names: Vec<HeaderName> = Vec::new();
    for (i, text) in raw.iter().enumerate() {
        let at = format!("{path}.copy_headers[{i}]");
        let Ok(name) = HeaderName::from_bytes(text.trim().as_bytes()) else {
            errors.push(at, format!("{text:?} is not a header name"));
            continue;
        };
        if HOP_BY_HOP.contains(&name.as_str()) {
            errors.push(
                at,
                format!("{text:?} is hop-by-hop: it describes one connection and is never copied"),
            );
        } else if names.contains(&name) {
            errors.push(at, format!("{text:?} is listed twice"));
        } else {
            names.push(name);
        }
    }
    names
}

#[cfg(test)]
mod tests;
