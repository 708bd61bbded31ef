//! HTTP/2 on TLS listeners: ALPN, plain HTTP over h2 to HTTP/1.1 backends
//! (streaming both ways, `:authority` as Host, forwarding headers, 502 and
//! 504), the fallback's endpoints over h2, and the idle close.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::support::backend::{refused_addr, silent_backend};
use crate::support::client::WAIT;
use crate::support::h2::{read_all, tls, H2, TLS_LISTENER};
use crate::support::ops::{metric, metric_reaches};
use crate::support::TestGateway;

/// One TLS listener and one route in front of `backend`.
fn config(backend: &str, extra: &str) -> String {
    format!("{TLS_LISTENER}\n[[routes]]\npath = \"/\"\nbackends = [\"{backend}\"]\n{extra}\n")
}

#[tokio::test]
async fn tls_listeners_offer_h2_then_http11_and_http2_false_offers_only_http11() {
    let gw = TestGateway::start(&config("builtin:echo", "")).await;
    let both: &[&[u8]] = &[b"h2", b"http/1.1"];
    let stream = tls(gw.addr(), both).await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let old = tls(gw.addr(), &[b"http/1.1"]).await;
    assert_eq!(old.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    drop((stream, old));
    gw.stop().await;

    let off = TLS_LISTENER.replace("self_signed = true", "self_signed = true\nhttp2 = false");
    let gw = TestGateway::start(&format!(
        "{off}\n[[routes]]\nbackends = [\"builtin:echo\"]\n"
    ))
    .await;
    let stream = tls(gw.addr(), both).await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    gw.stop().await;
}

/// A plain listener stays HTTP/1.1: the HTTP/2 preface (prior knowledge)
/// is no request it understands, and gets no HTTP/2 SETTINGS back.
#[tokio::test]
async fn plain_listeners_do_not_speak_h2_with_prior_knowledge() {
    let gw = TestGateway::start(&crate::support::one_route(&["builtin:echo".into()], "")).await;
    let mut tcp = tokio::net::TcpStream::connect(gw.addr()).await.unwrap();
    tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, tcp.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || text.starts_with("HTTP/1.1 4"),
        "{text}"
    );
    assert_eq!(
        crate::support::ops::metric(gw.admin, "wsgate_http2_connections_total", &[]).await,
        0.0
    );
    gw.stop().await;
}

/// An HTTP/1.1 backend that streams each request body back as it arrives
/// and names in response headers what it saw.
async fn streaming_echo_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service =
                hyper::service::service_fn(|req: Request<hyper::body::Incoming>| async move {
                    let mut res = hyper::Response::builder()
                        .header("x-seen-version", format!("{:?}", req.version()));
                    for name in [
                        "host",
                        "cookie",
                        "x-forwarded-for",
                        "x-forwarded-proto",
                        "x-forwarded-host",
                        "forwarded",
                        "authorization",
                    ] {
                        if let Some(v) = req.headers().get(name) {
                            res = res.header(format!("x-seen-{name}"), v.clone());
                        }
                    }
                    res = res.header("x-seen-path", req.uri().to_string());
                    Ok::<_, hyper::Error>(res.body(req.into_body()).unwrap())
                });
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_over_h2_streams_both_ways_with_authority_as_host() {
    let backend = streaming_echo_backend().await;
    let gw = TestGateway::start(&config(&format!("http://{backend}"), "")).await;
    let mut h2 = H2::connect(gw.addr()).await;
    let req = Request::post(h2.uri("/upload?x=1"))
        .header("cookie", "a=1")
        .header("cookie", "b=2")
        .header("authorization", "Bearer t")
        .body(())
        .unwrap();
    let (response, mut upload) = h2.start(req, false).await;
    upload
        .send_data(Bytes::from_static(b"first chunk;"), false)
        .unwrap();
    let response = tokio::time::timeout(WAIT, response).await.unwrap().unwrap();
    assert_eq!(response.status(), 200);
    let seen = |name: &str| {
        response
            .headers()
            .get(format!("x-seen-{name}"))
            .map(|v| v.to_str().unwrap().to_string())
    };
    let authority = h2.authority.clone();
    assert_eq!(seen("version").as_deref(), Some("HTTP/1.1"));
    assert_eq!(seen("host"), Some(authority.clone()));
    assert_eq!(seen("path").as_deref(), Some("/upload?x=1"));
    assert_eq!(
        seen("cookie").as_deref(),
        Some("a=1; b=2"),
        "h2 cookie fields joined"
    );
    assert_eq!(seen("authorization").as_deref(), Some("Bearer t"));
    assert_eq!(seen("x-forwarded-for").as_deref(), Some("127.0.0.1"));
    assert_eq!(seen("x-forwarded-proto").as_deref(), Some("https"));
    assert_eq!(seen("x-forwarded-host"), Some(authority.clone()));
    let forwarded = format!("for=127.0.0.1;proto=https;host=\"{authority}\"");
    assert_eq!(seen("forwarded"), Some(forwarded));
    // The first chunk comes back while the upload is still open: both
    // directions stream, nothing waits for the whole body.
    let mut body = response.into_body();
    let first = tokio::time::timeout(WAIT, body.data())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(&first[..], b"first chunk;");
    let _ = body.flow_control().release_capacity(first.len());
    upload
        .send_data(Bytes::from(vec![b'x'; 300_000]), false)
        .unwrap();
    upload.send_data(Bytes::from_static(b";end"), true).unwrap();
    let rest = tokio::time::timeout(WAIT, read_all(body)).await.unwrap();
    assert_eq!(rest.len(), 300_004);
    assert!(rest.ends_with(b";end"));
    gw.stop().await;
}

