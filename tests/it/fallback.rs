//! The fallback protocol over real sockets: order, loss and duplication
//! under injected faults, backpressure, superseded polls, close in both
//! directions, what the backend sees, metrics, message size. Expiry and
//! shutdown are in fallback_lifecycle.rs.

use serde_json::json;

use crate::support::backend::{Behaviour, WsBackend};
use crate::support::client::WAIT;
use crate::support::fallback::{self as fb, next_close, text, texts, Session, Sse};
use crate::support::TestGateway;

const ORIGIN: &str = "http://chat.example.com";

async fn setup(extra: &str) -> (TestGateway, WsBackend) {
    fb::gateway_with(Behaviour::Echo, extra).await
}

#[tokio::test]
async fn text_and_binary_round_trip_in_order() {
    let (gw, _backend) = setup("").await;
    let s = Session::open(gw.addr(), "/chat", Some(ORIGIN)).await;
    let mut batch = Vec::new();
    for i in 0..100u8 {
        batch.push(match i % 2 {
            0 => text(&format!("m{i}")),
            _ => json!({ "binary": base64_of(&[i; 3]) }),
        });
    }
    assert_eq!(s.send(1, &batch).await.json()["acked"], 100);
    let events = s.collect(0, 100).await;
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event["seq"], i as u64 + 1);
        let kind = if i % 2 == 0 { "text" } else { "binary" };
        assert_eq!(event[kind], batch[i][kind], "event {i}");
    }
    gw.stop().await;
}

