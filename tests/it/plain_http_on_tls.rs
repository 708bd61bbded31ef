//! Plain HTTP sent to a TLS port gets `400 Bad Request` in plain HTTP
//! naming the `https://` URL (as nginx answers), counted on `/metrics`;
//! TLS clients of the same listener are unaffected, and a client that sends
//! nothing is still cut at `handshake_timeout`.

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::support::client::{raw_request, WAIT};
use crate::support::ops::metric;
use crate::support::tls::{tls_connect, Pki};
use crate::support::TestGateway;

/// A TLS listener with a certificate for `site.test`, and a catch-all route.
fn config(pki: &Pki, extra: &str) -> String {
    let site = pki.server("site", &["site.test"]);
    format!(
        "[[listeners]]\nbind = \"127.0.0.1:0\"\n[listeners.tls]\n\
         certs = [{{ cert = {:?}, key = {:?} }}]\n{extra}\n\
         [[routes]]\nbackends = [\"builtin:echo\"]\n",
        site.cert, site.key
    )
}

#[tokio::test]
async fn plain_http_on_a_tls_port_gets_400_naming_https() {
    let pki = Pki::new("plain");
    let gw = TestGateway::start(&config(&pki, "")).await;
    let port = gw.addr().port();
    let request = format!("GET /chat?room=1 HTTP/1.1\r\nHost: site.test:{port}\r\n\r\n");
    let answer = raw_request(gw.addr(), &request).await;
    assert_eq!(answer.status, 400, "{}", answer.head);
    assert!(
        answer.head.starts_with("HTTP/1.1 400 Bad Request"),
        "{}",
        answer.head
    );
    assert_eq!(
        answer.body.trim(),
        format!("this port speaks HTTPS; use https://site.test:{port}/chat?room=1")
    );
    assert_eq!(answer.header("connection").as_deref(), Some("close"));
    let counted = metric(gw.admin, "wsgate_tls_plain_http_requests_total", &[]).await;
    assert_eq!(counted, 1.0);
    let failures = metric(gw.admin, "wsgate_tls_handshake_failures_total", &[]).await;
    assert_eq!(failures, 0.0, "a plain request is not a failed handshake");
    // TLS on the same listener works as before.
    let client = pki.client_config(None);
    tls_connect(gw.addr(), "site.test", client).await.unwrap();
    gw.stop().await;
}

#[tokio::test]
async fn a_silent_client_is_still_cut_at_the_handshake_timeout() {
    let pki = Pki::new("silent");
    let gw = TestGateway::start(&config(&pki, "handshake_timeout = \"200ms\"")).await;
    let mut silent = TcpStream::connect(gw.addr()).await.unwrap();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(WAIT, silent.read(&mut byte)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
    let failures = metric(gw.admin, "wsgate_tls_handshake_failures_total", &[]).await;
    assert_eq!(failures, 1.0);
    gw.stop().await;
}
