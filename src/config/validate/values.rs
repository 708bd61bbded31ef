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
mod tests {
    use super::*;

    fn exact(h: &str) -> HostPattern {
        HostPattern::Exact(h.into())
    }

    #[test]
    fn hosts() {
        let cases: &[(&str, Result<HostPattern, &str>)] = &[
            ("chat.example.com", Ok(exact("chat.example.com"))),
            ("Chat.Example.COM", Ok(exact("chat.example.com"))),
            ("localhost", Ok(exact("localhost"))),
            ("127.0.0.1", Ok(exact("127.0.0.1"))),
            (
                "*.example.com",
                Ok(HostPattern::Suffix(".example.com".into())),
            ),
            (
                "*.EXAMPLE.com",
                Ok(HostPattern::Suffix(".example.com".into())),
            ),
            ("*", Err("omit `host`")),
            ("", Err("omit `host`")),
            ("chat.example.com:8443", Err("port")),
            ("a..b", Err("empty label")),
            ("example.com.", Err("empty label")),
            ("*.", Err("empty host name")),
            ("a.*.com", Err("first label")),
            ("*chat.example.com", Err("first label")),
            ("*.*.example.com", Err("first label")),
            ("chat example.com", Err("invalid character")),
        ];
        for (text, want) in cases {
            match (host_pattern(text), want) {
                (Ok(got), Ok(want)) => assert_eq!(&got, want, "{text:?}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{text:?}: {got}"),
                (got, want) => panic!("{text:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn paths() {
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("/", Ok("/")),
            ("/chat", Ok("/chat")),
            ("/chat/", Ok("/chat")),
            ("/a/b", Ok("/a/b")),
            ("chat", Err("must start with")),
            ("", Err("must start with")),
            ("/chat?x=1", Err("'?'")),
            ("/a b", Err("' '")),
            ("/a//b", Err("empty path segment")),
            ("//", Err("empty path segment")),
        ];
        for (text, want) in cases {
            match (route_path(text), want) {
                (Ok(got), Ok(want)) => assert_eq!(&got, want, "{text:?}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{text:?}: {got}"),
                (got, want) => panic!("{text:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    fn origin(scheme: &str, host: &str, wildcard: bool, port: u16) -> OriginPattern {
        OriginPattern {
            scheme: scheme.into(),
            host: host.into(),
            wildcard,
            port,
        }
    }

    #[test]
    fn origins() {
        let cases: &[(&str, Result<OriginPattern, &str>)] = &[
            (
                "https://chat.example.com",
                Ok(origin("https", "chat.example.com", false, 443)),
            ),
            (
                "http://chat.example.com",
                Ok(origin("http", "chat.example.com", false, 80)),
            ),
            (
                "HTTPS://Chat.Example.com:8443",
                Ok(origin("https", "chat.example.com", false, 8443)),
            ),
            (
                "https://chat.example.com/",
                Ok(origin("https", "chat.example.com", false, 443)),
            ),
            (
                "https://*.example.com",
                Ok(origin("https", "example.com", true, 443)),
            ),
            (
                "http://localhost:3000",
                Ok(origin("http", "localhost", false, 3000)),
            ),
            ("http://[::1]:3000", Ok(origin("http", "::1", false, 3000))),
            (
                "chat.example.com",
                Err("expected scheme://host[:port], got \"chat.example.com\""),
            ),
            ("ws://chat.example.com", Err("unsupported scheme \"ws\"")),
            ("https://chat.example.com/app", Err("no path")),
            ("https://chat.example.com?x", Err("no path")),
            ("https://u@chat.example.com", Err("user info")),
            ("https://a.*.example.com", Err("first label")),
            ("https://*", Err("first label")),
            ("https://", Err("missing host")),
            ("https://chat.example.com:0", Err("invalid port")),
            ("https://chat.example.com:99999", Err("invalid port")),
            ("https://chat.example.com:", Err("invalid port")),
            ("https://::1", Err("brackets")),
        ];
        for (text, want) in cases {
            match (origin_pattern(text), want) {
                (Ok(got), Ok(want)) => assert_eq!(&got, want, "{text:?}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{text:?}: {got}"),
                (got, want) => panic!("{text:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    fn remote(tls: bool, host: &str, port: u16, url: &str) -> Backend {
        Backend::Remote(RemoteBackend {
            tls,
            host: host.into(),
            port,
            url: url.into(),
        })
    }

    #[test]
    fn backends() {
        let cases: &[(&str, Result<Backend, &str>)] = &[
            ("builtin:echo", Ok(Backend::BuiltinEcho)),
            (
                "ws://10.0.0.5:9000",
                Ok(remote(false, "10.0.0.5", 9000, "ws://10.0.0.5:9000")),
            ),
            (
                "wss://10.0.0.6:9443",
                Ok(remote(true, "10.0.0.6", 9443, "wss://10.0.0.6:9443")),
            ),
            ("http://app", Ok(remote(false, "app", 80, "http://app"))),
            (
                "https://App.internal",
                Ok(remote(true, "app.internal", 443, "https://App.internal")),
            ),
            ("ws://app/", Ok(remote(false, "app", 80, "ws://app/"))),
            ("wss://app", Ok(remote(true, "app", 443, "wss://app"))),
            (
                "ws://[::1]:9000",
                Ok(remote(false, "::1", 9000, "ws://[::1]:9000")),
            ),
            ("ws://[::1]", Ok(remote(false, "::1", 80, "ws://[::1]"))),
            (
                "ftp://x",
                Err("unsupported scheme \"ftp\" (expected ws, wss, http, https or builtin:echo)"),
            ),
            ("builtin:mirror", Err("unknown builtin")),
            ("10.0.0.5:9000", Err("expected scheme://host[:port]")),
            ("ws://app/chat", Err("no path or query")),
            ("ws://app?x=1", Err("no path or query")),
            ("ws://u:p@app", Err("credentials")),
            ("ws://::1:9000", Err("brackets")),
            ("ws://[::1", Err("unclosed")),
            ("ws://[zz]:1", Err("invalid IPv6")),
            ("ws://[::1]x", Err("junk")),
            ("ws://app:http", Err("invalid port")),
            ("ws://app:+80", Err("invalid port")),
            ("ws://999.0.0.1", Err("invalid IPv4")),
            ("ws://:9000", Err("missing host")),
        ];
        for (text, want) in cases {
            match (backend(text), want) {
                (Ok(got), Ok(want)) => assert_eq!(&got, want, "{text:?}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{text:?}: {got}"),
                (got, want) => panic!("{text:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn subprotocols() {
        for ok in [
            "chat.v2",
            "mqtt",
            "graphql-transport-ws",
            "a!#$%&'*+-.^_`|~z",
        ] {
            assert!(subprotocol(ok).is_ok(), "{ok}");
        }
        for bad in ["", "chat v2", "a,b", "a/b", "\"x\"", "é"] {
            assert!(subprotocol(bad).is_err(), "{bad}");
        }
    }
}
