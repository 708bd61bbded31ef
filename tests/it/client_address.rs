//! Who the client is: forged forwarding headers from an untrusted client
//! never reach the backend, a trusted proxy's chain is kept, HAProxy with
//! `send-proxy-v2` in front gives the real client's address to the backend
//! and the logs, and every bad PROXY header is closed, logged and counted.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use futures_util::SinkExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;

use crate::support::backend::{http_echo_backend, Answer, Behaviour, WsBackend};
use crate::support::client::{raw_request, read_response, upgrade_request, ws_request, WAIT};
use crate::support::logs;
use crate::support::ops::{eventually, free_port, metric};
use crate::support::TestGateway;

/// The measured forgery.
const FORGED: &str = "X-Forwarded-For: 6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\nForwarded: for=6.6.6.6;proto=https\r\nX-Forwarded-Host: evil.example\r\nX-Forwarded-Uri: /admin\r\n";

fn get(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: chat.example.com\r\n{extra}Connection: close\r\n\r\n")
}

/// A gateway with one listener (its extra keys given) in front of an HTTP
/// echo backend at `/` and a WebSocket backend at `/ws`.
async fn gateway(listener: &str, http: SocketAddr, ws: &WsBackend, route: &str) -> TestGateway {
    let toml = format!(
        "[[listeners]]\nbind = \"127.0.0.1:0\"\n{listener}\n\n\
         [[routes]]\npath = \"/\"\nbackends = [\"http://{http}\"]\n\n\
         [[routes]]\npath = \"/ws\"\nbackends = [\"{}\"]\n{route}\n",
        ws.url()
    );
    TestGateway::start(&toml).await
}

#[tokio::test]
async fn forged_headers_from_an_untrusted_client_never_reach_the_backend() {
    let (http, _) = http_echo_backend().await;
    let ws = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let gw = gateway("trusted_proxies = [\"10.0.0.0/8\"]", http, &ws, "").await;
    let plain = raw_request(gw.addr(), &get("/x", FORGED)).await;
    assert_eq!(plain.status, 200);
    let seen = plain.body.to_ascii_lowercase();
    assert!(!seen.contains("6.6.6.6"), "{seen}");
    assert!(
        !seen.contains("evil.example") && !seen.contains("x-forwarded-uri"),
        "{seen}"
    );
    for line in [
        "x-forwarded-for: 127.0.0.1\n",
        "x-real-ip: 127.0.0.1\n",
        "forwarded: for=127.0.0.1;proto=http;host=\"chat.example.com\"\n",
        "x-forwarded-host: chat.example.com\n",
    ] {
        assert!(seen.contains(line), "missing {line:?} in {seen}");
    }
    let forged: Vec<&str> = FORGED.split("\r\n").filter(|l| !l.is_empty()).collect();
    let mut stream = TcpStream::connect(gw.addr()).await.unwrap();
    stream
        .write_all(upgrade_request("/ws", &forged).as_bytes())
        .await
        .unwrap();
    let response = tokio::time::timeout(WAIT, read_response(&mut stream))
        .await
        .unwrap();
    assert_eq!(response.status, 101);
    let (_, headers) = ws.request(0);
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(headers["x-real-ip"], "127.0.0.1");
    assert!(!format!("{headers:?}").contains("6.6.6.6"), "{headers:?}");
}

#[tokio::test]
async fn a_trusted_proxys_chain_is_kept_and_its_client_is_the_one_limited() {
    let (http, _) = http_echo_backend().await;
    let ws = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let trust = "trusted_proxies = [\"127.0.0.1/32\", \"10.0.0.0/8\"]";
    let gw = gateway(trust, http, &ws, "websockets_per_client = 1").await;
    let chain =
        "X-Forwarded-For: 203.0.113.9, 198.51.100.4, 10.1.1.1\r\nX-Forwarded-Proto: https\r\n";
    let plain = raw_request(gw.addr(), &get("/x", chain)).await;
    let seen = plain.body.to_ascii_lowercase();
    assert!(
        seen.contains("x-forwarded-for: 203.0.113.9, 198.51.100.4, 10.1.1.1, 127.0.0.1\n"),
        "{seen}"
    );
    assert!(seen.contains("x-real-ip: 198.51.100.4\n"), "{seen}");
    assert!(seen.contains("x-forwarded-proto: https\n"), "{seen}");
    // Two clients behind the one proxy are counted apart; the same one twice is not.
    let addr = gw.addr();
    let open = |xff: &'static str| async move {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let line = format!("X-Forwarded-For: {xff}");
        stream
            .write_all(upgrade_request("/ws", &[&line]).as_bytes())
            .await
            .unwrap();
        let response = tokio::time::timeout(WAIT, read_response(&mut stream))
            .await
            .unwrap();
        (response.status, stream)
    };
    let (first, _a) = open("198.51.100.4").await;
    let (other, _b) = open("198.51.100.5").await;
    let (again, _c) = open("198.51.100.4").await;
    assert_eq!((first, other, again), (101, 101, 429));
}

