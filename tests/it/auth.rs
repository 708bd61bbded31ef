//! Forward auth against a real auth service: a hyper server on its own
//! socket, started by each test, that admits by cookie and refuses
//! otherwise, and is sometimes slow, sometimes down, sometimes broken.
//! Every outcome is checked on the WebSocket upgrade, the fallback open and
//! plain HTTP, and a refusal never dials the backend.

use std::net::SocketAddr;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use crate::support::auth::auth_service;
use crate::support::backend::{http_echo_backend, refused_addr, Answer, Behaviour, WsBackend};
use crate::support::client::{raw_request, read_response, upgrade_request, WAIT};
use crate::support::fallback;
use crate::support::logs;
use crate::support::ops::metric;
use crate::support::TestGateway;

/// A server that answers every connection with bytes that are not HTTP.
async fn garbage_service() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream.write_all(b"\x00\x01 this is not HTTP\r\n\r\n").await;
        }
    });
    addr
}

/// Routes: `/ws` and `/http` behind the auth service (copying `X-User`,
/// 500 ms), `/down` behind an auth address nothing listens on,
/// `/nowhere` behind a name that does not resolve, `/garbage` behind a
/// service that does not speak HTTP. `/ws`, `/down`, `/nowhere` and
/// `/garbage` share one WebSocket backend, `/ws` offers the fallback.
async fn gateway(auth: SocketAddr, ws: &WsBackend, http: SocketAddr) -> TestGateway {
    let down = refused_addr().await;
    let garbage = garbage_service().await;
    let auth_of = |url: String| {
        format!(
            "auth = {{ forward = \"{url}\", copy_headers = [\"X-User\"], timeout = \"500ms\" }}"
        )
    };
    let route = |path: &str, backend: String, auth: String| {
        format!("[[routes]]\npath = \"{path}\"\nbackends = [\"{backend}\"]\norigins = [\"*\"]\n{auth}\n")
    };
    let toml = [
        "[[listeners]]\nbind = \"127.0.0.1:0\"\n".to_string(),
        route(
            "/ws",
            ws.url(),
            auth_of(format!("http://{auth}/verify?x=1")),
        ) + "fallback = true\n",
        route(
            "/http",
            format!("http://{http}"),
            auth_of(format!("http://{auth}/verify")),
        ),
        route("/down", ws.url(), auth_of(format!("http://{down}/verify"))),
        route(
            "/nowhere",
            ws.url(),
            auth_of("http://auth.invalid:9/verify".into()),
        ),
        route("/garbage", ws.url(), auth_of(format!("http://{garbage}/"))),
    ]
    .join("\n");
    TestGateway::start(&toml).await
}

/// Upgrades `path` with `session` as the cookie (and extra header lines);
/// the answer's head and body, the connection closed.
async fn upgrade(
    gw: &TestGateway,
    path: &str,
    session: &str,
    extra: &[&str],
) -> (u16, String, String) {
    let cookie = format!("Cookie: session={session}");
    let mut lines = vec![cookie.as_str()];
    lines.extend_from_slice(extra);
    let mut stream = tokio::net::TcpStream::connect(gw.addr()).await.unwrap();
    stream
        .write_all(upgrade_request(path, &lines).as_bytes())
        .await
        .unwrap();
    let response = tokio::time::timeout(WAIT, read_response(&mut stream))
        .await
        .unwrap();
    (response.status, response.head, response.body)
}

