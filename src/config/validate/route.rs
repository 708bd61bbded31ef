//! `[[routes]]`: each route's keys, its defaults, and the checks across
//! routes (no two with the same host and path, or the same name).

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use super::super::file::{self, defaults};
use super::{balance, edge, tls, values, Errors};
use crate::config::{Backend, FallbackSettings, HostPattern, OriginPolicy, Route, WsSettings};

/// Validates every route, and that no two share a host and path or a name.
pub(super) fn routes(errors: &mut Errors, raw: Vec<file::RouteFile>, base: &Path) -> Vec<Route> {
    if raw.is_empty() {
        errors.push("routes", "at least one [[routes]] table is required");
    }
    let mut out: Vec<Route> = Vec::new();
    // First route of each (host, path) and of each name, to report duplicates.
    let mut seen: Vec<(HostPattern, String, usize)> = Vec::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    for (index, route) in raw.into_iter().enumerate() {
        let (route, key_valid) = self::route(errors, index, route, base);
        let first_same = seen
            .iter()
            .find(|(host, path, _)| *host == route.host && *path == route.path)
            .map(|(_, _, first)| *first);
        if let (Some(first), true) = (first_same, key_valid) {
            errors.push(
                format!("routes[{index}]"),
                format!("same host and path ({:?}) as routes[{first}]", route.name),
            );
        } else if let (Some(first), true) = (names.get(&route.name), key_valid) {
            errors.push(
                format!("routes[{index}].name"),
                format!("{:?} is already the name of routes[{first}]", route.name),
            );
        }
        if first_same.is_none() && key_valid {
            seen.push((route.host.clone(), route.path.clone(), index));
        }
        names.entry(route.name.clone()).or_insert(index);
        out.push(route);
    }
    out
}

/// Validates one route; the flag says whether its host and path (and so its
/// default name) are valid, which the duplicate checks need.
fn route(errors: &mut Errors, index: usize, raw: file::RouteFile, base: &Path) -> (Route, bool) {
    let at = |key: &str| format!("routes[{index}].{key}");
    let fallback_settings = fallback_settings(errors, &at, &raw);
    let (host, path, key_valid) = host_and_path(errors, &at, &raw);
    let name = name(errors, &at, raw.name.clone(), &host, &path);
    let backends = backends(errors, &at, raw.backends.as_deref());
    let balancing = balance::balancing(errors, &at, &raw);
    let origins = origin_policy(errors, &at("origins"), raw.origins.clone());
    let subprotocols = subprotocols(
        errors,
        &at("subprotocols"),
        raw.subprotocols.clone().unwrap_or_default(),
    );
    let ws = ws_settings(errors, &at, &raw);
    let edge = edge::route(errors, &at, &raw);
    let mut duration = |key: &str, raw: Option<&str>, default: Duration| {
        errors.duration(at(key), raw, default, false)
    };
    let connect_timeout = duration(
        "connect_timeout",
        raw.connect_timeout.as_deref(),
        defaults::CONNECT_TIMEOUT,
    );
    let response_timeout = duration(
        "response_timeout",
        raw.response_timeout.as_deref(),
        defaults::RESPONSE_TIMEOUT,
    );
    let backend_tls = tls::backend_tls(
        errors,
        &format!("routes[{index}]"),
        (raw.backend_ca, raw.backend_sni, raw.backend_client_cert),
        base,
    );
    let route = Route {
        index,
        name,
        host,
        path,
        backends,
        balance: balancing.balance,
        sticky_cookie: balancing.sticky_cookie,
        health: balancing.health,
        origins,
        allow_missing_origin: raw
            .allow_missing_origin
            .unwrap_or(defaults::ALLOW_MISSING_ORIGIN),
        subprotocols,
        fallback: raw.fallback.unwrap_or(defaults::FALLBACK),
        fallback_settings,
        ws,
        connect_timeout,
        response_timeout,
        backend_tls,
        edge,
    };
    (route, key_valid)
}

/// `host` and `path`, and whether both are valid.
fn host_and_path(
    errors: &mut Errors,
    at: &dyn Fn(&str) -> String,
    raw: &file::RouteFile,
) -> (HostPattern, String, bool) {
    let before = errors.0.len();
    let host = match raw.host.as_deref() {
        None => HostPattern::Any,
        Some(text) => errors
            .check(at("host"), values::host_pattern(text))
            .unwrap_or(HostPattern::Any),
    };
    let path = errors
        .check(
            at("path"),
            values::route_path(raw.path.as_deref().unwrap_or(defaults::PATH)),
        )
        .unwrap_or_else(|| defaults::PATH.to_owned());
    (host, path, errors.0.len() == before)
}

/// `name`, else `host+path`.
fn name(
    errors: &mut Errors,
    at: &dyn Fn(&str) -> String,
    raw: Option<String>,
    host: &HostPattern,
    path: &str,
) -> String {
    match raw {
        Some(name) if name.trim().is_empty() => {
            errors.push(at("name"), "must not be empty");
            name
        }
        Some(name) => name,
        None => match host {
            HostPattern::Any => format!("*{path}"),
            HostPattern::Exact(h) => format!("{h}{path}"),
            HostPattern::Suffix(s) => format!("*{s}{path}"),
        },
    }
}

