//! Fallback sessions ending without a close: expiry, a stalled event-stream
//! reader, and gateway shutdown (the 1012 every client must collect, and
//! opens and upgrades refused while draining).

use serde_json::json;

use crate::support::backend::{Answer, Behaviour, WsBackend};
use crate::support::client::{raw_request, upgrade_request, WAIT};
use crate::support::fallback::{self as fb, next_close, text, texts, Session, Sse};
use crate::support::{one_route, TestGateway};
use wsgate::shutdown::SHUTDOWN_ACK_WAIT;

const ORIGIN: &str = "http://chat.example.com";

async fn setup(extra: &str) -> (TestGateway, WsBackend) {
    fb::gateway_with(Behaviour::Echo, extra).await
}

#[tokio::test]
async fn a_stalled_event_stream_does_not_keep_the_session_and_backend_forever() {
    let timeout = std::time::Duration::from_millis(500);
    let (gw, mut backend) = setup(
        "fallback_poll_hold = \"100ms\"\nfallback_session_timeout = \"500ms\"\n\
         fallback_buffer = \"64KiB\"",
    )
    .await;
    let s = Session::open(gw.addr(), "/chat", Some(ORIGIN)).await;
    let other = Session::open(gw.addr(), "/chat", Some(ORIGIN)).await;
    let stalled = fb::stalled_reader(gw.addr(), &s.path("sse"), ORIGIN).await;
    // Far more than the reader takes: the outbox fills, the backend pauses.
    let big = "x".repeat(16 * 1024);
    for seq in (1..=40).step_by(2) {
        let sent = s.send(seq, &[text(&big), text(&big)]).await;
        assert_eq!(sent.status, 200, "{}", sent.body);
    }
    let last_activity = std::time::Instant::now();
    let keep_alive = async {
        loop {
            other.poll(0).await;
        }
    };
    let close = tokio::select! {
        close = next_close(&mut backend) => close,
        _ = keep_alive => unreachable!(),
    };
    let took = last_activity.elapsed();
    assert_eq!(close, (1001, "fallback session expired".to_string()));
    assert!(
        took >= timeout / 2,
        "expired after {took:?}, before the timeout"
    );
    let bound = timeout + std::time::Duration::from_secs(4);
    assert!(took < bound, "expired only after {took:?}");
    assert_eq!(s.poll(0).await.status, 404);
    other.send(1, &[text("unaffected")]).await;
    assert_eq!(texts(&other.collect(0, 1).await), ["unaffected"]);
    drop(stalled);
    gw.stop().await;
}

#[tokio::test]
async fn an_abandoned_session_expires_and_the_backend_gets_1001() {
    let (gw, mut backend) =
        setup("fallback_poll_hold = \"100ms\"\nfallback_session_timeout = \"300ms\"").await;
    let s = Session::open(gw.addr(), "/chat", Some(ORIGIN)).await;
    let other = Session::open(gw.addr(), "/chat", Some(ORIGIN)).await;
    s.send(1, &[text("hello")]).await;
    let keep_alive = async {
        loop {
            other.poll(0).await;
        }
    };
    let close = tokio::select! {
        close = next_close(&mut backend) => close,
        _ = keep_alive => unreachable!(),
    };
    assert_eq!(close, (1001, "fallback session expired".to_string()));
    let gone = s.poll(1).await;
    assert_eq!(gone.status, 404);
    assert!(gone.body.contains("unknown or expired"), "{}", gone.body);
    // The session that kept polling is unaffected.
    other.send(1, &[text("still here")]).await;
    assert_eq!(texts(&other.collect(0, 1).await), ["still here"]);
    gw.stop().await;
}

#[tokio::test]
async fn shutdown_tells_the_client_to_reconnect_and_the_backend_1001() {
    let (gw, mut backend) = setup("").await;
    let s = Session::open(gw.addr(), "/chat", Some(ORIGIN)).await;
    // An open event stream: the head has arrived, so the session is attached.
    let response = fb::start(gw.addr(), "GET", &s.path("sse"), &[], "").await;
    let mut body = Sse::new(response.into_body());
    let stopped = tokio::spawn(gw.stop());
    let events = body.events(1).await;
    assert_eq!(events[0].1["close"]["code"], 1012);
    assert_eq!(next_close(&mut backend).await.0, 1001);
    // The bundled client acknowledges the close, which ends the session.
    let ack = format!(r#"{{"ack":{}}}"#, events[0].0);
    assert_eq!(s.post("send", &ack).await.status, 200);
    tokio::time::timeout(WAIT, stopped).await.unwrap().unwrap();
}

/// A gateway whose grace is long enough that the drain's wait for fallback
/// clients is [`SHUTDOWN_ACK_WAIT`] itself.
async fn setup_long_grace() -> (TestGateway, WsBackend) {
    let backend = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let config = one_route(&[backend.url()], "fallback = true")
        .replace("shutdown_grace = \"5s\"", "shutdown_grace = \"60s\"");
    (TestGateway::start(&config).await, backend)
}

#[tokio::test]
async fn shutdown_tells_a_long_poll_client_between_polls_to_reconnect() {
    let (mut gw, mut backend) = setup_long_grace().await;
    let s = Session::open(gw.addr(), "/chat", Some(ORIGIN)).await;
    s.send(1, &[text("before")]).await;
    assert_eq!(texts(&s.collect(0, 1).await), ["before"]);
    // No poll is held: the client is between two polls when the drain starts.
    gw.begin_stop();
    let close = next_close(&mut backend).await;
    assert_eq!(close, (1001, "gateway shutting down".to_string()));
    let events = s.collect(1, 1).await;
    assert_eq!(
        events[0]["close"],
        json!({ "code": 1012, "reason": "gateway restarting; reconnect" })
    );
    let acked = std::time::Instant::now();
    let ack = format!(r#"{{"ack":{}}}"#, events[0]["seq"]);
    assert_eq!(s.post("send", &ack).await.status, 200);
    tokio::time::timeout(WAIT, gw.join()).await.unwrap();
    assert!(
        acked.elapsed() < SHUTDOWN_ACK_WAIT,
        "the acknowledgement, not the bound, ended the wait ({:?})",
        acked.elapsed()
    );
}

#[tokio::test]
async fn opens_and_upgrades_during_the_drain_are_503_without_dialing() {
    let (mut gw, mut backend) = setup_long_grace().await;
    // An open session keeps the drain in its first stage, still accepting.
    let s = Session::open(gw.addr(), "/chat", Some(ORIGIN)).await;
    gw.begin_stop();
    assert_eq!(next_close(&mut backend).await.0, 1001);
    let refused = fb::open(gw.addr(), "/chat", Some(ORIGIN), &[]).await;
    assert_eq!(refused.status, 503, "{}", refused.body);
    let upgrade = upgrade_request("/chat", &[&format!("Origin: {ORIGIN}")]);
    assert_eq!(raw_request(gw.addr(), &upgrade).await.status, 503);
    assert_eq!(backend.connection_count(), 1, "the backend was not dialed");
    let events = s.collect(0, 1).await;
    assert_eq!(events[0]["close"]["code"], 1012);
    let ack = format!(r#"{{"ack":{}}}"#, events[0]["seq"]);
    assert_eq!(s.post("send", &ack).await.status, 200);
    tokio::time::timeout(WAIT, gw.join()).await.unwrap();
}
