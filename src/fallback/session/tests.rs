//! Sequencing rules of one session, without sockets.

use std::net::{IpAddr, Ipv4Addr};

use super::*;
use crate::fallback::Transport;

fn session(buffer: u64) -> (Arc<Session>, mpsc::Receiver<Payload>) {
    Session::new(SessionInit {
        id: SessionId::random(),
        origin: Some(HeaderValue::from_static("https://a.example")),
        client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        route_index: 0,
        settings: FallbackSettings {
            buffer,
            ..FallbackSettings::default()
        },
        max_message: 16,
        stats: SessionMeter::new(Arc::default(), None, "test", Transport::LongPoll),
    })
}

fn text(t: &str) -> Payload {
    Payload::Text(t.into())
}

#[test]
fn events_stay_until_acknowledged() {
    let (s, _rx) = session(1 << 20);
    s.push(text("a"));
    s.push(text("b"));
    assert_eq!(s.events_after(0, 1 << 20).len(), 2);
    assert_eq!(
        s.events_after(0, 1 << 20).len(),
        2,
        "a re-poll gets them again"
    );
    s.ack(1).unwrap();
    assert_eq!(s.events_after(1, 1 << 20), vec![(2, text("b"))]);
    assert!(s.ack(5).is_err(), "ack beyond the last event");
    s.ack(0).unwrap(); // a stale ack changes nothing
    assert_eq!(s.events_after(0, 1 << 20), vec![(2, text("b"))]);
}

#[test]
fn the_buffer_bounds_what_is_held_and_the_close_finishes() {
    let (s, _rx) = session(4);
    s.push(text("abc"));
    assert!(s.has_space());
    s.push(text("de"));
    assert!(!s.has_space());
    s.ack(2).unwrap();
    assert!(s.has_space());
    s.push(Payload::Close {
        code: 1000,
        reason: String::new(),
    });
    s.push(text("ignored after close"));
    assert!(!s.is_finished());
    s.ack(3).unwrap();
    assert!(s.is_finished());
}

#[test]
fn a_new_consumer_supersedes_the_old() {
    let (s, _rx) = session(1024);
    let old = s.claim_consumer();
    let new = s.claim_consumer();
    assert!(!s.is_current(old));
    assert!(s.is_current(new));
}

#[tokio::test]
async fn retried_batches_apply_once_and_gaps_are_refused() {
    let (s, mut rx) = session(1024);
    let batch = |first_seq, texts: &[&str]| Batch {
        ack: None,
        first_seq,
        messages: texts.iter().map(|t| text(t)).collect(),
    };
    assert_eq!(s.send_batch(batch(1, &["1", "2"])).await.unwrap(), 2);
    assert_eq!(s.send_batch(batch(1, &["1", "2", "3"])).await.unwrap(), 3);
    assert!(s.send_batch(batch(5, &["5"])).await.is_err());
    let too_big = batch(4, &["far more than sixteen bytes"]);
    assert!(matches!(
        s.send_batch(too_big).await,
        Err(ProxyError::BodyTooLarge { limit: 16 })
    ));
    let mut got = Vec::new();
    while let Ok(p) = rx.try_recv() {
        got.push(p);
    }
    assert_eq!(got, vec![text("1"), text("2"), text("3")]);
}

#[test]
fn origin_binding() {
    let (s, _rx) = session(1024);
    let mut headers = HeaderMap::new();
    assert!(
        s.check_origin(&headers).is_ok(),
        "same-origin GET has no Origin"
    );
    headers.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
    assert!(s.check_origin(&headers).is_err());
    headers.clear();
    headers.insert(
        header::ORIGIN,
        HeaderValue::from_static("https://b.example"),
    );
    assert!(s.check_origin(&headers).is_err());
    headers.insert(
        header::ORIGIN,
        HeaderValue::from_static("https://a.example"),
    );
    assert!(s.check_origin(&headers).is_ok());
}

#[tokio::test(start_paused = true)]
async fn an_attached_stream_holds_the_session_only_while_it_keeps_up() {
    let (s, _rx) = session(1 << 20);
    let timeout = s.settings.session_timeout;
    let stream = s.attach();
    assert_eq!(s.idle_deadline(), None, "an idle stream keeps the session");
    let pushed = Instant::now();
    s.push(text("a"));
    s.push(text("b"));
    assert_eq!(s.idle_deadline(), Some(pushed + timeout), "events wait");
    tokio::time::advance(timeout / 2).await;
    s.ack(1).unwrap();
    let progress = Instant::now();
    assert_eq!(
        s.idle_deadline(),
        Some(progress + timeout),
        "an ack is progress"
    );
    s.ack(2).unwrap();
    assert_eq!(s.idle_deadline(), None, "nothing waits any more");
    drop(stream);
    assert_eq!(s.idle_deadline(), Some(Instant::now() + timeout));
}
