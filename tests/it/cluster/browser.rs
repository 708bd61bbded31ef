//! Three instances behind a real HAProxy that spreads every request
//! round-robin (`mode http`, `option http-server-close`, no stickiness),
//! and headless Chromium (tests/clients/browser_cluster.mjs): long-poll and
//! then SSE get every message in order although each request lands on
//! another instance; a non-owner killed mid-session loses nothing; the
//! owner killed closes the socket cleanly with 1012 and a new one works.

use std::net::SocketAddr;
use std::process::Stdio;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use wsgate::cluster::ids::{IdCodec, Located};
use wsgate::cluster::key::ClusterKey;
use wsgate::config::cluster::Secret;

use super::{nodes, Node, Setup, SECRET};
use crate::support::ops::{eventually, free_port};

/// How HAProxy is run: every request balanced on its own, and a request
/// that found its server dead (refused, or closed without an answer) tried
/// once more on another, as docs/cluster.md recommends.
fn haproxy_config(front: SocketAddr, nodes: &[Node]) -> String {
    let mut config = format!(
        "global\n    maxconn 2000\n\
         defaults\n    mode http\n    timeout connect 2s\n    timeout client 60s\n    timeout server 60s\n\
         \x20   option http-server-close\n    retries 3\n    option redispatch 1\n\
         \x20   retry-on conn-failure empty-response response-timeout 503\n\
         frontend front\n    bind {front}\n    default_backend wsgate\n\
         backend wsgate\n    balance roundrobin\n"
    );
    for (i, node) in nodes.iter().enumerate() {
        config.push_str(&format!(
            "    server n{i} {} check inter 500ms fall 1 rise 1\n",
            node.addr
        ));
    }
    config
}

/// HAProxy on `front` (killed on drop), and its config's directory.
struct Haproxy {
    _process: tokio::process::Child,
    _dir: tempfile::TempDir,
}

impl Haproxy {
    async fn start(front: SocketAddr, nodes: &[Node]) -> Haproxy {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, haproxy_config(front, nodes)).unwrap();
        let child = tokio::process::Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run haproxy: {e}; install it with scripts/test.sh"));
        eventually("haproxy to listen", || async {
            tokio::net::TcpStream::connect(front).await.is_ok()
        })
        .await;
        Haproxy {
            _process: child,
            _dir: dir,
        }
    }
}

/// The node that owns the session `id` names.
fn owner_of(id: &str, nodes: &[Node]) -> usize {
    let reader = IdCodec::new(
        ClusterKey::new(&Secret::new(SECRET.as_bytes())),
        "reader:1",
        [0; 8],
    );
    let Located::Owner { owner, .. } = reader.locate(id) else {
        panic!("not a cluster id: {id}");
    };
    nodes
        .iter()
        .position(|n| n.advertise() == owner)
        .expect("owned by one of ours")
}

/// Sums a metric over all its label sets, on each node.
async fn per_node(nodes: &[Node], name: &str) -> Vec<f64> {
    let mut values = Vec::new();
    for node in nodes {
        values.push(node.metric(name, &[]).await);
    }
    values
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_through_round_robin_haproxy_gets_everything_and_survives_failures() {
    let mut nodes = nodes(3, &Setup::default()).await;
    let front = SocketAddr::from(([127, 0, 0, 1], free_port().await));
    let _haproxy = Haproxy::start(front, &nodes).await;
    let mut node = tokio::process::Command::new("node")
        .arg("browser_cluster.mjs")
        .arg(format!("http://{front}"))
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run node: {e}; install with scripts/test.sh"));
    let mut to_script = node.stdin.take().unwrap();
    let mut from_script = BufReader::new(node.stdout.take().unwrap()).lines();
    let mut results: Vec<Value> = Vec::new();
    let mut owner = None;
    let mut evidence = None;
    let deadline = std::time::Duration::from_secs(240);
    while let Some(line) = tokio::time::timeout(deadline, from_script.next_line())
        .await
        .unwrap()
        .unwrap()
    {
        println!("{line}");
        if let Some(result) = line.strip_prefix("result ") {
            results.push(serde_json::from_str(result).unwrap());
        } else if let Some(id) = line.strip_prefix("owner? ") {
            if evidence.is_none() {
                let served = per_node(&nodes, "wsgate_http_requests_total").await;
                let forwarded = per_node(&nodes, "wsgate_cluster_forwarded_requests_total").await;
                evidence = Some((served, forwarded));
            }
            for dead in nodes.iter_mut().filter(|n| !n.running()) {
                dead.spawn().await;
            }
            let owning = owner_of(id, &nodes);
            nodes[(owning + 1) % 3].kill();
            owner = Some(owning);
            to_script.write_all(b"nonowner-killed\n").await.unwrap();
        } else if line == "kill owner" {
            nodes[owner.take().unwrap()].kill();
            to_script.write_all(b"owner-killed\n").await.unwrap();
        } else if line == "done" {
            break;
        }
    }
    let status = node.wait().await.unwrap();
    assert!(status.success(), "the browser script failed: {results:?}");
    check(&results, evidence.expect("round trips ran first"));
}

/// Every check the script reported passed, and the round trips' requests
/// landed on every instance (`served`), non-owners forwarding theirs.
fn check(results: &[Value], (served, forwarded): (Vec<f64>, Vec<f64>)) {
    assert_eq!(results.len(), 6, "{results:#?}");
    for result in results {
        let transport = result["transport"].as_str().unwrap();
        match result["check"].as_str().unwrap() {
            "round trips" => {
                assert_eq!(result["mismatch"], -1, "{result}");
                assert_eq!(result["count"], 121, "{result}");
                assert_eq!(
                    (&result["code"], &result["clean"]),
                    (&Value::from(4000), &Value::from(true)),
                    "{result}"
                );
            }
            "non-owner killed" => {
                assert_eq!(
                    result["inOrder"], true,
                    "nothing lost ({transport}): {result}"
                );
                assert_eq!(result["closed"], Value::Null, "{result}");
            }
            "owner killed" => {
                let close = &result["close"];
                assert_eq!(close["code"], 1012, "{result}");
                assert_eq!(close["clean"], true, "{result}");
                assert_eq!(
                    result["renewedCount"], 5,
                    "a new session works ({transport}): {result}"
                );
            }
            other => panic!("unknown check {other}"),
        }
    }
    let transports: Vec<&str> = results
        .iter()
        .map(|r| r["transport"].as_str().unwrap())
        .collect();
    assert_eq!(
        transports,
        ["longpoll", "sse", "longpoll", "longpoll", "sse", "sse"]
    );
    assert!(
        served.iter().all(|&n| n >= 5.0),
        "every instance served: {served:?}"
    );
    let forwarding = forwarded.iter().filter(|&&n| n >= 1.0).count();
    assert!(forwarding >= 2, "non-owners forwarded: {forwarded:?}");
}