#[tokio::test]
async fn h2_requests_get_502_and_504_like_http11() {
    let refused = refused_addr().await;
    let (silent, _) = silent_backend().await;
    let extra = format!(
        "[[routes]]\npath = \"/slow\"\nbackends = [\"http://{silent}\"]\nresponse_timeout = \"300ms\"\n"
    );
    let gw = TestGateway::start(&config(&format!("http://{refused}"), &extra)).await;
    let mut h2 = H2::connect(gw.addr()).await;
    let (down, _) = h2.request(Method::GET, "/", &[], b"").await;
    assert_eq!(down.status(), 502);
    let (slow, _) = h2.request(Method::GET, "/slow", &[], b"").await;
    assert_eq!(slow.status(), 504);
    let (other, _) = h2
        .request(Method::GET, "/", &[("host", "elsewhere.example")], b"")
        .await;
    assert_eq!(
        other.status(),
        400,
        "a Host that differs from :authority is malformed"
    );
    gw.stop().await;
}

/// A CONNECT without `:protocol` asks for a tunnel: 501, no backend dialled.
#[tokio::test]
async fn a_plain_connect_is_501_and_dials_nothing() {
    let (backend, count) = crate::support::backend::http_echo_backend().await;
    let gw = TestGateway::start(&config(&format!("http://{backend}"), "")).await;
    let mut h2 = H2::connect(gw.addr()).await;
    let req = Request::connect(format!("127.0.0.1:{}", backend.port()))
        .body(())
        .unwrap();
    let (response, _send) = h2.start(req, false).await;
    let response = tokio::time::timeout(WAIT, response).await.unwrap().unwrap();
    assert_eq!(response.status(), 501);
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 0);
    gw.stop().await;
}

