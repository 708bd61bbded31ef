use http::header;

use super::*;
use crate::limits::Limit;

#[test]
fn statuses_and_reasons() {
    let mut cases: Vec<(ProxyError, u16, &str, Side)> = vec![
        (ProxyError::NoRoute, 404, "no_route", Side::Client),
        (ProxyError::OriginMissing, 403, "origin", Side::Client),
        (
            ProxyError::SessionUnknown,
            404,
            "session_unknown",
            Side::Client,
        ),
        (
            ProxyError::SessionOriginMismatch,
            403,
            "origin",
            Side::Client,
        ),
        (
            ProxyError::TooManySessions { limit: 4 },
            429,
            "session_cap",
            Side::Client,
        ),
        (
            ProxyError::BodyTooLarge { limit: 9 },
            413,
            "too_large",
            Side::Client,
        ),
        (
            ProxyError::BadFallbackRequest("x".into()),
            400,
            "bad_request",
            Side::Client,
        ),
        (
            ProxyError::SubprotocolNotOffered {
                allowed: vec!["a".into()],
            },
            400,
            "subprotocol",
            Side::Client,
        ),
        (
            ProxyError::UnsupportedVersion("8".into()),
            426,
            "version",
            Side::Client,
        ),
        (
            ProxyError::BadHandshake("x"),
            400,
            "bad_request",
            Side::Client,
        ),
        (ProxyError::H2cUpgrade, 400, "bad_request", Side::Client),
        (
            ProxyError::MalformedVersion("x".into()),
            400,
            "version_malformed",
            Side::Client,
        ),
        (
            ProxyError::ExtendedConnect(ConnectFault::UnknownProtocol("h3".into())),
            501,
            "connect_protocol",
            Side::Client,
        ),
        (
            ProxyError::ExtendedConnect(ConnectFault::SettingNotReceived),
            400,
            "connect_early",
            Side::Client,
        ),
        (ProxyError::Tunnel, 501, "connect_tunnel", Side::Client),
        (
            ProxyError::AuthorityMismatch,
            400,
            "bad_request",
            Side::Client,
        ),
        (
            ProxyError::BackendConnectTimeout {
                backend: "b".into(),
                timeout: Duration::from_secs(1),
            },
            504,
            "backend_timeout",
            Side::Backend,
        ),
        (
            ProxyError::BackendProtocol {
                backend: "b".into(),
                reason: "r".into(),
            },
            502,
            "backend_protocol",
            Side::Backend,
        ),
    ];
    cases.push((
        ProxyError::BackendTls {
            backend: "b".into(),
            reason: "invalid peer certificate: UnknownIssuer".into(),
        },
        502,
        "backend_tls",
        Side::Backend,
    ));
    for (err, status, reason, side) in cases {
        assert_eq!(err.status().as_u16(), status, "{err}");
        assert_eq!(err.reason(), reason, "{err}");
        assert_eq!(err.side(), side, "{err}");
    }
}

#[test]
fn limit_refusals_name_their_limit_and_say_when_to_retry() {
    let cap = ProxyError::TooManySessions { limit: 2 };
    assert_eq!(cap.limit(), Some(Limit::FallbackSessions));
    assert_eq!(cap.to_response().headers()[header::RETRY_AFTER], "1");
    let over = ProxyError::OverLimit(Refusal::Handshakes);
    assert_eq!(over.limit(), Some(Limit::Handshakes));
    let response = over.to_response();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    assert_eq!(ProxyError::NoRoute.limit(), None);
}

#[test]
fn version_error_advertises_13() {
    let r = ProxyError::UnsupportedVersion("8".into()).to_response();
    assert_eq!(r.headers()[header::SEC_WEBSOCKET_VERSION], "13");
    let e = ProxyError::BackendConnect {
        backend: "ws://10.0.0.5:9000".into(),
        source: io::Error::from(io::ErrorKind::ConnectionRefused),
    };
    assert_eq!(e.to_response().status(), StatusCode::BAD_GATEWAY);
}
