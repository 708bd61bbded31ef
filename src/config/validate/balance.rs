//! A route's `balance`, `sticky_cookie` and `[routes.health]`: each value in
//! its range, every problem reported with its key path.

use std::time::Duration;

use super::super::file::{defaults, HealthFile, RouteFile};
use super::Errors;
use crate::config::{Balance, HealthCheck, Probe};

/// The shortest `health.interval`: checks more often than this would load
/// the backends more than they tell.
pub(crate) const MIN_HEALTH_INTERVAL: Duration = Duration::from_millis(100);

/// The most checks in a row `unhealthy_after` and `healthy_after` may ask
/// for: more would keep a dead backend in rotation for minutes.
pub(crate) const MAX_CHECK_STREAK: i64 = 100;

/// How a route balances and checks its backends.
pub(super) struct Balancing {
    /// `balance`.
    pub(super) balance: Balance,
    /// `sticky_cookie`.
    pub(super) sticky_cookie: String,
    /// `[routes.health]`.
    pub(super) health: Option<HealthCheck>,
}

/// Validates `balance`, `sticky_cookie` and `[routes.health]` of a route.
pub(super) fn balancing(
    errors: &mut Errors,
    at: &dyn Fn(&str) -> String,
    raw: &RouteFile,
) -> Balancing {
    let name = raw.balance.as_deref().unwrap_or(defaults::BALANCE);
    let balance = Balance::from_name(name).unwrap_or_else(|| {
        let allowed = Balance::NAMES.map(|n| format!("{n:?}")).join(", ");
        errors.push(
            at("balance"),
            format!("{name:?} is not a balance policy; use one of {allowed}"),
        );
        Balance::LeastConn
    });
    let sticky_cookie = sticky_cookie(errors, at, raw.sticky_cookie.as_deref(), balance);
    let health = raw
        .health
        .as_ref()
        .map(|health| health_check(errors, &|key| at(&format!("health.{key}")), health));
    Balancing {
        balance,
        sticky_cookie,
        health,
    }
}

/// `sticky_cookie`: a cookie name (an HTTP token), only with `balance = "cookie"`.
fn sticky_cookie(
    errors: &mut Errors,
    at: &dyn Fn(&str) -> String,
    raw: Option<&str>,
    balance: Balance,
) -> String {
    let Some(name) = raw else {
        return defaults::STICKY_COOKIE.to_string();
    };
    let tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(tchar) {
        errors.push(
            at("sticky_cookie"),
            format!("{name:?} is not a cookie name (letters, digits and !#$%&'*+-.^_`|~)"),
        );
    }
    if balance != Balance::Cookie {
        errors.push(
            at("sticky_cookie"),
            format!(
                "is only used with balance = \"cookie\" (this route has {:?})",
                balance.name()
            ),
        );
    }
    name.to_string()
}

/// `[routes.health]`, its defaults applied.
fn health_check(errors: &mut Errors, at: &dyn Fn(&str) -> String, raw: &HealthFile) -> HealthCheck {
    let path = health_path(errors, &at("path"), raw.path.as_deref());
    let interval = errors.duration(
        at("interval"),
        raw.interval.as_deref(),
        defaults::HEALTH_INTERVAL,
        false,
    );
    if interval < MIN_HEALTH_INTERVAL && !interval.is_zero() {
        errors.push(
            at("interval"),
            format!("{interval:?} is too short; at least {MIN_HEALTH_INTERVAL:?}"),
        );
    }
    let timeout = errors.duration(
        at("timeout"),
        raw.timeout.as_deref(),
        defaults::HEALTH_TIMEOUT.min(interval),
        false,
    );
    if timeout > interval {
        errors.push(
            at("timeout"),
            format!("{timeout:?} is longer than interval ({interval:?}): checks would overlap"),
        );
    }
    let mut streak =
        |key: &str, raw: Option<i64>, default: i64| streak(errors, &at(key), raw, default);
    let unhealthy_after = streak(
        "unhealthy_after",
        raw.unhealthy_after,
        defaults::UNHEALTHY_AFTER,
    );
    let healthy_after = streak("healthy_after", raw.healthy_after, defaults::HEALTHY_AFTER);
    HealthCheck {
        path,
        interval,
        timeout,
        unhealthy_after,
        healthy_after,
        probe: probe(errors, at, raw),
    }
}

/// `path`: an absolute request target, as a request line carries it.
fn health_path(errors: &mut Errors, key: &str, raw: Option<&str>) -> String {
    let path = raw.unwrap_or(defaults::HEALTH_PATH);
    let valid = path.starts_with('/')
        && path.parse::<http::uri::PathAndQuery>().is_ok()
        && !path.contains(|c: char| c.is_whitespace() || c.is_control() || c == '#');
    if !valid {
        errors.push(
            key,
            format!("{path:?} is not an absolute path (e.g. \"/healthz\")"),
        );
    }
    path.to_string()
}

/// `unhealthy_after` / `healthy_after`: 1 to [`MAX_CHECK_STREAK`].
fn streak(errors: &mut Errors, key: &str, raw: Option<i64>, default: i64) -> u32 {
    let n = raw.unwrap_or(default);
    if (1..=MAX_CHECK_STREAK).contains(&n) {
        return n as u32;
    }
    errors.push(
        key,
        format!("must be from 1 to {MAX_CHECK_STREAK} checks in a row (got {n})"),
    );
    default as u32
}

/// `websocket` and `expect_status`: a WebSocket check passes on a 101 only.
fn probe(errors: &mut Errors, at: &dyn Fn(&str) -> String, raw: &HealthFile) -> Probe {
    let expect = raw.expect_status.and_then(|code| match code {
        200..=599 => Some(code as u16),
        _ => {
            errors.push(
                at("expect_status"),
                format!("{code} is not a final status code (200 to 599)"),
            );
            None
        }
    });
    match (raw.websocket.unwrap_or(false), raw.expect_status) {
        (false, _) => Probe::Http { expect },
        (true, None) => Probe::WebSocket,
        (true, Some(_)) => {
            errors.push(
                at("expect_status"),
                "is not used with websocket = true (a WebSocket check passes on a valid 101)",
            );
            Probe::WebSocket
        }
    }
}

#[cfg(test)]
mod tests;
