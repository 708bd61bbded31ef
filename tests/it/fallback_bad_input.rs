//! Bad input to the fallback endpoints: each gets a clear error and no
//! other session is affected.

use crate::support::backend::{Answer, Behaviour, WsBackend};
use crate::support::fallback::{self as fb, text, texts, Session};
use crate::support::{one_route, TestGateway};

const ORIGIN: &str = "http://chat.example.com";

async fn setup(answer: Answer, extra: &str) -> (TestGateway, WsBackend) {
    let backend = WsBackend::start(answer, Behaviour::Echo).await;
    let config = one_route(&[backend.url()], &format!("fallback = true\n{extra}"));
    (TestGateway::start(&config).await, backend)
}

/// A session that must keep working after each bad request.
async fn still_works(s: &Session, seq: u64) {
    assert_eq!(s.send(seq, &[text("ok?")]).await.status, 200);
    let events = s.collect(seq - 1, 1).await;
    assert_eq!(texts(&events), ["ok?"]);
}

#[tokio::test]
async fn unknown_and_malformed_session_ids_are_404_with_a_reason() {
    let (gw, _b) = setup(Answer::AcceptFirst, "").await;
    let s = Session::open(gw.addr(), "/chat", Some(ORIGIN)).await;
    for id in ["0123456789abcdef0123456789abcdef", "nope", ""] {
        let path = format!("/_wsgate/s/{id}/poll");
        let reply = fb::request(gw.addr(), "GET", &path, &[], "").await;
        assert_eq!(reply.status, 404, "{id}");
        assert!(
            reply.body.contains("unknown or expired fallback session") || id.is_empty(),
            "{}",
            reply.body
        );
    }
    let reply = fb::request(gw.addr(), "GET", "/_wsgate/nothing", &[], "").await;
    assert_eq!(reply.status, 404);
    still_works(&s, 1).await;
    gw.stop().await;
}

#[tokio::test]
async fn a_session_used_from_another_origin_is_403() {
    let (gw, _b) = setup(Answer::AcceptFirst, "origins = [\"*\"]").await;
    let s = Session::open(gw.addr(), "/chat", Some(ORIGIN)).await;
    let path = s.path("poll?ack=0");
    for headers in [
        vec![("origin", "https://evil.example")],
        vec![("sec-fetch-site", "cross-site")],
    ] {
        let reply = fb::request(gw.addr(), "GET", &path, &headers, "").await;
        assert_eq!(reply.status, 403, "{headers:?}");
        assert!(reply.body.contains("another origin"), "{}", reply.body);
    }
    still_works(&s, 1).await;
    gw.stop().await;
}

#[tokio::test]
async fn oversized_posts_are_413() {
    // A 512-byte message fits base64-encoded in 1 KiB: the limit stays 1 KiB.
    let route = "fallback_buffer = \"1KiB\"\nmax_message_size = \"512\"";
    let (gw, _b) = setup(Answer::AcceptFirst, route).await;
    let s = Session::open(gw.addr(), "/chat", Some(ORIGIN)).await;
    let other = Session::open(gw.addr(), "/chat", Some(ORIGIN)).await;
    let big = format!(
        r#"{{"seq":1,"messages":[{{"text":"{}"}}]}}"#,
        "x".repeat(2000)
    );
    let reply = s.post("send", &big).await;
    assert_eq!(reply.status, 413, "{}", reply.body);
    assert!(reply.body.contains("1024"), "{}", reply.body);
    // Within the body limit, but one message above max_message_size.
    let long = s.send(1, &[text(&"y".repeat(513))]).await;
    assert_eq!(long.status, 413, "{}", long.body);
    assert!(long.body.contains("512"), "{}", long.body);
    still_works(&s, 1).await;
    still_works(&other, 1).await;
    gw.stop().await;
}

