//! A raw fallback-protocol client (hyper, one connection per request) and
//! a test "firewall" that forwards HTTP but refuses WebSocket upgrades.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};

use super::client::WAIT;

/// An answer from the gateway.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    /// The events of a poll answer.
    pub fn events(&self) -> Vec<Value> {
        assert_eq!(self.status, 200, "{}", self.body);
        self.json()["events"].as_array().unwrap().clone()
    }
}

/// Sends one request and returns the response head (body not read).
pub async fn start(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Response<Incoming> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "chat.example.com");
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let req = req.body(Full::new(Bytes::from(body.to_owned()))).unwrap();
    tokio::time::timeout(WAIT, sender.send_request(req))
        .await
        .expect("response head within the wait bound")
        .unwrap()
}

/// Sends one request and reads the whole answer (bounded by [`WAIT`]).
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let response = start(addr, method, path, headers, body).await;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = tokio::time::timeout(WAIT, response.into_body().collect())
        .await
        .expect("body within the wait bound")
        .unwrap()
        .to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// One fallback session, seen from the client.
pub struct Session {
    pub addr: SocketAddr,
    pub id: String,
    pub origin: Option<String>,
}

impl Session {
    /// Opens a session for `target` (e.g. "/chat"); panics unless 200.
    pub async fn open(addr: SocketAddr, target: &str, origin: Option<&str>) -> Session {
        let reply = open(addr, target, origin, &[]).await;
        assert_eq!(reply.status, 200, "open: {}", reply.body);
        Session {
            addr,
            id: reply.json()["session"].as_str().unwrap().to_string(),
            origin: origin.map(str::to_string),
        }
    }

    pub fn path(&self, action: &str) -> String {
        format!("/_wsgate/s/{}/{action}", self.id)
    }

    fn headers(&self) -> Vec<(&str, &str)> {
        self.origin
            .as_deref()
            .map(|o| vec![("origin", o)])
            .unwrap_or_default()
    }

    pub async fn post(&self, action: &str, body: &str) -> Reply {
        request(self.addr, "POST", &self.path(action), &self.headers(), body).await
    }

    /// Sends `messages` (JSON values) as one batch starting at `seq`.
    pub async fn send(&self, seq: u64, messages: &[Value]) -> Reply {
        let body = serde_json::json!({ "seq": seq, "messages": messages });
        self.post("send", &body.to_string()).await
    }

    pub async fn poll(&self, ack: u64) -> Reply {
        let path = format!("{}?ack={ack}", self.path("poll"));
        request(self.addr, "GET", &path, &self.headers(), "").await
    }

    /// Polls (acking as it goes) until `count` events arrived.
    pub async fn collect(&self, mut ack: u64, count: usize) -> Vec<Value> {
        let mut out = Vec::new();
        while out.len() < count {
            let events = self.poll(ack).await.events();
            if let Some(last) = events.last() {
                ack = last["seq"].as_u64().unwrap();
            }
            out.extend(events);
        }
        out
    }
}

/// `POST /_wsgate/open?path=…` with extra query and an optional Origin.
pub async fn open(addr: SocketAddr, target: &str, origin: Option<&str>, extra: &[&str]) -> Reply {
    let mut path = format!(
        "/_wsgate/open?path={}",
        target.replace('?', "%3F").replace('=', "%3D")
    );
    for pair in extra {
        path.push('&');
        path.push_str(pair);
    }
    let headers: Vec<(&str, &str)> = origin.map(|o| vec![("origin", o)]).unwrap_or_default();
    request(addr, "POST", &path, &headers, "").await
}

pub fn text(t: &str) -> Value {
    serde_json::json!({ "text": t })
}

/// The text of each event, in order (panics on non-text events).
pub fn texts(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            e["text"]
                .as_str()
                .unwrap_or_else(|| panic!("{e}"))
                .to_string()
        })
        .collect()
}

/// Reads an SSE response, keeping partial events between calls.
pub struct Sse {
    body: Incoming,
    buffer: String,
}

impl Sse {
    pub fn new(body: Incoming) -> Sse {
        Sse {
            body,
            buffer: String::new(),
        }
    }

    /// The next events (`id`, data JSON), at least `count` of them.
    pub async fn events(&mut self, count: usize) -> Vec<(u64, Value)> {
        let mut out = Vec::new();
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let id = block.lines().find_map(|l| l.strip_prefix("id: "));
                let data = block.lines().find_map(|l| l.strip_prefix("data: "));
                if let (Some(id), Some(data)) = (id, data) {
                    out.push((id.parse().unwrap(), serde_json::from_str(data).unwrap()));
                }
            }
            if out.len() >= count {
                return out;
            }
            let frame = tokio::time::timeout(WAIT, self.body.frame())
                .await
                .expect("SSE data within the wait bound")
                .expect("stream still open")
                .unwrap();
            if let Ok(data) = frame.into_data() {
                self.buffer.push_str(&String::from_utf8_lossy(&data));
            }
        }
    }
}

/// A proxy on 127.0.0.1:0 that forwards plain HTTP to `upstream` and
/// answers 403 to anything carrying `Upgrade: websocket`, like a corporate
/// firewall that only lets HTTP through.
pub async fn firewall(upstream: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = hyper::service::service_fn(move |req| forward(upstream, req));
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    addr
}

type ProxyBody = http_body_util::combinators::BoxBody<Bytes, hyper::Error>;

async fn forward(
    upstream: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, hyper::Error> {
    let blocked = req
        .headers()
        .get("upgrade")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    if blocked {
        let body = Full::new(Bytes::from_static(b"firewall: websockets are blocked"))
            .map_err(|never| match never {})
            .boxed();
        return Ok(Response::builder().status(403).body(body).unwrap());
    }
    let stream = TcpStream::connect(upstream).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let response = sender.send_request(req).await?;
    Ok(response.map(|body| body.boxed()))
}

/// Opens `GET path` (an event stream) on a socket with a small receive
/// buffer and never reads from it: a reader that stalled. Keep the stream
/// to keep the socket open.
pub async fn stalled_reader(addr: SocketAddr, path: &str, origin: &str) -> TcpStream {
    use tokio::io::AsyncWriteExt;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: chat.example.com\r\nOrigin: {origin}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    stream
}

/// A gateway with one `fallback = true` route (plus `extra` route keys) in
/// front of a backend behaving as `behaviour`.
pub async fn gateway_with(
    behaviour: super::backend::Behaviour,
    extra: &str,
) -> (super::TestGateway, super::backend::WsBackend) {
    use super::backend::{Answer, WsBackend};
    let backend = WsBackend::start(Answer::AcceptFirst, behaviour).await;
    let config = super::one_route(&[backend.url()], &format!("fallback = true\n{extra}"));
    (super::TestGateway::start(&config).await, backend)
}

/// The backend's next close (code, reason), within the wait bound.
pub async fn next_close(backend: &mut super::backend::WsBackend) -> (u16, String) {
    tokio::time::timeout(WAIT, backend.closes.recv())
        .await
        .expect("backend close within the wait bound")
        .unwrap()
}