#[tokio::test]
async fn a_good_cookie_admits_the_upgrade_and_the_service_vouches_for_the_user() {
    let auth = auth_service().await;
    let ws = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let (http, _) = http_echo_backend().await;
    let gw = gateway(auth.addr, &ws, http).await;
    let forged = [
        "X-User: mallory",
        "X-Forwarded-For: 6.6.6.6",
        "Origin: https://app.example.com",
        "Authorization: Bearer t0ken",
    ];
    let (status, head, _) = upgrade(&gw, "/ws/room?id=7", "good", &forged).await;
    assert_eq!(status, 101, "{head}");
    let (_, headers) = ws.request(0);
    let users: Vec<_> = headers.get_all("x-user").iter().collect();
    assert_eq!(
        users,
        ["alice"],
        "only the service's X-User reaches the backend"
    );
    assert!(
        headers.get("x-other").is_none(),
        "only copy_headers are copied"
    );
    let asked = auth.asked.lock().unwrap()[0].clone();
    assert_eq!(asked["x-forwarded-method"], "GET");
    assert_eq!(asked["x-forwarded-uri"], "/ws/room?id=7");
    assert_eq!(asked["cookie"], "session=good");
    assert_eq!(asked["origin"], "https://app.example.com");
    assert_eq!(
        asked["authorization"], "Bearer t0ken",
        "the service judges the client's credentials"
    );
    assert_eq!(
        headers["authorization"], "Bearer t0ken",
        "and so does the backend"
    );
    assert_eq!(
        asked["x-forwarded-for"], "127.0.0.1",
        "the client's forgery never reaches the service"
    );
    assert!(asked.get("x-user").is_none());
    let labels = [("route", "*/ws"), ("result", "allowed")];
    assert_eq!(
        metric(gw.admin, "wsgate_auth_requests_total", &labels).await,
        1.0
    );
}

