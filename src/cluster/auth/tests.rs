use super::*;
use crate::config::cluster::Secret;
use http::Request;

const NOW: u64 = 1_800_000_000_000;

fn key(byte: u8) -> ClusterKey {
    ClusterKey::new(&Secret::new(&[byte; 32]))
}

/// A signed request as the owner receives it.
fn signed(key: &ClusterKey, time: u64, body: &[u8]) -> request::Parts {
    let mut client_headers = HeaderMap::new();
    client_headers.insert("origin", HeaderValue::from_static("https://a.example"));
    client_headers.insert("cookie", HeaderValue::from_static("not=forwarded"));
    let hash = body_hash(body);
    let signing = Signing {
        method: &Method::POST,
        target: "/_wsgate/s/abc/send?x=1",
        from: "10.0.0.2:9443",
        time,
        client: "203.0.113.7:5555".parse().unwrap(),
        body: &hash,
    };
    let headers = sign(key, &signing, &client_headers);
    assert!(
        headers.get("cookie").is_none(),
        "only the listed headers travel"
    );
    let mut req = Request::builder()
        .method("POST")
        .uri("/_wsgate/s/abc/send?x=1");
    *req.headers_mut().unwrap() = headers;
    req.body(()).unwrap().into_parts().0
}

#[test]
fn a_signed_request_passes_and_proves_sender_and_client() {
    let k = key(1);
    let claim = verify(&k, &signed(&k, NOW, b"{}"), NOW).unwrap();
    assert_eq!(claim.from, "10.0.0.2:9443");
    assert_eq!(claim.client, "203.0.113.7:5555".parse().unwrap());
    assert_eq!(claim.check_body(b"{}"), Ok(()));
    let other = claim.check_body(b"{\"x\":1}");
    assert!(matches!(other, Err(AuthError::BodyMismatch { .. })));
}

#[test]
fn the_timestamp_window_holds_both_ways() {
    let k = key(1);
    let window = CLOCK_WINDOW.as_millis() as u64;
    for time in [NOW, NOW - window, NOW + window] {
        assert!(verify(&k, &signed(&k, time, b""), NOW).is_ok(), "{time}");
    }
    for time in [NOW - window - 1, NOW + window + 1, 0] {
        let refused = verify(&k, &signed(&k, time, b""), NOW).unwrap_err();
        assert!(
            matches!(refused, AuthError::Stale { .. }),
            "{time}: {refused:?}"
        );
        assert_eq!(refused.label(), "peer_stale");
    }
}

#[test]
fn any_altered_signed_field_breaks_the_mac() {
    let k = key(1);
    let alterations: [(&str, &str); 6] = [
        (PEER_FROM, "10.0.0.3:9443"),
        (PEER_TIME, "1800000000001"),
        (PEER_CLIENT, "198.51.100.1:1"),
        (PEER_BODY, &"0".repeat(64)),
        ("origin", "https://evil.example"),
        ("last-event-id", "3"),
    ];
    for (name, value) in alterations {
        let mut parts = signed(&k, NOW, b"");
        parts
            .headers
            .insert(name, HeaderValue::from_str(value).unwrap());
        let refused = verify(&k, &parts, NOW).unwrap_err();
        assert!(
            matches!(refused, AuthError::BadMac { .. }),
            "{name}: {refused:?}"
        );
    }
    let mut parts = signed(&k, NOW, b"");
    parts.uri = "/_wsgate/s/abc/close?x=1".parse().unwrap();
    assert!(matches!(
        verify(&k, &parts, NOW),
        Err(AuthError::BadMac { .. })
    ));
    let mut parts = signed(&k, NOW, b"");
    parts.method = Method::GET;
    assert!(matches!(
        verify(&k, &parts, NOW),
        Err(AuthError::BadMac { .. })
    ));
}

#[test]
fn another_secret_names_the_sender() {
    let refused = verify(&key(1), &signed(&key(2), NOW, b""), NOW).unwrap_err();
    let from = "10.0.0.2:9443".to_string();
    assert_eq!(refused, AuthError::ForeignKey { from });
}

#[test]
fn missing_or_unreadable_peer_headers_are_malformed() {
    let k = key(1);
    for name in [
        PEER_FROM,
        PEER_TIME,
        PEER_CLIENT,
        PEER_KEY,
        PEER_BODY,
        PEER_MAC,
    ] {
        let mut parts = signed(&k, NOW, b"");
        parts.headers.remove(name);
        assert_eq!(verify(&k, &parts, NOW), Err(AuthError::Malformed(name)));
        parts.headers.insert(name, HeaderValue::from_static("zz"));
        assert!(verify(&k, &parts, NOW).is_err(), "{name}");
    }
}
