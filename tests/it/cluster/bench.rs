//! What forwarding adds to a long-poll round trip: one 100-byte message
//! sent and its echo received through a held poll, 300 times, with both
//! requests on the owner (direct) or both on another instance (each
//! forwarded to the owner). Two real instances on loopback. Ignored by
//! default; run with
//! `cargo test --release --test it cluster::bench -- --ignored --nocapture`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::{nodes, Setup};
use crate::support::fallback::Session;

const ROUND_TRIPS: usize = 300;
const SIZE: usize = 100;

/// A keep-alive HTTP/1.1 connection, as a browser holds.
struct Conn(SendRequest<Full<Bytes>>);

impl Conn {
    async fn new(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        Conn(sender)
    }

    async fn json(&mut self, method: &str, path: &str, body: String) -> Value {
        self.0.ready().await.unwrap();
        let req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "chat.example.com")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let response = self.0.send_request(req).await.unwrap();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }
}

/// Round trips of `session` with every request sent to `via`.
async fn round_trips(session: &Session, via: SocketAddr) -> Vec<Duration> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let poll = session.path("poll");
    let poller = tokio::spawn(async move {
        let mut down = Conn::new(via).await;
        let mut ack = 0;
        loop {
            let answer = down
                .json("GET", &format!("{poll}?ack={ack}"), String::new())
                .await;
            for event in answer["events"].as_array().unwrap() {
                ack = event["seq"].as_u64().unwrap();
                if tx.send(()).is_err() {
                    return;
                }
            }
        }
    });
    let mut up = Conn::new(via).await;
    let payload = "x".repeat(SIZE);
    let mut latencies = Vec::new();
    for seq in 1..=ROUND_TRIPS as u64 {
        let start = Instant::now();
        let body = json!({ "seq": seq, "messages": [{ "text": payload }] });
        up.json("POST", &session.path("send"), body.to_string())
            .await;
        rx.recv().await.unwrap();
        latencies.push(start.elapsed());
    }
    poller.abort();
    latencies.sort();
    latencies
}

fn report(name: &str, latencies: &[Duration]) -> (f64, f64) {
    let micros = |d: Duration| d.as_secs_f64() * 1e6;
    let median = micros(latencies[latencies.len() / 2]);
    let p99 = micros(latencies[latencies.len() * 99 / 100]);
    println!("{name:>9}: long-poll round trip median {median:>7.0} µs, p99 {p99:>7.0} µs");
    (median, p99)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "measurement, not a check; run with --ignored --nocapture"]
async fn forwarded_long_poll_against_direct() {
    let [a, b]: [_; 2] = nodes(2, &Setup::default()).await.try_into().ok().unwrap();
    let direct = Session::open(a.addr, "/echo", None).await;
    let forwarded = Session::open(a.addr, "/echo", None).await;
    let (dm, dp) = report("direct", &round_trips(&direct, a.addr).await);
    let (fm, fp) = report("forwarded", &round_trips(&forwarded, b.addr).await);
    println!(
        "    added: median {:+.0} µs ({:.2}×), p99 {:+.0} µs ({:.2}×)",
        fm - dm,
        fm / dm,
        fp - dp,
        fp / dp
    );
}