#[tokio::test]
async fn refusals_go_back_as_is_and_never_dial_the_backend() {
    let auth = auth_service().await;
    let ws = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let (http, http_dials) = http_echo_backend().await;
    let gw = gateway(auth.addr, &ws, http).await;
    let (status, head, body) = upgrade(&gw, "/ws", "stolen", &[]).await;
    assert_eq!(status, 401);
    assert!(
        head.to_ascii_lowercase()
            .contains("www-authenticate: bearer realm=\"chat\""),
        "{head}"
    );
    assert_eq!(body, "login first\n");
    let (status, _, body) = upgrade(&gw, "/ws", "banned", &[]).await;
    assert_eq!((status, body.as_str()), (403, "banned\n"));
    let plain = raw_request(
        gw.addr(),
        "GET /http/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!((plain.status, plain.body.as_str()), (401, "login first\n"));
    let open = fallback::request(
        gw.addr(),
        "POST",
        "/_wsgate/open?path=/ws",
        &[("cookie", "session=no")],
        "",
    )
    .await;
    assert_eq!((open.status, open.body.as_str()), (401, "login first\n"));
    assert_eq!(ws.connection_count(), 0, "no backend was dialled");
    assert_eq!(http_dials.load(std::sync::atomic::Ordering::SeqCst), 0);
    let denied = [("route", "*/ws"), ("result", "denied")];
    assert_eq!(
        metric(gw.admin, "wsgate_auth_requests_total", &denied).await,
        3.0
    );
}

#[tokio::test]
async fn plain_http_and_the_fallback_are_admitted_the_same_way() {
    let auth = auth_service().await;
    let ws = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let (http, _) = http_echo_backend().await;
    let gw = gateway(auth.addr, &ws, http).await;
    let request = "GET /http/x HTTP/1.1\r\nHost: a\r\nCookie: session=good\r\nX-User: mallory\r\nConnection: close\r\n\r\n";
    let plain = raw_request(gw.addr(), request).await;
    assert_eq!(plain.status, 200, "{}", plain.body);
    assert!(plain.body.contains("x-user: alice\n"), "{}", plain.body);
    assert!(!plain.body.contains("mallory"), "{}", plain.body);
    let headers = [("cookie", "session=good"), ("x-user", "mallory")];
    let open = fallback::request(gw.addr(), "POST", "/_wsgate/open?path=/ws", &headers, "").await;
    assert_eq!(open.status, 200, "{}", open.body);
    let (_, backend_saw) = ws.request(0);
    let users: Vec<_> = backend_saw.get_all("x-user").iter().collect();
    assert_eq!(users, ["alice"]);
}

#[tokio::test]
async fn a_slow_down_or_broken_service_never_admits() {
    let logs = logs::capture();
    let auth = auth_service().await;
    let ws = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let (http, _) = http_echo_backend().await;
    let gw = gateway(auth.addr, &ws, http).await;
    let cases = [
        ("/ws", "slow", 504, "auth_timeout"),
        ("/ws", "redirect", 502, "auth_bad_answer"),
        ("/ws", "huge", 502, "auth_bad_answer"),
        ("/ws", "teapot", 502, "auth_bad_answer"),
        ("/down", "good", 502, "auth_unreachable"),
        ("/garbage", "good", 502, "auth_bad_answer"),
    ];
    for (path, session, want, reason) in cases {
        let (status, head, body) = upgrade(&gw, path, session, &[]).await;
        assert_eq!(status, want, "{path} {session}: {head}");
        assert!(!body.contains("xxxx"), "a huge denial is never passed on");
        logs.wait_for_line(&["rejected", &format!("reason=\"{reason}\"")])
            .await;
    }
    // A name that does not resolve: refused fast, or cut by the timeout.
    let (status, _, _) = upgrade(&gw, "/nowhere", "good", &[]).await;
    assert!(status == 502 || status == 504, "{status}");
    logs.wait_for_line(&["rejected", "*/nowhere", "reason=\"auth_"])
        .await;
    let mut counted = 0.0;
    for result in ["auth_unreachable", "auth_timeout"] {
        let labels = [("route", "*/nowhere"), ("result", result)];
        counted += metric(gw.admin, "wsgate_auth_requests_total", &labels).await;
    }
    assert_eq!(counted, 1.0, "the unresolvable service is counted");
    assert_eq!(ws.connection_count(), 0, "no backend was dialled");
    let timeouts = [("route", "*/ws"), ("result", "auth_timeout")];
    assert_eq!(
        metric(gw.admin, "wsgate_auth_requests_total", &timeouts).await,
        1.0
    );
    let unreachable = [("route", "*/down"), ("result", "auth_unreachable")];
    assert_eq!(
        metric(gw.admin, "wsgate_auth_requests_total", &unreachable).await,
        1.0
    );
    // A redirect, a huge denial and a teapot on /ws, garbage on /garbage.
    for (route, n) in [("*/ws", 3.0), ("*/garbage", 1.0)] {
        let labels = [("route", route), ("result", "auth_bad_answer")];
        assert_eq!(
            metric(gw.admin, "wsgate_auth_requests_total", &labels).await,
            n,
            "{route}"
        );
    }
    let rejected = [("reason", "auth_bad_answer"), ("http_version", "1.1")];
    assert_eq!(
        metric(gw.admin, "wsgate_websocket_handshakes_total", &rejected).await,
        4.0
    );
}

#[test]
fn hop_by_hop_copy_headers_are_a_config_error() {
    let toml = "[[listeners]]\nbind = \"127.0.0.1:0\"\n[[routes]]\nbackends = [\"ws://127.0.0.1:9\"]\n\
                auth = { forward = \"ws://auth:9000/\", copy_headers = [\"Connection\", \"X-User\", \"transfer-encoding\"], timeout = \"0s\" }\n";
    let errors = wsgate::config::Config::parse(toml, std::path::Path::new("."))
        .unwrap_err()
        .to_string();
    for expected in [
        "routes[0].auth.copy_headers[0]: \"Connection\" is hop-by-hop",
        "routes[0].auth.copy_headers[2]: \"transfer-encoding\" is hop-by-hop",
        "routes[0].auth.forward: the auth service is an http:// or https:// URL",
        "routes[0].auth.timeout: must be greater than zero",
    ] {
        assert!(
            errors.contains(expected),
            "missing {expected:?} in:\n{errors}"
        );
    }
}

/// An `https://` auth service is verified as `https://` backends are: a
/// certificate from the route's `backend_ca` admits (the service answers
/// 200 to everything), one the public roots do not know is a 502 and
/// never admits.
#[tokio::test]
async fn an_https_auth_service_is_verified_as_backends_are() {
    let pki = crate::support::tls::Pki::new("auth");
    let service =
        crate::support::tls::https_echo_backend(&pki.server("auth", &["127.0.0.1"])).await;
    let ws = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let auth = format!("auth = {{ forward = \"https://{service}/verify\" }}");
    let trusted = format!("{auth}\nbackend_ca = {:?}", pki.ca_path);
    for (route, want) in [(trusted.as_str(), 101), (auth.as_str(), 502)] {
        let toml = crate::support::one_route(&[ws.url()], route);
        let gw = TestGateway::start(&toml).await;
        let (status, head, _) = upgrade(&gw, "/", "any", &[]).await;
        assert_eq!(status, want, "{route}: {head}");
    }
    assert_eq!(
        ws.connection_count(),
        1,
        "only the verified service admitted"
    );
}
