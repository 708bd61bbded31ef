//! A backend that says who it is: plain requests get its name as the body,
//! WebSockets echo (and answer "who" with its name), and `/healthz*`
//! answers as the test sets it — a status, never, or an endless body. It
//! counts what it served, so balancing and health tests can tell where
//! every connection went.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

type Body = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;

/// `health` value: the health path never answers.
pub const NEVER: u16 = 0;
/// `health` value: 200 with an endless body.
pub const ENDLESS: u16 = 1;

/// What a [`NamedBackend`] counts.
#[derive(Debug, Default)]
pub struct Counts {
    /// Health-path requests received.
    pub checks: AtomicUsize,
    /// Health-path requests that asked for a WebSocket.
    pub websocket_checks: AtomicUsize,
    /// Other plain requests answered.
    pub requests: AtomicUsize,
    /// WebSockets accepted (outside the health path).
    pub websockets: AtomicUsize,
    /// Endless health bodies whose reader went away.
    pub endless_dropped: AtomicUsize,
}

/// A running named backend.
pub struct NamedBackend {
    pub addr: SocketAddr,
    pub name: String,
    /// What the health path answers: a status, [`NEVER`] or [`ENDLESS`].
    pub health: Arc<AtomicU16>,
    pub counts: Arc<Counts>,
}

impl NamedBackend {
    /// Starts a backend called `name`; its health path answers 200.
    pub async fn start(name: &str) -> NamedBackend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let backend = NamedBackend {
            addr: listener.local_addr().unwrap(),
            name: name.to_string(),
            health: Arc::new(AtomicU16::new(200)),
            counts: Arc::default(),
        };
        let shared = Shared {
            name: backend.name.clone(),
            health: backend.health.clone(),
            counts: backend.counts.clone(),
        };
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let shared = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let shared = shared.clone();
                        async move { Ok::<_, std::convert::Infallible>(shared.answer(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await;
                });
            }
        });
        backend
    }

    /// `ws://addr`.
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    pub fn checks(&self) -> usize {
        self.counts.checks.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> usize {
        self.counts.requests.load(Ordering::SeqCst)
    }

    pub fn websockets(&self) -> usize {
        self.counts.websockets.load(Ordering::SeqCst)
    }

    /// Sets what the health path answers.
    pub fn set_health(&self, answer: u16) {
        self.health.store(answer, Ordering::SeqCst);
    }
}

#[derive(Clone)]
struct Shared {
    name: String,
    health: Arc<AtomicU16>,
    counts: Arc<Counts>,
}

impl Shared {
    async fn answer(&self, mut req: Request<Incoming>) -> Response<Body> {
        let upgrade = req
            .headers()
            .get("upgrade")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
        if req.uri().path().starts_with("/healthz") {
            self.counts.checks.fetch_add(1, Ordering::SeqCst);
            if upgrade {
                self.counts.websocket_checks.fetch_add(1, Ordering::SeqCst);
            }
            return self.health_answer(&mut req, upgrade).await;
        }
        if upgrade {
            self.counts.websockets.fetch_add(1, Ordering::SeqCst);
            return switch(&mut req, self.name.clone());
        }
        self.counts.requests.fetch_add(1, Ordering::SeqCst);
        text(200, &self.name)
    }

    async fn health_answer(&self, req: &mut Request<Incoming>, upgrade: bool) -> Response<Body> {
        match self.health.load(Ordering::SeqCst) {
            NEVER => std::future::pending().await,
            ENDLESS => endless(self.counts.clone()),
            200 if upgrade => switch(req, self.name.clone()),
            status => text(status, "health"),
        }
    }
}

fn text(status: u16, body: &str) -> Response<Body> {
    Response::builder()
        .status(status)
        .body(Full::new(Bytes::from(body.to_string())).boxed())
        .unwrap()
}

/// 200 with a body that never ends; counts when its reader goes away.
fn endless(counts: Arc<Counts>) -> Response<Body> {
    struct Dropped(Arc<Counts>);
    impl Drop for Dropped {
        fn drop(&mut self) {
            self.0.endless_dropped.fetch_add(1, Ordering::SeqCst);
        }
    }
    let guard = Dropped(counts);
    let chunks = futures_util::stream::repeat_with(move || {
        let _held = &guard;
        Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(vec![b'x'; 64 * 1024])))
    });
    Response::new(BodyExt::boxed(StreamBody::new(chunks)))
}

/// A 101, then an echo session that answers "who" with `name`.
fn switch(req: &mut Request<Incoming>, name: String) -> Response<Body> {
    let key = req
        .headers()
        .get("sec-websocket-key")
        .map(|k| derive_accept_key(k.as_bytes()))
        .unwrap_or_default();
    let on_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let mut ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        while let Some(Ok(message)) = ws.next().await {
            let reply = match message {
                Message::Text(t) if t == "who" => Message::Text(name.clone()),
                Message::Text(_) | Message::Binary(_) => message,
                Message::Close(_) => break,
                _ => continue,
            };
            if ws.send(reply).await.is_err() {
                break;
            }
        }
    });
    Response::builder()
        .status(101)
        .header("upgrade", "websocket")
        .header("connection", "Upgrade")
        .header("sec-websocket-accept", key)
        .body(Full::new(Bytes::new()).boxed())
        .unwrap()
}
