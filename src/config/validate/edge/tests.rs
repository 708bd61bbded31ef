//! The edge keys' validation: every problem with its key path, at once.

use std::path::Path;

use crate::config::Config;

fn errors(listener: &str, route: &str) -> String {
    let toml = format!(
        "[[listeners]]\nbind = \"127.0.0.1:0\"\n{listener}\n[[routes]]\nbackends = [\"ws://127.0.0.1:9\"]\n{route}\n"
    );
    match Config::parse(&toml, Path::new(".")) {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn listener_keys_are_checked() {
    let found = errors(
        "trusted_proxies = [\"10.0.0.0/33\", \"nope\"]\nproxy_protocol = true",
        "",
    );
    for expected in [
        "listeners[0].trusted_proxies[0]: \"10.0.0.0/33\" is not a CIDR",
        "listeners[0].trusted_proxies[1]: \"nope\" is not a CIDR",
        "listeners[0].proxy_protocol: PROXY headers are accepted only from trusted_proxies",
    ] {
        assert!(
            found.contains(expected),
            "missing {expected:?} in:\n{found}"
        );
    }
    let ok = "trusted_proxies = [\"10.0.0.0/8\", \"192.0.2.7\", \"2001:db8::/32\"]\nproxy_protocol = true";
    assert_eq!(errors(ok, ""), "");
}

#[test]
fn route_keys_are_checked() {
    let route =
        "client_messages_per_second = 0\nclient_bytes_per_second = 10\nwebsockets_per_client = 0\n\
                 auth = { copy_headers = [\"X-User\", \"x-user\", \"bad header\"] }";
    let found = errors("", route);
    for expected in [
        "routes[0].client_messages_per_second: must be a whole number of messages from 1",
        "routes[0].client_bytes_per_second: must be at least 1KiB, not 10 bytes",
        "routes[0].websockets_per_client: must be at least 1 (got 0)",
        "routes[0].auth.forward: required",
        "routes[0].auth.copy_headers[1]: \"x-user\" is listed twice",
        "routes[0].auth.copy_headers[2]: \"bad header\" is not a header name",
    ] {
        assert!(
            found.contains(expected),
            "missing {expected:?} in:\n{found}"
        );
    }
}

#[test]
fn a_valid_auth_keeps_its_path_and_the_defaults_apply() {
    let toml = "[[listeners]]\nbind = \"127.0.0.1:0\"\n[[routes]]\nbackends = [\"ws://127.0.0.1:9\"]\n\
                auth = { forward = \"https://auth.example.com/verify?realm=chat\", copy_headers = [\"X-User\"] }\n\
                client_messages_per_second = 50\nclient_bytes_per_second = \"1MiB\"\n";
    let config = Config::parse(toml, Path::new(".")).unwrap();
    let edge = &config.routes[0].edge;
    let auth = edge.auth.as_ref().unwrap();
    assert_eq!(auth.path, "/verify?realm=chat");
    assert_eq!(
        (
            auth.service.host.as_str(),
            auth.service.port,
            auth.service.tls
        ),
        ("auth.example.com", 443, true)
    );
    assert_eq!(auth.timeout, std::time::Duration::from_secs(2));
    let rate = edge.messages_per_second.unwrap();
    assert_eq!((rate.per_second, rate.burst), (50, 50));
    assert_eq!(edge.bytes_per_second, Some(1 << 20));
    assert_eq!(edge.websockets_per_client, None);
    assert!(!config.listeners[0].proxy_protocol);
    assert!(config.listeners[0].trusted_proxies.is_empty());
}
