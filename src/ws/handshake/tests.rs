use super::*;
use http::{HeaderValue, Request};

fn route(origins: OriginPolicy, subprotocols: &[&str]) -> Route {
    Route {
        origins,
        subprotocols: subprotocols.iter().map(|s| s.to_string()).collect(),
        ..Route::with_defaults()
    }
}

fn client(tls: bool) -> ClientInfo {
    ClientInfo {
        peer: "127.0.0.1:1000".parse().unwrap(),
        tls,
        http: crate::http::client::HttpVersion::Http1,
    }
}

fn request(extra: &[(&str, &str)]) -> request::Parts {
    let mut builder = Request::get("/chat")
        .header("host", "chat.example.com")
        .header("upgrade", "websocket")
        .header("connection", "keep-alive, Upgrade")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
    for (name, value) in extra {
        builder = builder.header(*name, *value);
    }
    builder.body(()).unwrap().into_parts().0
}

fn pattern(scheme: &str, host: &str, wildcard: bool, port: u16) -> OriginPattern {
    OriginPattern {
        scheme: scheme.into(),
        host: host.into(),
        wildcard,
        port,
    }
}

#[test]
fn accept_key_matches_rfc_example() {
    assert_eq!(
        accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
}

#[test]
fn a_valid_request_passes() {
    let checked = check(
        &request(&[]),
        &route(OriginPolicy::Any, &[]),
        &client(false),
    )
    .unwrap();
    assert_eq!(checked.key, "dGhlIHNhbXBsZSBub25jZQ==");
    assert!(checked.protocols.is_empty());
    assert_eq!(checked.extensions, None);
}

#[test]
fn request_shape_errors_are_400() {
    let any = route(OriginPolicy::Any, &[]);
    let mut post = request(&[]);
    post.method = Method::POST;
    let mut http10 = request(&[]);
    http10.version = Version::HTTP_10;
    let mut no_connection = request(&[]);
    no_connection.headers.remove(header::CONNECTION);
    let mut no_key = request(&[]);
    no_key.headers.remove(header::SEC_WEBSOCKET_KEY);
    let mut short_key = request(&[]);
    short_key.headers.insert(
        header::SEC_WEBSOCKET_KEY,
        HeaderValue::from_static("c2hvcnQ="),
    );
    let two_keys = request(&[("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")]);
    let with_body = request(&[("content-length", "5")]);
    for parts in [
        post,
        http10,
        no_connection,
        no_key,
        short_key,
        two_keys,
        with_body,
    ] {
        let err = check(&parts, &any, &client(false)).unwrap_err();
        assert_eq!(err.status(), 400, "{err}");
    }
}

#[test]
fn wrong_version_is_426() {
    let any = route(OriginPolicy::Any, &[]);
    let mut v8 = request(&[]);
    v8.headers
        .insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("8"));
    let mut missing = request(&[]);
    missing.headers.remove(header::SEC_WEBSOCKET_VERSION);
    for parts in [v8, missing] {
        let err = check(&parts, &any, &client(false)).unwrap_err();
        assert_eq!(err.status(), 426);
    }
}

#[test]
fn same_origin_default_compares_host_and_port() {
    let r = route(OriginPolicy::SameOrigin, &[]);
    let cases = [
        ("http://chat.example.com", false, true),
        ("http://chat.example.com:80", false, true),
        ("https://chat.example.com", true, true),
        ("https://chat.example.com", false, false),
        ("http://chat.example.com:8080", false, false),
        ("http://evil.example.com", false, false),
        ("null", false, false),
        ("chat.example.com", false, false),
    ];
    for (origin, tls, ok) in cases {
        let result = check(&request(&[("origin", origin)]), &r, &client(tls));
        assert_eq!(result.is_ok(), ok, "{origin} tls={tls}");
    }
}

