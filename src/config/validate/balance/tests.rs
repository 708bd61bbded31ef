//! `balance`, `sticky_cookie` and `[routes.health]`: defaults, every value
//! in range, and every bad value reported at once with its key path.

use std::path::Path;
use std::time::Duration;

use crate::config::{Balance, Config, HealthCheck, Probe};

/// A one-route file with `route_keys` (and tables) added to the route.
fn file(route_keys: &str) -> String {
    format!("[[listeners]]\nbind = \"127.0.0.1:8080\"\n[[routes]]\nbackends = [\"builtin:echo\"]\n{route_keys}\n")
}

fn parse(route_keys: &str) -> Config {
    Config::parse(&file(route_keys), Path::new(".")).unwrap_or_else(|e| panic!("{e}"))
}

fn errors(route_keys: &str) -> Vec<String> {
    match Config::parse(&file(route_keys), Path::new(".")) {
        Ok(_) => panic!("expected errors for {route_keys}"),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn defaults_are_least_conn_the_default_cookie_and_no_checks() {
    let route = &parse("").routes[0];
    assert_eq!(route.balance, Balance::LeastConn);
    assert_eq!(route.sticky_cookie, "wsgate_backend");
    assert_eq!(route.health, None);
}

#[test]
fn every_policy_parses() {
    for name in Balance::NAMES {
        let route = &parse(&format!("balance = {name:?}")).routes[0];
        assert_eq!(route.balance.name(), name);
    }
}

#[test]
fn an_empty_health_table_takes_every_default() {
    let route = &parse("[routes.health]").routes[0];
    let expected = HealthCheck {
        path: "/".into(),
        interval: Duration::from_secs(5),
        timeout: Duration::from_secs(1),
        unhealthy_after: 2,
        healthy_after: 2,
        probe: Probe::Http { expect: None },
    };
    assert_eq!(route.health.as_ref(), Some(&expected));
}

#[test]
fn a_full_health_table_and_a_cookie_parse() {
    let keys = "balance = \"cookie\"\nsticky_cookie = \"srv\"\n[routes.health]\npath = \"/healthz?deep=1\"\ninterval = \"2s\"\ntimeout = \"500ms\"\nunhealthy_after = 3\nhealthy_after = 1\nexpect_status = 204\n";
    let route = &parse(keys).routes[0];
    assert_eq!(route.sticky_cookie, "srv");
    let health = route.health.as_ref().unwrap();
    assert_eq!(health.path, "/healthz?deep=1");
    assert_eq!(health.interval, Duration::from_secs(2));
    assert_eq!(health.timeout, Duration::from_millis(500));
    assert_eq!((health.unhealthy_after, health.healthy_after), (3, 1));
    assert_eq!(health.probe, Probe::Http { expect: Some(204) });
    let ws = &parse("[routes.health]\nwebsocket = true").routes[0];
    assert_eq!(ws.health.as_ref().unwrap().probe, Probe::WebSocket);
}

#[test]
fn a_short_interval_shortens_the_default_timeout() {
    let route = &parse("[routes.health]\ninterval = \"200ms\"").routes[0];
    assert_eq!(
        route.health.as_ref().unwrap().timeout,
        Duration::from_millis(200)
    );
}

#[test]
fn every_bad_value_is_reported_at_once() {
    let keys = "balance = \"random\"\nsticky_cookie = \"a b\"\n[routes.health]\npath = \"healthz\"\ninterval = \"50ms\"\ntimeout = \"0s\"\nunhealthy_after = 0\nhealthy_after = 101\nexpect_status = 99\n";
    let errors = errors(keys);
    let expected = [
        "routes[0].balance: \"random\" is not a balance policy",
        "routes[0].sticky_cookie: \"a b\" is not a cookie name",
        "routes[0].sticky_cookie: is only used with balance = \"cookie\"",
        "routes[0].health.path: \"healthz\" is not an absolute path",
        "routes[0].health.interval: 50ms is too short",
        "routes[0].health.timeout: must be greater than zero",
        "routes[0].health.unhealthy_after: must be from 1 to 100 checks in a row (got 0)",
        "routes[0].health.healthy_after: must be from 1 to 100 checks in a row (got 101)",
        "routes[0].health.expect_status: 99 is not a final status code",
    ];
    for line in expected {
        assert!(
            errors.iter().any(|e| e.starts_with(line)),
            "missing {line:?} in {errors:#?}"
        );
    }
    assert_eq!(errors.len(), expected.len(), "{errors:#?}");
}

#[test]
fn a_timeout_longer_than_the_interval_and_a_status_on_a_websocket_check_are_errors() {
    let errors = errors("[routes.health]\ninterval = \"1s\"\ntimeout = \"2s\"\nwebsocket = true\nexpect_status = 200\n");
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(errors[0].starts_with("routes[0].health.timeout: 2s is longer than interval"));
    assert!(errors[1].starts_with("routes[0].health.expect_status: is not used with websocket"));
}

#[test]
fn unknown_health_keys_and_bad_types_are_errors() {
    let unknown = errors("[routes.health]\nintervall = \"1s\"");
    assert!(
        unknown[0].contains("unknown field `intervall`"),
        "{unknown:?}"
    );
    assert!(unknown[0].starts_with("routes[0].health"), "{unknown:?}");
    let typed = errors("[routes.health]\nunhealthy_after = \"two\"");
    assert!(typed[0].contains("invalid type"), "{typed:?}");
}
