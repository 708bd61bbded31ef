//! Any instance serves any session: requests reaching a non-owner are
//! forwarded to the owner, streamed back, and the sequence and ack
//! protocol holds across instances; the owner knows the real client.

use serde_json::json;

use std::net::{IpAddr, SocketAddr};

use super::{nodes, Setup};
use crate::support::fallback::{request, text, texts, Session, Sse};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_instance_serves_a_session_and_nothing_is_lost_or_doubled() {
    let [a, b, c]: [_; 3] = nodes(3, &Setup::default()).await.try_into().ok().unwrap();
    let owned = Session::open(a.addr, "/echo", None).await;
    assert!(
        owned.id.len() > 32,
        "a cluster id names its owner: {}",
        owned.id
    );

    // A send through B, applied once; the same batch retried through C
    // (its answer lost, say) is not applied again.
    let batch = [text("one"), text("two")];
    let first = b.via(&owned).send(1, &batch).await;
    assert_eq!(
        (first.status, first.json()["acked"].clone()),
        (200, json!(2))
    );
    let retried = c.via(&owned).send(1, &batch).await;
    assert_eq!(
        (retried.status, retried.json()["acked"].clone()),
        (200, json!(2))
    );

    // A poll through C gets the echoes; its answer "lost", the same poll
    // through B gets them again; A has both, then the next message, once.
    let seen = c.via(&owned).poll(0).await.events();
    assert!(!seen.is_empty());
    let again = b.via(&owned).poll(0).await.events();
    assert_eq!(again[..seen.len()], seen[..], "redelivered as they were");
    assert_eq!(texts(&a.via(&owned).collect(0, 2).await), ["one", "two"]);
    assert_eq!(b.via(&owned).send(3, &[text("three")]).await.status, 200);
    let rest = a.via(&owned).collect(2, 1).await;
    assert_eq!(texts(&rest), ["three"]);

    // Counted on both sides, by peer; the non-owners' logs name the owner.
    let owner = a.advertise();
    for node in [&b, &c] {
        let forwarded = node
            .metric(
                "wsgate_cluster_forwarded_requests_total",
                &[("peer", &owner), ("result", "2xx")],
            )
            .await;
        assert!(forwarded >= 2.0, "{forwarded}");
        let logged = node.events("fallback request forwarded to its owner");
        assert!(
            logged.iter().all(|e| e["owner"] == owner.as_str()),
            "{logged:?}"
        );
        assert!(logged.len() >= 2, "{logged:?}");
        let served = a
            .metric(
                "wsgate_cluster_peer_requests_total",
                &[("peer", &node.advertise()), ("result", "2xx")],
            )
            .await;
        assert!(served >= 2.0, "{served}");
    }
    let served = a.events("forwarded fallback request served");
    assert!(
        served.iter().any(|e| e["peer"] == b.advertise().as_str()),
        "{served:?}"
    );
    // Pooled: every forward of B and of C rode one connection each.
    assert_eq!(connections_to(a.peer), 2);
}

/// Established TCP connections to `addr`, per `ss`.
fn connections_to(addr: std::net::SocketAddr) -> usize {
    let out = std::process::Command::new("ss")
        .args(["-tnH", "state", "established", "dst", &addr.to_string()])
        .output()
        .expect("ss (iproute2) runs");
    String::from_utf8_lossy(&out.stdout).lines().count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stream_through_a_non_owner_is_streamed_live() {
    let [a, b, c]: [_; 3] = nodes(3, &Setup::default()).await.try_into().ok().unwrap();
    let owned = Session::open(a.addr, "/echo", None).await;
    let stream = crate::support::fallback::start(b.addr, "GET", &owned.path("sse"), &[], "").await;
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let mut sse = Sse::new(stream.into_body());
    // Each message goes up through C after the stream is open, and comes
    // down the open stream through B: streamed, not buffered.
    for (seq, word) in ["alpha", "beta", "gamma"].iter().enumerate() {
        let sent = c.via(&owned).send(seq as u64 + 1, &[text(word)]).await;
        assert_eq!(sent.status, 200, "{}", sent.body);
        let events = sse.events(1).await;
        assert_eq!(events[0].0, seq as u64 + 1);
        assert_eq!(events[0].1["text"], *word);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_keeps_its_origin_binding_across_instances() {
    let [a, b]: [_; 2] = nodes(2, &Setup::default()).await.try_into().ok().unwrap();
    let owned = Session::open(a.addr, "/echo", Some("http://chat.example.com")).await;
    let path = format!("{}?ack=0", owned.path("poll"));
    let other = [("origin", "https://evil.example")];
    let refused = request(b.addr, "GET", &path, &other, "").await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(b.via(&owned).send(1, &[text("hi")]).await.status, 200);
    assert_eq!(texts(&b.via(&owned).collect(0, 1).await), ["hi"]);
}

/// The IP address of a logged `client` field (`IP` or `IP:PORT`).
fn logged_ip(field: &serde_json::Value) -> IpAddr {
    let logged = field.as_str().unwrap_or_else(|| panic!("{field}"));
    logged
        .parse::<SocketAddr>()
        .map(|a| a.ip())
        .or_else(|_| logged.parse())
        .unwrap_or_else(|_| panic!("not an address: {logged}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_knows_the_real_client_of_a_forwarded_request() {
    // A proxy on loopback in front of every instance names the client in
    // X-Forwarded-For; the instances trust it.
    let setup = Setup {
        listener: "trusted_proxies = [\"127.0.0.1/32\"]".into(),
        ..Setup::default()
    };
    let [a, b]: [_; 2] = nodes(2, &setup).await.try_into().ok().unwrap();
    let owned = Session::open(a.addr, "/echo", None).await;
    let client: IpAddr = "203.0.113.9".parse().unwrap();
    let body = json!({ "seq": 1, "messages": [text("hi")] }).to_string();
    let xff = [("x-forwarded-for", "203.0.113.9")];
    let sent = request(b.addr, "POST", &owned.path("send"), &xff, &body).await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    let forwarded = b.events("fallback request forwarded to its owner");
    assert_eq!(forwarded.len(), 1, "{forwarded:?}");
    assert_eq!(logged_ip(&forwarded[0]["client"]), client);
    // The owner never sees the client's X-Forwarded-For (only the signed
    // peer headers cross the hop), yet it logs the client, not B.
    let served = a.events("forwarded fallback request served");
    assert_eq!(served.len(), 1, "{served:?}");
    assert_eq!(served[0]["peer"], b.advertise().as_str());
    assert_eq!(logged_ip(&served[0]["client"]), client);
    assert_eq!(texts(&a.via(&owned).collect(0, 1).await), ["hi"]);
}
