//! Measures what a relayed WebSocket costs the gateway: resident memory per
//! idle connection, and (under callgrind) instructions per relayed message.
//!
//! The gateway runs as its own process (the release binary) in front of an
//! echo backend that lives in this process, so the gateway's RSS holds only
//! its own two sockets per connection and nothing of the clients or backend.
//!
//! ```text
//! cargo build --release && cargo build --release --example relay_cost
//! # memory: hold 5000 idle WebSockets, print bytes of gateway RSS per connection
//! ulimit -n $(ulimit -Hn); target/release/examples/relay_cost idle 5000
//! # CPU: one connection, COUNT echo round trips of SIZE bytes, gateway under callgrind
//! target/release/examples/relay_cost echo 64 2000 --callgrind
//! ```
//!
//! With `--callgrind` the gateway runs under `valgrind --tool=callgrind`, and
//! the total instruction count of the whole gateway run is printed. Run two
//! counts and take the difference to cancel start-up and handshakes:
//! `(Ir(4000) - Ir(2000)) / 2000` is the cost of one round trip, i.e. of two
//! relayed messages (client → backend and back). Set `RELAY_COST_KEEP=1` to
//! keep the callgrind output for `callgrind_annotate`.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// Connections opened at the same time while setting up the idle set.
const OPEN_CONCURRENCY: usize = 64;

/// Time the gateway gets to settle before RSS is read.
const SETTLE: Duration = Duration::from_secs(2);

type Ws = WebSocketStream<TcpStream>;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let callgrind = args.iter().any(|a| a == "--callgrind");
    let gateway_bin = std::env::var("WSGATE_BIN").unwrap_or("target/release/wsgate".into());
    let num = |i: usize| -> usize {
        args.get(i)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| usage())
    };
    let backend = start_echo_backend().await;
    let dir = std::env::temp_dir().join(format!("relay_cost-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut gw = Gateway::start(&gateway_bin, backend, &dir, callgrind);
    gw.wait_ready().await;
    match args.first().map(String::as_str) {
        Some("idle") => idle(&gw, num(1)).await,
        Some("echo") => echo(&gw, num(1), num(2)).await,
        _ => usage(),
    }
    gw.stop(&dir);
}

fn usage() -> ! {
    eprintln!("usage: relay_cost idle N | echo SIZE COUNT [--callgrind]");
    std::process::exit(64)
}

/// Holds `n` idle WebSockets and prints the gateway's RSS growth per connection.
async fn idle(gw: &Gateway, n: usize) {
    // Warm up: one full session, so lazily built state is not counted.
    let mut ws = gw.connect().await;
    round_trip(&mut ws, 64).await;
    ws.close(None).await.ok();
    drop(ws);
    tokio::time::sleep(SETTLE).await;
    let before = gw.rss_kib();
    let mut held: Vec<Ws> = Vec::with_capacity(n);
    while held.len() < n {
        let batch = OPEN_CONCURRENCY.min(n - held.len());
        let opened = futures_util::future::join_all((0..batch).map(|_| async {
            let mut ws = gw.connect().await;
            // One message each way: a relay that has carried traffic.
            round_trip(&mut ws, 64).await;
            ws
        }))
        .await;
        held.extend(opened);
    }
    tokio::time::sleep(SETTLE).await;
    let after = gw.rss_kib();
    let per_conn = (after.saturating_sub(before)) * 1024 / n as u64;
    println!("idle connections: {n}");
    println!("gateway VmRSS before: {before} KiB, after: {after} KiB");
    println!("gateway RSS per idle WebSocket: {per_conn} bytes");
    for mut ws in held {
        ws.close(None).await.ok();
    }
}

/// Sends `count` messages of `size` bytes one at a time, each awaiting its echo.
async fn echo(gw: &Gateway, size: usize, count: usize) {
    let mut ws = gw.connect().await;
    for _ in 0..count {
        round_trip(&mut ws, size).await;
    }
    ws.close(None).await.ok();
    while let Some(Ok(_)) = ws.next().await {}
    println!("echoed {count} messages of {size} bytes");
}

async fn round_trip(ws: &mut Ws, size: usize) {
    let payload = vec![0x5Au8; size];
    ws.send(Message::binary(payload.clone())).await.unwrap();
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(got))) => {
                assert_eq!(got.len(), size);
                return;
            }
            Some(Ok(_)) => continue,
            other => panic!("echo failed: {other:?}"),
        }
    }
}

/// A WebSocket server on loopback that echoes data messages.
async fn start_echo_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                stream.set_nodelay(true).ok();
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if (msg.is_binary() || msg.is_text()) && ws.send(msg).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// The gateway process under test.
struct Gateway {
    child: Child,
    addr: SocketAddr,
    callgrind: bool,
}

impl Gateway {
    fn start(bin: &str, backend: SocketAddr, dir: &std::path::Path, callgrind: bool) -> Self {
        // A free loopback port: bind, note it, release it for the gateway.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let config = dir.join("wsgate.toml");
        std::fs::write(
            &config,
            format!(
                "[limits]\nmax_connections_per_ip = 0\n\n[[listeners]]\nbind = \"{addr}\"\n\n[[routes]]\nname = \"bench\"\npath = \"/\"\nbackends = [\"ws://{backend}\"]\n"
            ),
        )
        .unwrap();
        let mut cmd = Command::new("sh");
        let script = if callgrind {
            format!(
                "ulimit -n $(ulimit -Hn); exec valgrind --tool=callgrind --callgrind-out-file={}/callgrind.out \"$@\"",
                dir.display()
            )
        } else {
            "ulimit -n $(ulimit -Hn); exec \"$@\"".to_string()
        };
        cmd.args(["-c", &script, "sh", bin, "--config"])
            .arg(&config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let child = cmd.spawn().expect("start the gateway");
        Gateway {
            child,
            addr,
            callgrind,
        }
    }

    async fn wait_ready(&self) {
        for _ in 0..600 {
            if TcpStream::connect(self.addr).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("gateway did not start");
    }

    async fn connect(&self) -> Ws {
        let stream = TcpStream::connect(self.addr).await.unwrap();
        stream.set_nodelay(true).ok();
        let url = format!("ws://{}/", self.addr);
        let (ws, _) = tokio_tungstenite::client_async(url, stream).await.unwrap();
        ws
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    /// SIGTERM, wait, and with callgrind print the instruction total.
    fn stop(&mut self, dir: &std::path::Path) {
        std::thread::sleep(Duration::from_millis(500));
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .ok();
        self.child.wait().ok();
        if self.callgrind {
            let out = std::fs::read_to_string(dir.join("callgrind.out")).unwrap_or_default();
            let total = out
                .lines()
                .find_map(|l| l.strip_prefix("summary:").or(l.strip_prefix("totals:")))
                .unwrap_or("?");
            println!("gateway instructions (Ir): {}", total.trim());
        }
        if std::env::var_os("RELAY_COST_KEEP").is_some() {
            println!("kept {}", dir.display());
        } else {
            std::fs::remove_dir_all(dir).ok();
        }
    }
}