/// The fallback's endpoints over h2: open, send, poll, an SSE stream, close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fallback_works_over_h2() {
    let gw = TestGateway::start(&config("builtin:echo", "fallback = true")).await;
    let mut h2 = H2::connect(gw.addr()).await;
    let (script, js) = h2
        .request(Method::GET, "/_wsgate/client.js", &[], b"")
        .await;
    assert_eq!(script.status(), 200);
    assert!(String::from_utf8_lossy(&js).contains("WsgateSocket"));
    let origin = format!("https://{}", h2.authority);
    let open_path = "/_wsgate/open?path=/echo&transport=longpoll";
    let (opened, body) = h2
        .request(Method::POST, open_path, &[("origin", &origin)], b"")
        .await;
    assert_eq!(opened.status(), 200, "{body:?}");
    let session: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let id = session["session"].as_str().unwrap().to_string();
    let send = format!("/_wsgate/s/{id}/send");
    let batch = br#"{"seq":1,"messages":[{"text":"over h2"}]}"#;
    let (sent, _) = h2
        .request(Method::POST, &send, &[("origin", &origin)], batch)
        .await;
    assert_eq!(sent.status(), 200);
    let poll = format!("/_wsgate/s/{id}/poll?ack=0");
    let (polled, events) = h2
        .request(Method::GET, &poll, &[("origin", &origin)], b"")
        .await;
    assert_eq!(polled.status(), 200);
    assert!(
        String::from_utf8_lossy(&events).contains("over h2"),
        "{events:?}"
    );
    let sse_open = "/_wsgate/open?path=/echo&transport=sse";
    let (opened, body) = h2
        .request(Method::POST, sse_open, &[("origin", &origin)], b"")
        .await;
    assert_eq!(opened.status(), 200);
    let sse: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let sse_id = sse["session"].as_str().unwrap().to_string();
    let req = Request::get(h2.uri(&format!("/_wsgate/s/{sse_id}/sse?ack=0")))
        .header("origin", &origin)
        .body(())
        .unwrap();
    let (stream, _) = h2.start(req, true).await;
    let send = format!("/_wsgate/s/{sse_id}/send");
    let batch = br#"{"seq":1,"messages":[{"text":"sse over h2"}]}"#;
    let (sent, _) = h2
        .request(Method::POST, &send, &[("origin", &origin)], batch)
        .await;
    assert_eq!(sent.status(), 200);
    let stream = tokio::time::timeout(WAIT, stream).await.unwrap().unwrap();
    assert!(stream.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut events = stream.into_body();
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("sse over h2") {
        let chunk = tokio::time::timeout(WAIT, events.data())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let _ = events.flow_control().release_capacity(chunk.len());
        seen.extend_from_slice(&chunk);
    }
    let close = format!("/_wsgate/s/{id}/close");
    let (closed, _) = h2
        .request(Method::POST, &close, &[("origin", &origin)], b"")
        .await;
    assert!(closed.status().is_success(), "{}", closed.status());
    let opened = metric(
        gw.admin,
        "wsgate_fallback_sessions_total",
        &[("http_version", "2")],
    )
    .await;
    assert_eq!(opened, 2.0);
    gw.stop().await;
}

/// An h2 connection nobody uses is closed after `header_read_timeout` and
/// counted like an idle HTTP/1.1 one; a connection carrying a stream that
/// outlives the timeout (here, a slow upload) stays open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_h2_connections_close_and_busy_ones_stay() {
    let backend = streaming_echo_backend().await;
    let server = "[server]\nheader_read_timeout = \"300ms\"\n";
    let gw = TestGateway::start(&format!(
        "{server}{}",
        config(&format!("http://{backend}"), "")
    ))
    .await;
    let unused = H2::connect(gw.addr()).await;
    let closed = tokio::time::timeout(WAIT, unused.conn).await;
    assert!(closed.is_ok(), "an unused connection is closed");
    let labels = [("limit", "header_read_timeout"), ("answer", "closed")];
    metric_reaches(gw.admin, "wsgate_limit_refusals_total", &labels, 1.0).await;
    metric_reaches(
        gw.admin,
        "wsgate_http2_connections_total",
        &[("end", "unused")],
        1.0,
    )
    .await;

    let mut busy = H2::connect(gw.addr()).await;
    let (response, mut upload) = busy
        .start(Request::post(busy.uri("/slow")).body(()).unwrap(), false)
        .await;
    let mut body = tokio::time::timeout(WAIT, response)
        .await
        .unwrap()
        .unwrap()
        .into_body();
    for i in 0..4u8 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        upload.send_data(Bytes::from(vec![i; 10]), false).unwrap();
        let chunk = tokio::time::timeout(WAIT, body.data())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(
            chunk[0],
            i,
            "the stream is still served after {}ms",
            200 * (i as u32 + 1)
        );
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    upload.send_data(Bytes::new(), true).unwrap();
    read_all(body).await;
    let closed = tokio::time::timeout(WAIT, busy.conn).await;
    assert!(
        closed.is_ok(),
        "idle again after its stream ended, then closed"
    );
    metric_reaches(
        gw.admin,
        "wsgate_http2_connections_total",
        &[("end", "idle")],
        1.0,
    )
    .await;
    gw.stop().await;
}

/// An over-limit client that offers h2 still gets the refusal's one short
/// HTTP/1.1 answer: the refusal's handshake settles on `http/1.1`.
#[tokio::test]
async fn an_over_limit_h2_client_gets_an_http11_503() {
    let config = format!(
        "[limits]\nmax_connections = 1\n\n{}",
        config("builtin:echo", "")
    );
    let gw = TestGateway::start(&config).await;
    let held = H2::connect(gw.addr()).await;
    let mut refused = tls(gw.addr(), &[b"h2", b"http/1.1"]).await;
    assert_eq!(refused.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    refused
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, refused.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    drop(held);
    gw.stop().await;
}