/// HAProxy in TCP mode in front of the gateway, sending PROXY v2.
struct Haproxy {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn haproxy_in_front_of(gateway: SocketAddr) -> Haproxy {
    let port = free_port().await;
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n\
         frontend edge\n  bind 127.0.0.1:{port}\n  default_backend gw\n\
         backend gw\n  server gw {gateway} send-proxy-v2\n"
    );
    let path = dir.path().join("haproxy.cfg");
    std::fs::write(&path, config).unwrap();
    let child = Command::new("haproxy")
        .args(["-db", "-f", path.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("haproxy runs (apt-get install haproxy; scripts/test.sh installs it)");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    eventually("haproxy to listen", || async {
        TcpStream::connect(addr).await.is_ok()
    })
    .await;
    Haproxy {
        child,
        addr,
        _dir: dir,
    }
}

/// A TCP connection to `to` from 127.0.0.2: a client the balancer is not.
async fn connect_from_127_0_0_2(to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    socket.connect(to).await.unwrap()
}

#[tokio::test]
async fn haproxy_send_proxy_v2_gives_the_backend_and_the_logs_the_real_client() {
    let logs = logs::capture();
    let (http, _) = http_echo_backend().await;
    let ws = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let listener = "trusted_proxies = [\"127.0.0.1/32\"]\nproxy_protocol = true";
    let gw = gateway(listener, http, &ws, "").await;
    let haproxy = haproxy_in_front_of(gw.addr()).await;

    let mut plain = connect_from_127_0_0_2(haproxy.addr).await;
    plain.write_all(get("/x", FORGED).as_bytes()).await.unwrap();
    let answer = tokio::time::timeout(WAIT, read_response(&mut plain))
        .await
        .unwrap();
    let seen = answer.body.to_ascii_lowercase();
    assert!(seen.contains("x-forwarded-for: 127.0.0.2\n"), "{seen}");
    assert!(seen.contains("x-real-ip: 127.0.0.2\n"), "{seen}");

    let stream = connect_from_127_0_0_2(haproxy.addr).await;
    let client_port = stream.local_addr().unwrap().port();
    let url = format!("ws://{}/ws", haproxy.addr);
    let (mut socket, _) = tokio::time::timeout(
        WAIT,
        tokio_tungstenite::client_async(ws_request(&url, &[]), stream),
    )
    .await
    .unwrap()
    .unwrap();
    socket.send(Message::Close(None)).await.unwrap();
    drop(socket);
    let (_, headers) = ws.request(0);
    assert_eq!(headers["x-forwarded-for"], "127.0.0.2");
    let client = format!("client=127.0.0.2:{client_port}");
    logs.wait_for_line(&["websocket session ended", &client])
        .await;
    let accepted = [("result", "accepted")];
    assert!(metric(gw.admin, "wsgate_proxy_protocol_headers_total", &accepted).await >= 2.0);
}

/// Sends `bytes` (then half-closes when `eof`) and expects the gateway to
/// close the connection without answering.
async fn expect_closed(addr: SocketAddr, bytes: &[u8], eof: bool) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    if eof {
        stream.shutdown().await.unwrap();
    }
    let mut rest = Vec::new();
    let read = tokio::time::timeout(WAIT, stream.read_to_end(&mut rest)).await;
    let answered = read.expect("closed within the wait bound").map(|_| rest);
    if let Ok(rest) = answered {
        assert!(
            rest.is_empty(),
            "no answer, got {:?}",
            String::from_utf8_lossy(&rest)
        );
    }
}

#[tokio::test]
async fn bad_proxy_headers_are_closed_logged_and_counted() {
    let logs = logs::capture();
    let (http, _) = http_echo_backend().await;
    let toml = format!(
        "[[listeners]]\nbind = \"127.0.0.1:0\"\ntrusted_proxies = [\"127.0.0.1/32\"]\nproxy_protocol = true\n\n\
         [[listeners]]\nbind = \"127.0.0.3:0\"\ntrusted_proxies = [\"10.0.0.0/8\"]\nproxy_protocol = true\n\n\
         [[routes]]\npath = \"/\"\nbackends = [\"http://{http}\"]\n"
    );
    let gw = TestGateway::start(&toml).await;
    let (trusted, untrusted) = (gw.addrs[0], gw.addrs[1]);
    let mut oversized = b"PROXY TCP4 ".to_vec();
    oversized.extend_from_slice(&[b'1'; 200]);
    let cases: [(SocketAddr, &[u8], bool, &str); 6] = [
        (
            trusted,
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            false,
            "missing",
        ),
        (trusted, b"PROXY TCP4 192.0.2.8 10.0", true, "truncated"),
        (trusted, &oversized, false, "oversized"),
        (trusted, b"PROXY TCP4 x y 1 2\r\n", false, "invalid"),
        (
            untrusted,
            b"PROXY TCP4 192.0.2.8 10.0.0.1 5 80\r\nGET / HTTP/1.1\r\n\r\n",
            false,
            "untrusted",
        ),
        (trusted, b"", false, "timeout"),
    ];
    for (addr, bytes, eof, result) in cases {
        expect_closed(addr, bytes, eof).await;
        logs.wait_for_line(&["connection closed", &format!("reason=\"{result}\"")])
            .await;
        let labels = [("result", result)];
        assert_eq!(
            metric(gw.admin, "wsgate_proxy_protocol_headers_total", &labels).await,
            1.0,
            "{result}"
        );
    }
    // A good header is served as its client; an untrusted peer without one as itself.
    let good = "PROXY TCP4 192.0.2.8 10.0.0.1 61000 80\r\n".to_string() + &get("/x", "");
    let served = raw_request(trusted, &good).await;
    assert!(
        served.body.contains("x-forwarded-for: 192.0.2.8\n"),
        "{}",
        served.body
    );
    let direct = raw_request(untrusted, &get("/x", "")).await;
    assert!(
        direct.body.contains("x-forwarded-for: 127.0.0.1\n"),
        "{}",
        direct.body
    );
}