/// `backends`: required, at least one, each a valid URL.
fn backends(
    errors: &mut Errors,
    at: &dyn Fn(&str) -> String,
    raw: Option<&[String]>,
) -> Vec<Backend> {
    let Some(list) = raw else {
        errors.push(
            at("backends"),
            "required (e.g. [\"ws://10.0.0.5:9000\"] or [\"builtin:echo\"])",
        );
        return Vec::new();
    };
    if list.is_empty() {
        errors.push(at("backends"), "at least one backend is required");
    }
    list.iter()
        .enumerate()
        .filter_map(|(i, b)| errors.check(at(&format!("backends[{i}]")), values::backend(b)))
        .collect()
}

/// The relay's limits and timers.
fn ws_settings(
    errors: &mut Errors,
    at: &dyn Fn(&str) -> String,
    raw: &file::RouteFile,
) -> WsSettings {
    let max_message_size = errors.size(
        at("max_message_size"),
        raw.max_message_size.clone(),
        defaults::MAX_MESSAGE_SIZE,
    );
    let mut duration = |key: &str, raw: Option<&str>, default: Duration| {
        errors.duration(at(key), raw, default, false)
    };
    WsSettings {
        max_message_size,
        validate_utf8: raw.validate_utf8.unwrap_or(defaults::VALIDATE_UTF8),
        idle_timeout: duration(
            "idle_timeout",
            raw.idle_timeout.as_deref(),
            defaults::IDLE_TIMEOUT,
        ),
        ping_interval: duration(
            "ping_interval",
            raw.ping_interval.as_deref(),
            defaults::PING_INTERVAL,
        ),
        pong_timeout: duration(
            "pong_timeout",
            raw.pong_timeout.as_deref(),
            defaults::PONG_TIMEOUT,
        ),
    }
}

/// The `fallback_*` tuning keys of one route.
fn fallback_settings(
    errors: &mut Errors,
    at: &dyn Fn(&str) -> String,
    raw: &file::RouteFile,
) -> FallbackSettings {
    let sessions_per_client = match raw.fallback_sessions_per_client {
        None => defaults::FALLBACK_SESSIONS_PER_CLIENT,
        Some(n) if n >= 1 => n as u64,
        Some(n) => {
            errors.push(
                at("fallback_sessions_per_client"),
                format!("must be at least 1 (got {n})"),
            );
            defaults::FALLBACK_SESSIONS_PER_CLIENT
        }
    };
    let settings = FallbackSettings {
        poll_hold: errors.duration(
            at("fallback_poll_hold"),
            raw.fallback_poll_hold.as_deref(),
            defaults::FALLBACK_POLL_HOLD,
            false,
        ),
        session_timeout: errors.duration(
            at("fallback_session_timeout"),
            raw.fallback_session_timeout.as_deref(),
            defaults::FALLBACK_SESSION_TIMEOUT,
            false,
        ),
        buffer: errors.size(
            at("fallback_buffer"),
            raw.fallback_buffer.clone(),
            defaults::FALLBACK_BUFFER,
        ),
        sessions_per_client,
    };
    if settings.poll_hold >= settings.session_timeout {
        errors.push(
            at("fallback_poll_hold"),
            format!(
                "must be shorter than fallback_session_timeout ({:?} >= {:?})",
                settings.poll_hold, settings.session_timeout
            ),
        );
    }
    settings
}

fn origin_policy(errors: &mut Errors, path: &str, raw: Option<Vec<String>>) -> OriginPolicy {
    let Some(list) = raw else {
        return OriginPolicy::SameOrigin;
    };
    if list.is_empty() {
        errors.push(path, "empty list allows no browser at all; omit `origins` for same-origin or use [\"*\"] for any");
        return OriginPolicy::List(Vec::new());
    }
    if list.len() == 1 && list[0] == "*" {
        return OriginPolicy::Any;
    }
    let mut patterns = Vec::new();
    for (i, entry) in list.iter().enumerate() {
        if entry == "*" {
            errors.push(
                format!("{path}[{i}]"),
                "\"*\" must be the only entry when used",
            );
        } else if let Some(p) = errors.check(format!("{path}[{i}]"), values::origin_pattern(entry))
        {
            patterns.push(p);
        }
    }
    OriginPolicy::List(patterns)
}

fn subprotocols(errors: &mut Errors, path: &str, list: Vec<String>) -> Vec<String> {
    for (i, name) in list.iter().enumerate() {
        errors.check(format!("{path}[{i}]"), values::subprotocol(name));
        if let Some(first) = list[..i].iter().position(|n| n == name) {
            errors.push(
                format!("{path}[{i}]"),
                format!("duplicate {name:?} (also {path}[{first}])"),
            );
        }
    }
    list
}