#[tokio::test]
async fn malformed_batches_are_400() {
    let (gw, _b) = setup(Answer::AcceptFirst, "fallback_poll_hold = \"200ms\"").await;
    let s = Session::open(gw.addr(), "/chat", Some(ORIGIN)).await;
    // A second, independent session with messages in flight both ways.
    let other = Session::open(gw.addr(), "/chat", Some(ORIGIN)).await;
    assert_eq!(other.send(1, &[text("o1"), text("o2")]).await.status, 200);
    for body in [
        "garbage",
        r#"{"messages":[{"text":"no seq"}]}"#,
        r#"{"seq":1,"messages":[{"binary":"***"}]}"#,
        r#"{"seq":1,"messages":[{"text":"a","binary":"AA=="}]}"#,
        r#"{"ack":99}"#,
    ] {
        let reply = s.post("send", body).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.body);
        assert!(
            reply.body.starts_with("bad fallback request"),
            "{}",
            reply.body
        );
    }
    let reply = fb::request(gw.addr(), "GET", &s.path("poll?ack=x"), &[], "").await;
    assert_eq!(reply.status, 400);
    still_works(&s, 1).await;
    // The other session lost nothing, saw nothing of s, and goes on in order.
    assert_eq!(texts(&other.collect(0, 2).await), ["o1", "o2"]);
    assert_eq!(other.send(3, &[text("o3")]).await.json()["acked"], 3);
    assert_eq!(texts(&other.collect(2, 1).await), ["o3"]);
    assert!(
        other.poll(3).await.events().is_empty(),
        "nothing else arrived"
    );
    gw.stop().await;
}

#[tokio::test]
async fn too_many_sessions_from_one_client_is_429() {
    let (gw, _b) = setup(Answer::AcceptFirst, "fallback_sessions_per_client = 3").await;
    let mut sessions = Vec::new();
    for _ in 0..3 {
        sessions.push(Session::open(gw.addr(), "/chat", Some(ORIGIN)).await);
    }
    let reply = fb::open(gw.addr(), "/chat", Some(ORIGIN), &[]).await;
    assert_eq!(reply.status, 429, "{}", reply.body);
    assert!(reply.body.contains("limit 3"), "{}", reply.body);
    still_works(&sessions[0], 1).await;
    // Closing one frees a slot.
    assert_eq!(sessions[2].post("close", "").await.status, 200);
    let reopened = tokio::time::timeout(crate::support::client::WAIT, async {
        loop {
            if fb::open(gw.addr(), "/chat", Some(ORIGIN), &[]).await.status == 200 {
                break;
            }
            tokio::task::yield_now().await;
        }
    });
    reopened.await.expect("a slot frees up");
    gw.stop().await;
}

#[tokio::test]
async fn opens_get_the_websocket_paths_checks_and_the_backends_refusal() {
    let (gw, b) = setup(
        Answer::AcceptFirst,
        "subprotocols = [\"chat.v2\"]\n\n[[routes]]\npath = \"/plain\"\nbackends = [\"ws://127.0.0.1:9\"]\n",
    )
    .await;
    let evil = fb::open(
        gw.addr(),
        "/chat",
        Some("https://evil.example"),
        &["protocol=chat.v2"],
    )
    .await;
    assert_eq!(evil.status, 403, "{}", evil.body);
    let wrong = fb::open(gw.addr(), "/chat", Some(ORIGIN), &["protocol=chat.v1"]).await;
    assert_eq!(wrong.status, 400);
    assert!(wrong.body.contains("chat.v2"), "{}", wrong.body);
    let disabled = fb::open(gw.addr(), "/plain", Some(ORIGIN), &[]).await;
    assert_eq!(disabled.status, 404);
    assert!(disabled.body.contains("not enabled"), "{}", disabled.body);
    let no_path = fb::request(gw.addr(), "POST", "/_wsgate/open", &[], "").await;
    assert_eq!(no_path.status, 400);
    assert_eq!(b.connection_count(), 0, "no backend was contacted");
    gw.stop().await;

    let (gw, _b) = setup(Answer::Refuse(401, "login first".into()), "").await;
    let refused = fb::open(gw.addr(), "/chat", Some(ORIGIN), &[]).await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.body, "login first");
    gw.stop().await;
}