/// Polls without acknowledging until `count` events are queued.
async fn poll_until(s: &Session, count: usize) -> Vec<serde_json::Value> {
    loop {
        let events = s.poll(0).await.events();
        if events.len() >= count {
            return events;
        }
    }
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn a_lost_poll_response_is_delivered_again() {
    let (gw, _backend) = setup("").await;
    let s = Session::open(gw.addr(), "/chat", Some(ORIGIN)).await;
    s.send(1, &[text("a"), text("b")]).await;
    let first = poll_until(&s, 2).await;
    // The client never saw that answer: it polls with the same ack again.
    let again = s.poll(0).await.events();
    assert_eq!(texts(&again), texts(&first));
    s.send(3, &[text("c")]).await;
    let after_ack = s.collect(2, 1).await;
    assert_eq!(texts(&after_ack), ["c"]);
    gw.stop().await;
}

#[tokio::test]
async fn an_aborted_poll_loses_nothing() {
    let (gw, _backend) = setup("").await;
    let s = Session::open(gw.addr(), "/chat", Some(ORIGIN)).await;
    // A poll whose connection dies while it is held (the response is lost).
    let path = s.path("poll?ack=0");
    let held = fb::start(gw.addr(), "GET", &path, &[], "");
    let aborted = tokio::time::timeout(std::time::Duration::from_millis(200), held).await;
    assert!(aborted.is_err(), "the poll is held while nothing is queued");
    s.send(1, &[text("x"), text("y")]).await;
    assert_eq!(texts(&s.collect(0, 2).await), ["x", "y"]);
    gw.stop().await;
}

#[tokio::test]
async fn a_retried_post_is_not_applied_twice() {
    let (gw, _backend) = setup("fallback_poll_hold = \"200ms\"").await;
    let s = Session::open(gw.addr(), "/chat", Some(ORIGIN)).await;
    assert_eq!(s.send(1, &[text("1"), text("2")]).await.json()["acked"], 2);
    // The same batch again (its answer was lost), then an overlapping one.
    assert_eq!(s.send(1, &[text("1"), text("2")]).await.json()["acked"], 2);
    let overlap = s.send(2, &[text("2"), text("3"), text("4")]).await;
    assert_eq!(overlap.json()["acked"], 4);
    // A gap is refused and changes nothing.
    let gap = s.send(9, &[text("9")]).await;
    assert_eq!(gap.status, 400, "{}", gap.body);
    assert!(gap.body.contains("skips 5"), "{}", gap.body);
    s.send(5, &[text("5")]).await;
    assert_eq!(texts(&s.collect(0, 5).await), ["1", "2", "3", "4", "5"]);
    assert!(s.poll(5).await.events().is_empty(), "nothing else arrived");
    gw.stop().await;
}

#[tokio::test]
async fn a_new_poll_supersedes_the_held_one() {
    let (gw, _backend) = setup("").await;
    let s = Session::open(gw.addr(), "/chat", Some(ORIGIN)).await;
    let addr = gw.addr();
    let poll =
        |path: String| tokio::spawn(async move { fb::request(addr, "GET", &path, &[], "").await });
    let mut a = poll(s.path("poll?ack=0"));
    let mut b = poll(s.path("poll?ack=0"));
    // Whichever arrived first is superseded by the other and answers empty.
    let (first, later) = tokio::time::timeout(WAIT, async {
        tokio::select! {
            r = &mut a => (r.unwrap(), b),
            r = &mut b => (r.unwrap(), a),
        }
    })
    .await
    .unwrap();
    assert_eq!(first.json(), json!({ "events": [], "superseded": true }));
    s.send(1, &[text("for the new poll")]).await;
    let later = tokio::time::timeout(WAIT, later).await.unwrap().unwrap();
    assert_eq!(texts(&later.events()), ["for the new poll"]);
    gw.stop().await;
}

#[tokio::test]
async fn sse_resumes_after_last_event_id() {
    let (gw, _backend) = setup("").await;
    let s = Session::open(gw.addr(), "/chat", Some(ORIGIN)).await;
    let batch: Vec<_> = (1..=6).map(|i| text(&i.to_string())).collect();
    s.send(1, &batch).await;
    let response = fb::start(gw.addr(), "GET", &s.path("sse"), &[], "").await;
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = Sse::new(response.into_body());
    let first = body.events(6).await;
    assert_eq!(
        first.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6]
    );
    drop(body); // the stream breaks after event 3 was seen
    let resumed = fb::start(
        gw.addr(),
        "GET",
        &s.path("sse"),
        &[("last-event-id", "3")],
        "",
    )
    .await;
    let mut body = Sse::new(resumed.into_body());
    let rest = body.events(3).await;
    let rest: Vec<_> = rest
        .iter()
        .map(|(_, e)| e["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(rest, ["4", "5", "6"]);
    s.send(7, &[text("live")]).await;
    assert_eq!(body.events(1).await[0].1["text"], "live");
    gw.stop().await;
}

#[tokio::test]
async fn a_full_buffer_stops_reading_the_backend_and_loses_nothing() {
    let (gw, _backend) = setup("fallback_buffer = \"4KiB\"").await;
    let s = Session::open(gw.addr(), "/chat", Some(ORIGIN)).await;
    let big = "x".repeat(1000);
    let batch: Vec<_> = (0..40).map(|i| text(&format!("{i:03}{big}"))).collect();
    for (i, chunk) in batch.chunks(3).enumerate() {
        assert_eq!(s.send(1 + 3 * i as u64, chunk).await.status, 200);
    }
    // Nothing acknowledged: the gateway holds about 4 KiB, not 40 KB.
    let held = s.poll(0).await.events();
    assert!(held.len() <= 5, "outbox held {} messages", held.len());
    let all = s.collect(0, 40).await;
    let order: Vec<String> = texts(&all).iter().map(|t| t[..3].to_string()).collect();
    let want: Vec<String> = (0..40).map(|i| format!("{i:03}")).collect();
    assert_eq!(order, want);
    gw.stop().await;
}

#[tokio::test]
async fn close_travels_both_ways_with_code_and_reason() {
    let (gw, mut backend) = fb::gateway_with(Behaviour::DieOnCommand, "").await;
    let s = Session::open(gw.addr(), "/chat", Some(ORIGIN)).await;
    s.send(
        1,
        &[json!({ "close": { "code": 4000, "reason": "client bye" } })],
    )
    .await;
    assert_eq!(next_close(&mut backend).await, (4000, "client bye".into()));
    let events = s.collect(0, 1).await;
    assert_eq!(
        events[0]["close"],
        json!({ "code": 4000, "reason": "client bye" })
    );
    let late = s.send(2, &[text("after close")]).await;
    assert!(late.status == 410 || late.status == 404, "{}", late.body);

    let s = Session::open(gw.addr(), "/chat", Some(ORIGIN)).await;
    s.send(1, &[text("bye")]).await;
    let events = s.collect(0, 1).await;
    assert_eq!(
        events[0]["close"],
        json!({ "code": 4001, "reason": "server bye" })
    );
    // Acknowledging the close event ends the session.
    assert_eq!(s.post("send", r#"{"ack":1}"#).await.status, 200);
    let gone = wait_for_status(&s, 404).await;
    assert_eq!(gone, 404);
    gw.stop().await;
}

/// Polls `ack=0`-free status until it is `want` (the bridge removes the
/// session right after the ack; bounded by WAIT).
async fn wait_for_status(s: &Session, want: u16) -> u16 {
    tokio::time::timeout(WAIT, async {
        loop {
            let status = s.post("send", r#"{"ack":0}"#).await.status;
            if status == want {
                return status;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("status within the wait bound")
}

#[tokio::test]
async fn the_backend_sees_cookies_authorization_and_forwarding_headers() {
    let (gw, backend) = setup("").await;
    let headers = [
        ("origin", ORIGIN),
        ("cookie", "sid=42"),
        ("authorization", "Bearer t"),
    ];
    let path = "/_wsgate/open?path=%2Fchat%3Froom%3D7&protocol=chat.v1";
    let reply = fb::request(gw.addr(), "POST", path, &headers, "").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["protocol"], "chat.v1");
    assert_eq!(reply.headers["set-cookie"], "session=abc");
    let (uri, seen) = backend.request(0);
    assert_eq!(uri, "/chat?room=7");
    assert_eq!(seen["cookie"], "sid=42");
    assert_eq!(seen["authorization"], "Bearer t");
    assert_eq!(seen["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen["x-forwarded-proto"], "http");
    assert_eq!(seen["x-forwarded-host"], "chat.example.com");
    assert_eq!(
        seen["forwarded"],
        "for=127.0.0.1;proto=http;host=\"chat.example.com\""
    );
    assert_eq!(seen["origin"], ORIGIN);
    assert!(seen.get("content-length").is_none());
    gw.stop().await;
}

#[tokio::test]
async fn sessions_and_messages_show_on_metrics() {
    use crate::support::ops::{metric, metric_reaches};
    let (gw, _backend) = setup("").await;
    let s = Session::open(gw.addr(), "/chat", Some(ORIGIN)).await;
    s.send(1, &[text("a"), text("b"), text("c")]).await;
    assert_eq!(texts(&s.collect(0, 3).await), ["a", "b", "c"]);
    let longpoll = [("transport", "longpoll")];
    assert_eq!(
        metric(gw.admin, "wsgate_fallback_sessions_total", &longpoll).await,
        1.0
    );
    assert_eq!(
        metric(gw.admin, "wsgate_fallback_sessions_active", &longpoll).await,
        1.0
    );
    let up = [
        ("transport", "longpoll"),
        ("direction", "client_to_backend"),
    ];
    let down = [
        ("transport", "longpoll"),
        ("direction", "backend_to_client"),
    ];
    assert_eq!(
        metric(gw.admin, "wsgate_fallback_messages_total", &up).await,
        3.0
    );
    metric_reaches(gw.admin, "wsgate_fallback_messages_total", &down, 3.0).await;
    s.post("close", "").await;
    metric_reaches(gw.admin, "wsgate_fallback_sessions_active", &longpoll, 0.0).await;
    gw.stop().await;
}

#[tokio::test]
async fn sse_sessions_are_counted_as_sse_on_metrics() {
    use crate::support::ops::{metric, metric_reaches};
    let (gw, _backend) = setup("").await;
    let reply = fb::open(gw.addr(), "/chat", Some(ORIGIN), &["transport=sse"]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let s = Session {
        addr: gw.addr(),
        id: reply.json()["session"].as_str().unwrap().to_string(),
        origin: Some(ORIGIN.to_string()),
    };
    let headers = [("origin", ORIGIN)];
    let stream = fb::start(gw.addr(), "GET", &s.path("sse"), &headers, "").await;
    let mut body = Sse::new(stream.into_body());
    s.send(1, &[text("a"), text("b")]).await;
    let events = body.events(2).await;
    assert_eq!(events.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [1, 2]);
    let sse = [("transport", "sse")];
    let name = "wsgate_fallback_sessions_total";
    assert_eq!(metric(gw.admin, name, &sse).await, 1.0);
    assert_eq!(
        metric(gw.admin, name, &[("transport", "longpoll")]).await,
        0.0
    );
    let active = "wsgate_fallback_sessions_active";
    assert_eq!(metric(gw.admin, active, &sse).await, 1.0);
    let messages = "wsgate_fallback_messages_total";
    let up = [("transport", "sse"), ("direction", "client_to_backend")];
    let down = [("transport", "sse"), ("direction", "backend_to_client")];
    assert_eq!(metric(gw.admin, messages, &up).await, 2.0);
    assert_eq!(metric(gw.admin, messages, &down).await, 2.0);
    // Switching to long-polling (as the bundled client may) keeps the label.
    assert_eq!(texts(&s.collect(0, 2).await), ["a", "b"]);
    assert_eq!(metric(gw.admin, messages, &down).await, 2.0);
    s.send(3, &[text("c")]).await;
    assert_eq!(texts(&s.collect(2, 1).await), ["c"]);
    metric_reaches(gw.admin, messages, &down, 3.0).await;
    assert_eq!(
        metric(gw.admin, messages, &[("transport", "longpoll")]).await,
        0.0
    );
    s.post("close", "").await;
    metric_reaches(gw.admin, active, &sse, 0.0).await;
    gw.stop().await;
}

#[tokio::test]
async fn a_binary_message_of_max_message_size_fits_in_one_post() {
    let (gw, _backend) = setup("max_message_size = \"48KiB\"\nfallback_buffer = \"16KiB\"").await;
    let reply = fb::open(gw.addr(), "/chat", Some(ORIGIN), &[]).await;
    // 48 KiB base64-encoded is 64 KiB, plus room for the JSON around it.
    assert_eq!(reply.json()["max_post"], 64 * 1024 + 256);
    let s = Session::open(gw.addr(), "/chat", Some(ORIGIN)).await;
    let data: Vec<u8> = (0..48 * 1024).map(|i| (i % 251) as u8).collect();
    let largest = json!({ "binary": base64_of(&data) });
    let sent = s.send(1, std::slice::from_ref(&largest)).await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    let events = s.collect(0, 1).await;
    assert_eq!(events[0]["binary"], largest["binary"]);
    let above = json!({ "binary": base64_of(&[0; 48 * 1024 + 1]) });
    let refused = s.send(2, &[above]).await;
    assert_eq!(refused.status, 413, "{}", refused.body);
    gw.stop().await;
}
