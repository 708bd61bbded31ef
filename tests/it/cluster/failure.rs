//! When instances fail: a dead or unreachable owner ends its sessions with
//! the close event 1012 ("reconnect") and the client opens a new session
//! at once; a restarted owner does the same for its earlier sessions; a
//! draining owner refuses new sessions with 503 and serves its own until
//! their clients have the 1012.

use super::{close_of, nodes, Setup};
use crate::support::fallback::{start, text, texts, Session, Sse};
use crate::support::ops::admin_get;
use crate::support::ops::eventually;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_owner_ends_its_sessions_with_1012_and_a_new_session_works() {
    let [mut a, b, c]: [_; 3] = nodes(3, &Setup::default()).await.try_into().ok().unwrap();
    let owned = Session::open(a.addr, "/echo", None).await;
    assert_eq!(b.via(&owned).send(1, &[text("hi")]).await.status, 200);
    assert_eq!(texts(&c.via(&owned).collect(0, 1).await), ["hi"]);
    a.kill();

    // A poll gets the close right after what it acknowledged, at once.
    let events = b.via(&owned).poll(1).await.events();
    assert_eq!(events[0]["seq"], 2);
    let want = (1012, "session owner unreachable; reconnect".to_string());
    assert_eq!(close_of(&events), Some(want.clone()));
    // So does an event stream, from its Last-Event-ID.
    let sse = start(
        c.addr,
        "GET",
        &owned.path("sse"),
        &[("last-event-id", "1")],
        "",
    )
    .await;
    assert_eq!(sse.status(), 200);
    let streamed = Sse::new(sse.into_body()).events(1).await;
    assert_eq!(streamed[0].0, 2);
    assert_eq!(close_of(&[streamed[0].1.clone()]), Some(want));
    // A send cannot carry the event: a 502 that says why.
    let sent = b.via(&owned).send(2, &[text("lost")]).await;
    assert_eq!(sent.status, 502, "{}", sent.body);
    assert!(sent.body.contains("cannot be reached"), "{}", sent.body);

    let owner = a.advertise();
    assert!(
        b.metric(
            "wsgate_cluster_peer_connect_errors_total",
            &[("peer", &owner)]
        )
        .await
            >= 1.0
    );
    let unreachable = [("peer", owner.as_str()), ("result", "unreachable")];
    assert!(
        b.metric("wsgate_cluster_forwarded_requests_total", &unreachable)
            .await
            >= 2.0
    );
    let renewed = Session::open(b.addr, "/echo", None).await;
    assert_eq!(c.via(&renewed).send(1, &[text("again")]).await.status, 200);
    assert_eq!(texts(&c.via(&renewed).collect(0, 1).await), ["again"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_owner_closes_its_earlier_sessions_with_1012() {
    let [mut a, b]: [_; 2] = nodes(2, &Setup::default()).await.try_into().ok().unwrap();
    let owned = Session::open(a.addr, "/echo", None).await;
    a.kill();
    a.spawn().await;
    let events = b.via(&owned).poll(0).await.events();
    let want = (1012, "session owner restarted; reconnect".to_string());
    assert_eq!(close_of(&events), Some(want));
    assert_eq!(a.via(&owned).send(1, &[text("x")]).await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_owner_refuses_opens_and_serves_its_sessions_until_their_1012() {
    let [mut a, b, c]: [_; 3] = nodes(3, &Setup::default()).await.try_into().ok().unwrap();
    let owned = Session::open(a.addr, "/echo", None).await;
    a.terminate();
    let admin = a.admin;
    eventually("the owner to drain", || async {
        admin_get(admin, "/readyz").await.status == 503
    })
    .await;
    let refused = crate::support::fallback::open(a.addr, "/echo", None, &[]).await;
    assert_eq!(refused.status, 503, "{}", refused.body);
    // Its session, reached through another instance, gets the 1012.
    let events = b.via(&owned).poll(0).await.events();
    let (code, _) = close_of(&events).expect("a close event");
    assert_eq!(code, 1012);
    let last = events.last().unwrap()["seq"].as_u64().unwrap();
    let ack = serde_json::json!({ "ack": last }).to_string();
    assert_eq!(c.via(&owned).post("send", &ack).await.status, 200);
    assert!(a.exited().await.success(), "a clean exit");
    let drained = a.events("fallback session ended");
    assert_eq!(drained.len(), 1, "{drained:?}");
    assert_eq!(drained[0]["end"], "shutdown");
}
