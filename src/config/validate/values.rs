//! Parsers for the single values that carry structure: hosts, paths, origins,
//! backends and subprotocol tokens. Each returns the runtime value or a
//! message; the caller adds the key path.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::config::{Backend, HostPattern, OriginPattern, RemoteBackend};

/// The one builtin backend.
const BUILTIN_ECHO: &str = "builtin:echo";

/// Parses a route's `host`: an exact name or `*.parent`, lower-cased.
pub(super) fn host_pattern(text: &str) -> Result<HostPattern, String> {
    let host = text.to_ascii_lowercase();
    if host.is_empty() {
        return Err("empty host; omit `host` to match any host".into());
    }
    if host == "*" {
        return Err("bare \"*\" is not a host pattern; omit `host` to match any host".into());
    }
    if host.contains(':') {
        return Err(format!(
            "{text:?} has a port or is an IPv6 address; a route's host is a name \
             without port (it matches on every listener)"
        ));
    }
    match host.strip_prefix("*.") {
        Some(parent) => {
            host_name(parent).map_err(|e| format!("{text:?}: {e}"))?;
            Ok(HostPattern::Suffix(format!(".{parent}")))
        }
        None => {
            host_name(&host).map_err(|e| format!("{text:?}: {e}"))?;
            Ok(HostPattern::Exact(host))
        }
    }
}

/// Checks a lower-cased DNS name or IPv4 literal: non-empty labels of
/// letters, digits, `-` and `_`; `*` only where the caller stripped it.
fn host_name(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("empty host name".into());
    }
    for label in host.split('.') {
        if label.is_empty() {
            return Err("empty label (leading, trailing or doubled \".\")".into());
        }
        if label.contains('*') {
            return Err(
                "\"*\" is only allowed as the whole first label (\"*.example.com\")".into(),
            );
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(format!("invalid character {c:?} in host name"));
        }
    }
    Ok(())
}

/// Normalizes a route's `path`: must start with `/`, trailing `/` stripped
/// (except for `/` itself), no query, fragment, whitespace or empty segment.
pub(super) fn route_path(text: &str) -> Result<String, String> {
    if !text.starts_with('/') {
        return Err(format!("must start with \"/\", got {text:?}"));
    }
    if let Some(c) = text
        .chars()
        .find(|c| matches!(c, '?' | '#') || c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "{c:?} is not allowed in a route path, got {text:?}"
        ));
    }
    if text.contains("//") {
        return Err(format!("empty path segment (\"//\") in {text:?}"));
    }
    let path = if text.len() > 1 {
        text.strip_suffix('/').unwrap_or(text)
    } else {
        text
    };
    Ok(path.to_owned())
}

/// Parses one `origins` entry: `scheme://host[:port]`, scheme `http` or
/// `https`, `*.` allowed as the first label. A single trailing `/` is
/// accepted and ignored (browsers never send one, people often type one).
pub(super) fn origin_pattern(text: &str) -> Result<OriginPattern, String> {
    let expected = || format!("expected scheme://host[:port], got {text:?}");
    let (scheme, rest) = text.split_once("://").ok_or_else(expected)?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => {
            return Err(format!(
                "unsupported scheme {scheme:?} in origin (expected http or https)"
            ))
        }
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains(['/', '?', '#']) {
        return Err(format!("an origin has no path or query, got {text:?}"));
    }
    if authority.contains('@') {
        return Err(format!("an origin has no user info, got {text:?}"));
    }
    let authority = authority.to_ascii_lowercase();
    let (host, port) = split_host_port(&authority).map_err(|e| format!("{e} in {text:?}"))?;
    let (host, wildcard) = match host.strip_prefix("*.") {
        Some(parent) => (parent, true),
        None => (host, false),
    };
    if host.parse::<Ipv6Addr>().is_err() {
        host_name(host).map_err(|e| format!("{e} in {text:?}"))?;
    } else if wildcard {
        return Err(format!("a wildcard needs a domain name, got {text:?}"));
    }
    Ok(OriginPattern {
        scheme,
        host: host.to_owned(),
        wildcard,
        port: port.unwrap_or(default_port),
    })
}

/// Parses one `backends` entry: `ws`, `wss`, `http` or `https` URL without
/// path or query (a single trailing `/` is ignored), or `builtin:echo`.
pub(super) fn backend(text: &str) -> Result<Backend, String> {
    if text == BUILTIN_ECHO {
        return Ok(Backend::BuiltinEcho);
    }
    if text.starts_with("builtin:") {
        return Err(format!(
            "unknown builtin backend {text:?} (the only one is {BUILTIN_ECHO})"
        ));
    }
    let (scheme, rest) = text
        .split_once("://")
        .ok_or_else(|| format!("expected scheme://host[:port] or {BUILTIN_ECHO}, got {text:?}"))?;
    let (tls, default_port) = match scheme.to_ascii_lowercase().as_str() {
        "ws" | "http" => (false, 80),
        "wss" | "https" => (true, 443),
        _ => {
            return Err(format!(
                "unsupported scheme {scheme:?} (expected ws, wss, http, https or {BUILTIN_ECHO})"
            ))
        }
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains(['/', '?', '#']) {
        return Err(format!(
            "a backend URL has no path or query (the request's own path is forwarded), got {text:?}"
        ));
    }
    if authority.contains('@') {
        return Err(format!(
            "credentials in backend URLs are not supported, got {text:?}"
        ));
    }
    let authority = authority.to_ascii_lowercase();
    let (host, port) = split_host_port(&authority).map_err(|e| format!("{e} in {text:?}"))?;
    if host.parse::<Ipv6Addr>().is_err() {
        host_name(host).map_err(|e| format!("{e} in {text:?}"))?;
    }
    Ok(Backend::Remote(RemoteBackend {
        tls,
        host: host.to_owned(),
        port: port.unwrap_or(default_port),
        url: text.to_owned(),
    }))
}

/// Splits `host[:port]` or `[v6][:port]`; the host comes back without brackets.
fn split_host_port(authority: &str) -> Result<(&str, Option<u16>), String> {
    let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
        let (host, after) = inner.split_once(']').ok_or("unclosed \"[\"")?;
        if host.parse::<Ipv6Addr>().is_err() {
            return Err(format!("invalid IPv6 address {host:?}"));
        }
        match after {
            "" => (host, None),
            _ => (
                host,
                Some(after.strip_prefix(':').ok_or("junk after \"]\"")?),
            ),
        }
    } else {
        match authority.split_once(':') {
            Some((_, p)) if p.contains(':') => {
                return Err("IPv6 addresses must be in brackets (\"[::1]:9000\")".into())
            }
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("missing host".into());
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n != 0 && p.bytes().all(|b| b.is_ascii_digit()) => Some(n),
            _ => return Err(format!("invalid port {p:?}")),
        },
    };
    // A dotted-quad that is not a valid IPv4 address (999.1.1.1) is almost
    // certainly a typo, not a host name.
    if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') && host.parse::<Ipv4Addr>().is_err() {
        return Err(format!("invalid IPv4 address {host:?}"));
    }
    Ok((host, port))
}

/// Checks a subprotocol name: an HTTP token (RFC 9110 `tchar`s).
pub(super) fn subprotocol(text: &str) -> Result<(), String> {
    let tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if text.is_empty() || !text.chars().all(tchar) {
        return Err(format!(
            "{text:?} is not a valid token (letters, digits and !#$%&'*+-.^_`|~)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
