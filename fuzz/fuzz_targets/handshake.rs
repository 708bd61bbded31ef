//! The upgrade validator on arbitrary requests: `ws::handshake::check` never
//! panics, and what it lets through is what DESIGN.md's table allows.
//!
//! Input: byte 0 picks the route, client scheme and method; the rest is
//! `name: value` lines (invalid names or values are dropped, as hyper would
//! never deliver them).
#![no_main]

use std::sync::OnceLock;

use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Request, Version};
use libfuzzer_sys::fuzz_target;
use wsgate::config::{Config, Route};
use wsgate::http::client::ClientInfo;
use wsgate::ws::handshake::{check, is_websocket_request};

const ROUTES: &str = r#"
[[listeners]]
bind = "127.0.0.1:0"
[[routes]]
path = "/same"
backends = ["ws://127.0.0.1:9"]
[[routes]]
path = "/list"
backends = ["ws://127.0.0.1:9"]
origins = ["https://app.example.com", "https://*.example.org"]
allow_missing_origin = false
subprotocols = ["chat.v2", "chat.v1"]
[[routes]]
path = "/any"
backends = ["ws://127.0.0.1:9"]
origins = ["*"]
"#;

fn routes() -> &'static [Route] {
    static ROUTES_CELL: OnceLock<Vec<Route>> = OnceLock::new();
    ROUTES_CELL.get_or_init(|| {
        Config::parse(ROUTES, std::path::Path::new("."))
            .expect("fuzz routes")
            .routes
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let route = &routes()[usize::from(selector) % 3];
    let method = match (selector >> 2) % 4 {
        0 | 1 => Method::GET,
        2 => Method::POST,
        _ => Method::CONNECT,
    };
    let version = match (selector >> 4) % 4 {
        0..=2 => Version::HTTP_11,
        _ => Version::HTTP_10,
    };
    let mut builder = Request::builder().method(method).version(version).uri("/x");
    for line in rest.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            builder = builder.header(name, value);
        }
    }
    let Ok(request) = builder.body(()) else {
        return;
    };
    let (parts, ()) = request.into_parts();
    let client = ClientInfo::direct("127.0.0.1:40000".parse().unwrap(), selector & 0x80 != 0);
    let _ = is_websocket_request(&parts.headers);
    if let Ok(checked) = check(&parts, route, &client) {
        assert_eq!(parts.method, Method::GET);
        assert_eq!(parts.version, Version::HTTP_11);
        assert_eq!(
            parts
                .headers
                .get_all(header::SEC_WEBSOCKET_KEY)
                .iter()
                .count(),
            1
        );
        assert!(route.subprotocols.is_empty() || !checked.protocols.is_empty());
        for protocol in &checked.protocols {
            assert!(route.subprotocols.is_empty() || route.subprotocols.contains(protocol));
            assert!(!protocol.contains([',', '\r', '\n']));
        }
        if let Some(offers) = &checked.extensions {
            assert!(HeaderValue::from_str(offers).is_ok());
        }
    }
});
