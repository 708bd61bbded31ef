//! Bad input, each refused, logged and counted: forged, altered or
//! truncated session ids (404, no connection made to anyone); requests on
//! the peer listener without a valid MAC or with a stale timestamp, or on
//! a session another instance owns (421); a flooded peer listener; instances that disagree on the secret; and a
//! `[cluster]` table that `wsgate check` rejects.

use std::net::SocketAddr;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};
use wsgate::cluster::auth::{self, Signing};
use wsgate::cluster::ids::IdCodec;
use wsgate::cluster::key::ClusterKey;
use wsgate::config::cluster::Secret;
use wsgate::fallback::protocol::SessionId;

use super::{nodes, Setup, SECRET};
use crate::support::client::WAIT;
use crate::support::fallback::{request, text, Session};
use crate::support::ops::metric_reaches;

fn key(secret: &str) -> ClusterKey {
    ClusterKey::new(&Secret::new(secret.as_bytes()))
}

/// An id for a session "owned" by `owner`, signed under `secret`.
fn minted(secret: &str, owner: &str) -> String {
    IdCodec::new(key(secret), owner, [7; 8]).spell_id(&SessionId::random())
}

/// Whether a connection to `listener` is waiting to be accepted.
async fn connected_to(listener: &TcpListener) -> bool {
    tokio::time::timeout(Duration::from_millis(1), listener.accept())
        .await
        .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_altered_and_truncated_ids_are_404_with_no_connection_made() {
    let [b]: [_; 1] = nodes(1, &Setup::default()).await.try_into().ok().unwrap();
    let bait = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let owner = bait.local_addr().unwrap().to_string();
    let genuine = minted(SECRET, &owner);
    let mut bytes = BASE64URL.decode(&genuine).unwrap();
    bytes[5] ^= 1;
    let altered = BASE64URL.encode(&bytes);
    let foreign = minted(&"9".repeat(64), &owner);
    let cases = [
        (altered, "id_bad_mac"),
        (genuine[..genuine.len() - 4].to_string(), "id_malformed"),
        (foreign, "id_foreign_key"),
        (SessionId::random().to_string(), "id_malformed"),
    ];
    for (id, reason) in &cases {
        let path = format!("/_wsgate/s/{id}/poll?ack=0");
        let reply = request(b.addr, "GET", &path, &[], "").await;
        assert_eq!(reply.status, 404, "{reason}: {}", reply.body);
        assert!(
            !connected_to(&bait).await,
            "{reason}: a connection was made"
        );
        let refused = b
            .metric("wsgate_cluster_refusals_total", &[("reason", reason)])
            .await;
        assert!(refused >= 1.0, "{reason}");
    }
    let named = b.events("session id signed under another cluster secret: the instance it names disagrees on the secret (or the id is forged)");
    assert_eq!(named.len(), 1, "{named:?}");
    assert_eq!(named[0]["peer"], owner.as_str());
    // The genuine id does make B connect to the owner it names: the bait
    // would have seen any of the connections above.
    let path = format!("/_wsgate/s/{genuine}/send");
    let addr = b.addr;
    let forwarding = tokio::spawn(async move { request(addr, "POST", &path, &[], "{}").await });
    let (stream, _) = tokio::time::timeout(WAIT, bait.accept())
        .await
        .unwrap()
        .unwrap();
    drop(stream);
    drop(bait);
    assert_eq!(forwarding.await.unwrap().status, 502, "the owner broke off");
}

/// One request on a new HTTP/2 connection to a peer listener: its status
/// and body, and whether the server then closed the connection.
async fn peer_request(peer: SocketAddr, req: hyper::Request<Full<Bytes>>) -> (u16, String, bool) {
    let stream = TcpStream::connect(peer).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    let response = tokio::time::timeout(WAIT, sender.send_request(req))
        .await
        .unwrap()
        .unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    drop(sender);
    let closed = tokio::time::timeout(WAIT, conn).await.is_ok();
    (status, String::from_utf8_lossy(&body).into_owned(), closed)
}

/// A request for `path` signed with `secret` at `time`, from `from`.
fn signed(
    secret: &str,
    from: &str,
    time: u64,
    method: &str,
    path: &str,
    body: &str,
) -> hyper::Request<Full<Bytes>> {
    let hash = auth::body_hash(body.as_bytes());
    let method: http::Method = method.parse().unwrap();
    let signing = Signing {
        method: &method,
        target: path,
        from,
        time,
        client: "198.51.100.7:4000".parse().unwrap(),
        body: &hash,
    };
    let headers = auth::sign(&key(secret), &signing, &http::HeaderMap::new());
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(format!("http://peer{path}"))
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    *req.headers_mut() = headers;
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_requests_without_a_valid_mac_or_with_a_stale_timestamp_are_refused() {
    let [a]: [_; 1] = nodes(1, &Setup::default()).await.try_into().ok().unwrap();
    let session = Session::open(a.addr, "/echo", None).await;
    assert_eq!(session.send(1, &[text("x")]).await.status, 200);
    let poll = format!("{}?ack=0", session.path("poll"));
    let now = auth::unix_ms();
    let unsigned = hyper::Request::get(format!("http://peer{poll}"))
        .body(Full::default())
        .unwrap();
    let mut bad_mac = signed(SECRET, "10.9.9.9:1", now, "GET", &poll, "");
    bad_mac
        .headers_mut()
        .insert(auth::PEER_MAC, "00".repeat(32).parse().unwrap());
    let mut swapped_body = signed(
        SECRET,
        "10.9.9.9:1",
        now,
        "POST",
        &session.path("send"),
        "{}",
    );
    *swapped_body.body_mut() = Full::new(Bytes::from_static(br#"{"ack":1}"#));
    let cases = [
        (unsigned, "peer_malformed"),
        (
            signed(&"9".repeat(64), "10.9.9.8:1", now, "GET", &poll, ""),
            "peer_foreign_key",
        ),
        (
            signed(SECRET, "10.9.9.9:1", now - 60_000, "GET", &poll, ""),
            "peer_stale",
        ),
        (
            signed(SECRET, "10.9.9.9:1", now + 60_000, "GET", &poll, ""),
            "peer_stale",
        ),
        (bad_mac, "peer_bad_mac"),
        (swapped_body, "peer_body_mismatch"),
    ];
    for (req, reason) in cases {
        let (status, body, closed) = peer_request(a.peer, req).await;
        assert_eq!(status, 401, "{reason}: {body}");
        assert!(body.contains(reason), "{reason}: {body}");
        assert!(closed, "{reason}: the connection stays open");
    }
    for reason in [
        "peer_malformed",
        "peer_foreign_key",
        "peer_bad_mac",
        "peer_body_mismatch",
    ] {
        let refused = a
            .metric("wsgate_cluster_refusals_total", &[("reason", reason)])
            .await;
        assert_eq!(refused, 1.0, "{reason}");
    }
    assert_eq!(
        a.metric("wsgate_cluster_refusals_total", &[("reason", "peer_stale")])
            .await,
        2.0
    );
    let disagrees = a.events(
        "peer request signed under another cluster secret: this peer disagrees on the secret",
    );
    assert_eq!(disagrees.len(), 1, "{disagrees:?}");
    assert_eq!(disagrees[0]["peer"], "10.9.9.8:1");
    // The same request, signed properly and in time, is served.
    let (status, body, _) = peer_request(
        a.peer,
        signed(SECRET, "10.9.9.9:1", auth::unix_ms(), "GET", &poll, ""),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"text\":\"x\""), "{body}");
    let served = a
        .metric(
            "wsgate_cluster_peer_requests_total",
            &[("peer", "10.9.9.9:1"), ("result", "2xx")],
        )
        .await;
    assert_eq!(served, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_request_on_a_session_owned_elsewhere_is_421_logged_and_counted() {
    let [a]: [_; 1] = nodes(1, &Setup::default()).await.try_into().ok().unwrap();
    // A genuine id naming another instance, forwarded to A by an authentic
    // peer: what A gets when the peer reached it at an address another
    // instance advertises (two instances advertising the same address).
    let bait = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let elsewhere = bait.local_addr().unwrap().to_string();
    let id = minted(SECRET, &elsewhere);
    let path = format!("/_wsgate/s/{id}/poll");
    let from = "10.9.9.9:1";
    let req = signed(
        SECRET,
        from,
        auth::unix_ms(),
        "GET",
        &format!("{path}?ack=0"),
        "",
    );
    let (status, body, _) = peer_request(a.peer, req).await;
    assert_eq!(status, 421, "{body}");
    assert!(body.contains("does not own the fallback session"), "{body}");
    // Forwarding takes one hop, never two: A did not pass it on.
    assert!(!connected_to(&bait).await, "A forwarded it to the owner");
    let refused = a
        .metric("wsgate_cluster_refusals_total", &[("reason", "not_owner")])
        .await;
    assert_eq!(refused, 1.0);
    let answered = a
        .metric(
            "wsgate_cluster_peer_requests_total",
            &[("peer", from), ("result", "4xx")],
        )
        .await;
    assert_eq!(answered, 1.0);
    let warned = a.events("a peer forwarded a request on a session this instance does not own: do two instances advertise the same address?");
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert_eq!(warned[0]["peer"], from);
    assert_eq!(warned[0]["path"], path.as_str());
    let served = a.events("forwarded fallback request served");
    assert_eq!(served.len(), 1, "{served:?}");
    assert_eq!(served[0]["status"], 421);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooded_peer_listener_refuses_what_is_over_its_bound_and_keeps_forwarding() {
    let [a, b]: [_; 2] = nodes(2, &Setup::default()).await.try_into().ok().unwrap();
    let owned = Session::open(a.addr, "/echo", None).await;
    assert_eq!(b.via(&owned).send(1, &[text("before")]).await.status, 200);
    let flood = 300;
    let max = wsgate::server::peer::MAX_PEER_CONNECTIONS;
    let mut held = Vec::new();
    for _ in 0..flood {
        held.push(TcpStream::connect(a.peer).await.unwrap());
    }
    // B's pooled connection holds one slot; the flood gets the rest.
    let over = (flood - (max - 1)) as f64;
    let refusals = ("reason", "peer_connection_limit");
    metric_reaches(a.admin, "wsgate_cluster_refusals_total", &[refusals], over).await;
    let during = b.via(&owned).send(2, &[text("during")]).await;
    assert_eq!(during.status, 200, "forwarding goes on: {}", during.body);
    // The flood's connections never authenticate and are cut.
    let timeouts = ("reason", "peer_auth_timeout");
    let cut = (max - 1) as f64;
    let wait = wsgate::server::peer::PEER_AUTH_TIMEOUT + WAIT;
    tokio::time::timeout(
        wait,
        metric_reaches(a.admin, "wsgate_cluster_refusals_total", &[timeouts], cut),
    )
    .await
    .expect("idle peer connections cut");
    let events = b.via(&owned).collect(0, 2).await;
    assert_eq!(
        crate::support::fallback::texts(&events),
        ["before", "during"]
    );
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_that_disagree_on_the_secret_name_each_other() {
    let [a]: [_; 1] = nodes(1, &Setup::default()).await.try_into().ok().unwrap();
    let other = Setup {
        secret: "f".repeat(64),
        ..Setup::default()
    };
    let [c]: [_; 1] = nodes(1, &other).await.try_into().ok().unwrap();
    let message = "session id signed under another cluster secret: the instance it names disagrees on the secret (or the id is forged)";
    for (owner, via) in [(&a, &c), (&c, &a)] {
        let owned = Session::open(owner.addr, "/echo", None).await;
        assert_eq!(via.via(&owned).poll(0).await.status, 404);
        let named = via.events(message);
        assert!(
            named
                .iter()
                .any(|e| e["peer"] == owner.advertise().as_str()),
            "{named:?}"
        );
        let refused = via
            .metric(
                "wsgate_cluster_refusals_total",
                &[("reason", "id_foreign_key")],
            )
            .await;
        assert_eq!(refused, 1.0);
    }
}

/// `wsgate check` on `config` (written next to a 10-byte secret file).
fn check(config: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("short"), "0123456789\n").unwrap();
    let path = dir.path().join("wsgate.toml");
    std::fs::write(&path, config).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wsgate"))
        .args(["check", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    let ok = out.status.success();
    assert!(ok || out.status.code() == Some(64));
    (ok, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn check_validates_the_cluster_table() {
    let base = "[[listeners]]\nbind = \"127.0.0.1:8080\"\n[admin]\nbind = \"127.0.0.1:9090\"\n\
                [[routes]]\nbackends = [\"builtin:echo\"]\nfallback = true\n";
    let good = format!("{base}[cluster]\nsecret = \"{SECRET}\"\nbind = \"0.0.0.0:9443\"\nadvertise = \"10.0.0.5:9443\"\n");
    assert_eq!(check(&good), (true, String::new()));
    let cases = [
        ("secret_file = \"short\"\nbind = \"127.0.0.1:9443\"", "cluster.secret_file: the secret is 10 bytes; at least 32"),
        ("secret_file = \"missing\"\nbind = \"127.0.0.1:9443\"", "cluster.secret_file: cannot read"),
        ("secret = \"tooshort\"\nbind = \"127.0.0.1:9443\"", "cluster.secret: the secret is 8 bytes"),
        ("bind = \"127.0.0.1:9443\"", "cluster.secret_file: required"),
        ("secret = \"x\"\nsecret_file = \"short\"\nbind = \"127.0.0.1:9443\"", "cluster: set one of secret and secret_file"),
        ("secret_file = \"short\"\nbind = \"0.0.0.0:9443\"", "cluster.advertise: required when cluster.bind is 0.0.0.0:9443"),
        ("secret_file = \"short\"\nbind = \"127.0.0.1:8080\"", "cluster.bind: 127.0.0.1:8080 is also a public listener"),
        ("secret_file = \"short\"\nbind = \"127.0.0.1:9090\"", "cluster.bind: 127.0.0.1:9090 is also the admin listener"),
        ("secret_file = \"short\"\nbind = \"nowhere\"", "cluster.bind: invalid socket address"),
        ("secret_file = \"short\"\nbind = \"127.0.0.1:1\"\nadvertise = \"10.0.0.5\"", "cluster.advertise: \"10.0.0.5\": no port"),
        ("secret_file = \"short\"\nbind = \"127.0.0.1:1\"\nadvertise = \"${WSGATE_TEST_UNSET_VAR}:1\"", "environment variable WSGATE_TEST_UNSET_VAR is not set"),
        ("secret_file = \"short\"\nbind = \"127.0.0.1:1\"\nport = 1", "unknown field `port`"),
    ];
    for (table, want) in cases {
        let (ok, stderr) = check(&format!("{base}[cluster]\n{table}\n"));
        assert!(
            !ok && stderr.contains(want),
            "{table}\nwant {want}\ngot {stderr}"
        );
    }
    // Every problem at once.
    let (_, stderr) = check(&format!(
        "{base}[cluster]\nsecret_file = \"short\"\nbind = \"0.0.0.0:8080\"\n"
    ));
    assert!(
        stderr.contains("the secret is 10 bytes") && stderr.contains("cluster.advertise: required"),
        "{stderr}"
    );
}
