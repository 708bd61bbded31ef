//! Message latency and throughput of each transport against an echo
//! backend, on loopback. Ignored by default; run with
//! `cargo test --release --test it fallback_bench:: -- --ignored --nocapture`.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::support::backend::{Answer, Behaviour, WsBackend};
use crate::support::fallback::{Session, Sse};
use crate::support::{one_route, TestGateway};

const ROUND_TRIPS: usize = 300;
const BULK: usize = 20_000;
const BATCH: usize = 200;
const SIZE: usize = 100;

/// A keep-alive HTTP/1.1 connection, as a browser would hold.
struct Conn(SendRequest<Full<Bytes>>);

impl Conn {
    async fn new(addr: std::net::SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        Conn(sender)
    }

    async fn call(
        &mut self,
        method: &str,
        path: &str,
        body: String,
    ) -> hyper::Response<hyper::body::Incoming> {
        self.0.ready().await.unwrap();
        let req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "chat.example.com")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        self.0.send_request(req).await.unwrap()
    }

    async fn json(&mut self, method: &str, path: &str, body: String) -> Value {
        let response = self.call(method, path, body).await;
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }
}

/// Per-transport client: a sender and a stream of received texts.
struct Pipe {
    session: Session,
    up: Conn,
    next_seq: u64,
    rx: mpsc::UnboundedReceiver<String>,
}

impl Pipe {
    async fn open(addr: std::net::SocketAddr, sse: bool) -> Pipe {
        let session = Session::open(addr, "/chat", None).await;
        let (tx, rx) = mpsc::unbounded_channel();
        let path = session.path(if sse { "sse" } else { "poll" });
        tokio::spawn(async move {
            let mut down = Conn::new(addr).await;
            if sse {
                let body = down.call("GET", &path, String::new()).await.into_body();
                let mut sse = Sse::new(body);
                loop {
                    for (_, event) in sse.events(1).await {
                        // Anything but text is the close at shutdown.
                        let Some(text) = event["text"].as_str() else {
                            return;
                        };
                        let _ = tx.send(text.to_string());
                    }
                }
            }
            let mut ack = 0;
            loop {
                let answer = down
                    .json("GET", &format!("{path}?ack={ack}"), String::new())
                    .await;
                for event in answer["events"].as_array().unwrap() {
                    ack = event["seq"].as_u64().unwrap();
                    let Some(text) = event["text"].as_str() else {
                        return;
                    };
                    let _ = tx.send(text.to_string());
                }
            }
        });
        let up = Conn::new(addr).await;
        Pipe {
            session,
            up,
            next_seq: 1,
            rx,
        }
    }

    async fn send(&mut self, texts: &[String], ack: u64) {
        let messages: Vec<Value> = texts.iter().map(|t| json!({ "text": t })).collect();
        let body = json!({ "seq": self.next_seq, "ack": ack, "messages": messages });
        self.next_seq += texts.len() as u64;
        self.up
            .json("POST", &self.session.path("send"), body.to_string())
            .await;
    }
}

fn report(name: &str, mut latencies: Vec<Duration>, bulk: Duration) {
    latencies.sort();
    let median = latencies[latencies.len() / 2];
    let p99 = latencies[latencies.len() * 99 / 100];
    let rate = BULK as f64 / bulk.as_secs_f64();
    println!(
        "{name:>9}: round trip median {:>7.0} µs, p99 {:>7.0} µs; throughput {:>8.0} msg/s ({SIZE}-byte messages, batches of {BATCH})",
        median.as_secs_f64() * 1e6,
        p99.as_secs_f64() * 1e6,
        rate
    );
}

async fn bench_websocket(gw: &TestGateway) {
    let (mut ws, _) = crate::support::client::connect(crate::support::client::ws_request(
        &gw.ws_url("/chat"),
        &[],
    ))
    .await
    .unwrap();
    let payload = "x".repeat(SIZE);
    let mut latencies = Vec::new();
    for _ in 0..ROUND_TRIPS {
        let start = Instant::now();
        ws.send(Message::Text(payload.clone())).await.unwrap();
        ws.next().await.unwrap().unwrap();
        latencies.push(start.elapsed());
    }
    let start = Instant::now();
    let (mut sink, mut stream) = ws.split();
    let writer = tokio::spawn(async move {
        for _ in 0..BULK {
            sink.feed(Message::Text("x".repeat(SIZE))).await.unwrap();
        }
        sink.flush().await.unwrap();
        sink
    });
    for _ in 0..BULK {
        stream.next().await.unwrap().unwrap();
    }
    let bulk = start.elapsed();
    let _ = writer.await.unwrap();
    report("websocket", latencies, bulk);
}

async fn bench_fallback(gw: &TestGateway, sse: bool) {
    let mut pipe = Pipe::open(gw.addr(), sse).await;
    let payload = "x".repeat(SIZE);
    let mut latencies = Vec::new();
    let mut received = 0u64;
    for _ in 0..ROUND_TRIPS {
        let start = Instant::now();
        pipe.send(std::slice::from_ref(&payload), received).await;
        pipe.rx.recv().await.unwrap();
        received += 1;
        latencies.push(start.elapsed());
    }
    let start = Instant::now();
    let batch: Vec<String> = vec![payload; BATCH];
    let mut got = 0;
    for _ in 0..BULK / BATCH {
        pipe.send(&batch, received).await;
        while pipe.rx.try_recv().is_ok() {
            got += 1;
            received += 1;
        }
    }
    while got < BULK {
        pipe.rx.recv().await.unwrap();
        got += 1;
    }
    report(
        if sse { "sse" } else { "longpoll" },
        latencies,
        start.elapsed(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "measurement, not a check; run with --ignored --nocapture"]
async fn transport_latency_and_throughput() {
    let backend = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let config = one_route(
        &[backend.url()],
        "fallback = true\nfallback_buffer = \"8MiB\"",
    );
    let gw = TestGateway::start(&config).await;
    bench_websocket(&gw).await;
    bench_fallback(&gw, true).await;
    bench_fallback(&gw, false).await;
    gw.stop().await;
}