#[test]
fn allowlist_wildcards_match_labels_not_parent_scheme_or_port() {
    let r = route(
        OriginPolicy::List(vec![
            pattern("https", "example.com", true, 443),
            pattern("http", "localhost", false, 3000),
        ]),
        &[],
    );
    let cases = [
        ("https://a.example.com", true),
        ("https://a.b.example.com", true),
        ("https://A.Example.COM", true),
        ("https://example.com", false),
        ("https://badexample.com", false),
        ("http://a.example.com", false),
        ("https://a.example.com:8443", false),
        ("https://example.com.evil.org", false),
        ("http://localhost:3000", true),
        ("http://localhost", false),
    ];
    for (origin, ok) in cases {
        let result = check(&request(&[("origin", origin)]), &r, &client(true));
        assert_eq!(result.is_ok(), ok, "{origin}");
        if let Err(e) = result {
            assert_eq!(e.status(), 403);
        }
    }
}

#[test]
fn missing_origin_follows_allow_missing_origin() {
    let mut r = route(OriginPolicy::SameOrigin, &[]);
    assert!(check(&request(&[]), &r, &client(false)).is_ok());
    r.allow_missing_origin = false;
    let err = check(&request(&[]), &r, &client(false)).unwrap_err();
    assert_eq!(err.status(), 403);
}

#[test]
fn subprotocols_are_filtered_to_the_allowed_ones() {
    let r = route(OriginPolicy::Any, &["chat.v2", "chat.v1"]);
    let offer = [
        ("sec-websocket-protocol", "x, chat.v1"),
        ("sec-websocket-protocol", "chat.v2"),
    ];
    let checked = check(&request(&offer), &r, &client(false)).unwrap();
    assert_eq!(checked.protocols, ["chat.v1", "chat.v2"]);

    let err = check(
        &request(&[("sec-websocket-protocol", "x")]),
        &r,
        &client(false),
    )
    .unwrap_err();
    assert_eq!(err.status(), 400);
    assert!(err.to_string().contains("chat.v2, chat.v1"), "{err}");
    assert!(check(&request(&[]), &r, &client(false)).is_err());

    let open = route(OriginPolicy::Any, &[]);
    let checked = check(
        &request(&[("sec-websocket-protocol", "x, y")]),
        &open,
        &client(false),
    )
    .unwrap();
    assert_eq!(checked.protocols, ["x", "y"]);
}

#[test]
fn protocol_choice_prefers_backend_then_route_order() {
    let r = route(OriginPolicy::Any, &["chat.v2", "chat.v1"]);
    let fwd = vec!["chat.v1".to_string(), "chat.v2".to_string()];
    assert_eq!(
        choose_protocol(&r, &fwd, Some("chat.v1"))
            .unwrap()
            .as_deref(),
        Some("chat.v1")
    );
    assert_eq!(
        choose_protocol(&r, &fwd, None).unwrap().as_deref(),
        Some("chat.v2")
    );
    assert!(choose_protocol(&r, &fwd, Some("other")).is_err());
    let open = route(OriginPolicy::Any, &[]);
    assert_eq!(choose_protocol(&open, &[], None).unwrap(), None);
    assert!(choose_protocol(&open, &[], Some("x")).is_err());
}

#[test]
fn only_deflate_offers_are_forwarded_and_accepted() {
    let offer = [(
        "sec-websocket-extensions",
        "x-webkit-deflate-frame, permessage-deflate; client_max_window_bits",
    )];
    let checked = check(
        &request(&offer),
        &route(OriginPolicy::Any, &[]),
        &client(false),
    )
    .unwrap();
    assert_eq!(
        checked.extensions.as_deref(),
        Some("permessage-deflate; client_max_window_bits")
    );

    let mut answer = HeaderMap::new();
    assert_eq!(check_extension_answer(&answer, true), Ok(false));
    answer.insert(
        header::SEC_WEBSOCKET_EXTENSIONS,
        HeaderValue::from_static("permessage-deflate"),
    );
    assert_eq!(check_extension_answer(&answer, true), Ok(true));
    assert!(check_extension_answer(&answer, false).is_err());
    answer.insert(
        header::SEC_WEBSOCKET_EXTENSIONS,
        HeaderValue::from_static("x-custom"),
    );
    assert!(check_extension_answer(&answer, true).is_err());
}
