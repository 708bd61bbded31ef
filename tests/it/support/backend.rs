//! Instrumented test backends on `127.0.0.1:0`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderMap, HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// How a [`WsBackend`] answers the handshake.
#[derive(Clone, Debug, Default)]
pub enum Answer {
    /// 101, choosing the first offered subprotocol.
    #[default]
    AcceptFirst,
    /// 101 with this subprotocol, offered or not.
    AcceptWith(String),
    /// 101 with no subprotocol.
    AcceptNone,
    /// This status and body instead of 101.
    Refuse(u16, String),
}

/// What a WebSocket session on the backend should do.
#[derive(Clone, Copy, Debug, Default)]
pub enum Behaviour {
    /// Echo text and binary messages.
    #[default]
    Echo,
    /// Echo, but drop the TCP connection (no close frame) on the message
    /// "die", and send close 4001 "server bye" on the message "bye".
    DieOnCommand,
}

/// A tokio-tungstenite server that records every handshake it sees.
pub struct WsBackend {
    pub addr: SocketAddr,
    /// TCP connections accepted (a rejected handshake never gets here).
    pub connections: Arc<AtomicUsize>,
    /// Headers of every upgrade request received, in order.
    pub requests: Arc<Mutex<Vec<(String, HeaderMap)>>>,
    /// Close frames (code, reason) the backend received, in order.
    pub closes: mpsc::UnboundedReceiver<(u16, String)>,
    /// One item each time a backend session ends, however it ended.
    pub ended: mpsc::UnboundedReceiver<()>,
}

impl WsBackend {
    pub async fn start(answer: Answer, behaviour: Behaviour) -> WsBackend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (close_tx, closes) = mpsc::unbounded_channel();
        let (ended_tx, ended) = mpsc::unbounded_channel();
        let (conns, reqs) = (connections.clone(), requests.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                conns.fetch_add(1, Ordering::SeqCst);
                let (reqs, answer, close_tx) = (reqs.clone(), answer.clone(), close_tx.clone());
                let ended_tx = ended_tx.clone();
                tokio::spawn(async move {
                    if let Some(ws) = handshake(stream, answer, reqs).await {
                        session(ws, behaviour, close_tx).await;
                        let _ = ended_tx.send(());
                    }
                });
            }
        });
        WsBackend {
            addr,
            connections,
            requests,
            closes,
            ended,
        }
    }

    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    pub fn connection_count(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// The headers of the n-th upgrade request.
    pub fn request(&self, n: usize) -> (String, HeaderMap) {
        self.requests.lock().unwrap()[n].clone()
    }
}

#[allow(clippy::result_large_err)] // tungstenite's callback signature
async fn handshake(
    stream: TcpStream,
    answer: Answer,
    requests: Arc<Mutex<Vec<(String, HeaderMap)>>>,
) -> Option<WebSocketStream<TcpStream>> {
    let callback = move |req: &Request, mut res: Response| -> Result<Response, ErrorResponse> {
        let uri = req.uri().to_string();
        requests.lock().unwrap().push((uri, req.headers().clone()));
        let offered = req
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(|p| p.trim().to_string());
        let choice = match answer {
            Answer::AcceptFirst => offered,
            Answer::AcceptWith(p) => Some(p),
            Answer::AcceptNone => None,
            Answer::Refuse(status, body) => {
                let mut refusal = ErrorResponse::new(Some(body));
                *refusal.status_mut() = StatusCode::from_u16(status).unwrap();
                refusal
                    .headers_mut()
                    .insert("x-backend", HeaderValue::from_static("refused"));
                return Err(refusal);
            }
        };
        if let Some(p) = choice {
            res.headers_mut()
                .insert("sec-websocket-protocol", HeaderValue::from_str(&p).unwrap());
        }
        res.headers_mut()
            .insert("set-cookie", HeaderValue::from_static("session=abc"));
        Ok(res)
    };
    tokio_tungstenite::accept_hdr_async(stream, callback)
        .await
        .ok()
}

async fn session(
    ws: WebSocketStream<TcpStream>,
    behaviour: Behaviour,
    closes: mpsc::UnboundedSender<(u16, String)>,
) {
    let (mut sink, mut stream) = ws.split();
    while let Some(Ok(message)) = stream.next().await {
        match message {
            Message::Text(t) if t == "die" && matches!(behaviour, Behaviour::DieOnCommand) => {
                return
            }
            Message::Text(t) if t == "bye" && matches!(behaviour, Behaviour::DieOnCommand) => {
                use tokio_tungstenite::tungstenite::protocol::{
                    frame::coding::CloseCode, CloseFrame,
                };
                let frame = CloseFrame {
                    code: CloseCode::from(4001),
                    reason: "server bye".into(),
                };
                let _ = sink.send(Message::Close(Some(frame))).await;
            }
            Message::Text(_) | Message::Binary(_) => {
                let sent = sink.send(message).await;
                if sent.is_err() {
                    return;
                }
            }
            Message::Close(frame) => {
                let (code, reason) = frame.map_or((1005, String::new()), |f| {
                    (f.code.into(), f.reason.to_string())
                });
                let _ = closes.send((code, reason));
            }
            _ => {}
        }
    }
    let _ = sink.close().await;
}

/// A backend that accepts TCP and never says anything; counts connections.
pub async fn silent_backend() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            c.fetch_add(1, Ordering::SeqCst);
            held.push(stream);
        }
    });
    (addr, count)
}

/// An address nothing listens on, for the whole test run: a socket bound
/// but never listening, so a connect is refused (RST) and no other test
/// can take the port meanwhile (a port bound and released could be).
pub async fn refused_addr() -> SocketAddr {
    static HELD: std::sync::Mutex<Vec<tokio::net::TcpSocket>> = std::sync::Mutex::new(Vec::new());
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    HELD.lock().unwrap().push(socket);
    addr
}

/// A plain HTTP backend that answers every request with its method, path,
/// the headers it saw and the request body, so tests can assert them.
pub async fn http_echo_backend() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            c.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve_http_echo(stream));
        }
    });
    (addr, count)
}

async fn serve_http_echo(stream: TcpStream) {
    serve_http_echo_on(stream).await;
}

/// Serves [`http_echo_backend`]'s answers on any connected stream (plain
/// TCP or TLS), until the client closes it.
pub async fn serve_http_echo_on<S>(stream: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use http_body_util::BodyExt;
    let service =
        hyper::service::service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
            let mut summary = format!("{} {}\n", req.method(), req.uri());
            for (name, value) in req.headers() {
                summary.push_str(&format!("{}: {}\n", name, value.to_str().unwrap_or("?")));
            }
            let body = req.into_body().collect().await?.to_bytes();
            summary.push('\n');
            let mut bytes = summary.into_bytes();
            bytes.extend_from_slice(&body);
            let response = hyper::Response::builder()
                .header("x-backend", "http-echo")
                .body(http_body_util::Full::new(bytes::Bytes::from(bytes)))
                .unwrap();
            Ok::<_, hyper::Error>(response)
        });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
        .await;
}

/// Reads whatever arrives until EOF (bounded by the caller's timeout).
pub async fn read_to_end(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out).await;
    out
}

/// Writes bytes, ignoring errors (the peer may already be gone).
pub async fn write(stream: &mut TcpStream, bytes: &[u8]) {
    let _ = stream.write_all(bytes).await;
}

/// What a [`raw_ws_backend`] saw: the upgrade request head, then every
/// chunk of bytes that followed, unparsed.
#[derive(Debug)]
pub enum RawEvent {
    Head(String),
    Bytes(Vec<u8>),
}

/// A byte-level WebSocket backend for one connection: answers the upgrade
/// with 101 (with `extensions` as its `Sec-WebSocket-Extensions` answer) and
/// then reports raw bytes, so tests can see frames exactly as forwarded.
pub async fn raw_ws_backend(
    extensions: Option<&'static str>,
) -> (SocketAddr, mpsc::UnboundedReceiver<RawEvent>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let head = read_head(&mut stream).await;
        let key = head
            .lines()
            .find_map(|l| {
                l.strip_prefix("sec-websocket-key:")
                    .or_else(|| l.strip_prefix("Sec-WebSocket-Key:"))
            })
            .unwrap_or("")
            .trim()
            .to_string();
        let _ = tx.send(RawEvent::Head(head));
        let mut answer = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
            wsgate::ws::handshake::accept_key(&key)
        );
        if let Some(ext) = extensions {
            answer.push_str(&format!("Sec-WebSocket-Extensions: {ext}\r\n"));
        }
        answer.push_str("\r\n");
        write(&mut stream, answer.as_bytes()).await;
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 || tx.send(RawEvent::Bytes(buf[..n].to_vec())).is_err() {
                break;
            }
        }
    });
    (addr, rx)
}

/// Reads an HTTP head byte by byte (tests only; heads are small).
async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && stream.read_exact(&mut byte).await.is_ok() {
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// A backend that accepts TCP and never answers, like [`silent_backend`],
/// but reads each connection to its end and reports one item per
/// connection the gateway closed (EOF or reset): the proof that giving up
/// on a silent backend also let go of its socket.
pub async fn silent_backend_reporting_close() -> (SocketAddr, mpsc::UnboundedReceiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut sink = Vec::new();
                let _ = stream.read_to_end(&mut sink).await;
                let _ = tx.send(());
            });
        }
    });
    (addr, rx)
}

/// A backend whose dials never complete, on loopback: a listener with a
/// backlog of 0 that never accepts, holding one queued connection. Linux
/// drops SYNs to a listener whose accept queue is full, so the gateway's
/// connect hangs until its `connect_timeout` — what a backend behind a
/// black hole looks like, without a non-loopback address.
pub struct FullBacklog {
    pub addr: SocketAddr,
    /// Never accepted from; dropping it would refuse instead of hang.
    _listener: TcpListener,
    /// The connection that fills the accept queue.
    _filler: TcpStream,
}

/// Starts a [`FullBacklog`] and waits until the kernel shows its accept
/// queue holding the filler (so the next SYN is dropped, not queued).
pub async fn full_backlog_backend() -> FullBacklog {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let filler = TcpStream::connect(addr).await.unwrap();
    super::ops::eventually("the accept queue to be full", || {
        std::future::ready(accept_queue(addr) == Some(1))
    })
    .await;
    FullBacklog {
        addr,
        _listener: listener,
        _filler: filler,
    }
}

/// Connections waiting in the accept queue of the IPv4 listener on `addr`,
/// from `/proc/net/tcp` (a listening socket's `rx_queue` is that count).
fn accept_queue(addr: SocketAddr) -> Option<u32> {
    let local = format!("0100007F:{:04X}", addr.port());
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let listening = fields.get(1) == Some(&local.as_str()) && fields.get(3) == Some(&"0A");
        let (_, rx) = fields.get(4)?.split_once(':')?;
        listening.then(|| u32::from_str_radix(rx, 16).ok())?
    })
}

/// A backend for one connection that hands the accepted socket to the
/// test, which then plays the backend byte by byte (to hold back part of
/// a response, or watch a request body arrive piece by piece).
pub async fn handed_over_backend() -> (SocketAddr, tokio::sync::oneshot::Receiver<TcpStream>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        if let Ok((stream, _)) = listener.accept().await {
            let _ = tx.send(stream);
        }
    });
    (addr, rx)
}

/// [`raw_ws_backend`] that the test can also write through: every chunk
/// sent on the returned sender goes to the gateway as is, so a test can
/// answer a close (or send any frame) at byte level.
pub async fn raw_ws_backend_duplex(
    extensions: Option<&'static str>,
) -> (
    SocketAddr,
    mpsc::UnboundedReceiver<RawEvent>,
    mpsc::UnboundedSender<Vec<u8>>,
) {
    let (relay_addr, mut inner) = raw_ws_backend(extensions).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (events_tx, events) = mpsc::unbounded_channel();
    let (out_tx, mut out) = mpsc::unbounded_channel::<Vec<u8>>();
    // A byte pipe in front of the raw backend: what the gateway sends goes
    // on to it (and is reported by it), what the test sends goes back.
    tokio::spawn(async move {
        let Ok((gateway, _)) = listener.accept().await else {
            return;
        };
        let Ok(backend) = TcpStream::connect(relay_addr).await else {
            return;
        };
        let (mut from_gw, mut to_gw) = gateway.into_split();
        let (mut from_backend, mut to_backend) = backend.into_split();
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut from_gw, &mut to_backend).await;
        });
        let mut buf = vec![0u8; 4096];
        loop {
            tokio::select! {
                n = from_backend.read(&mut buf) => match n {
                    Ok(0) | Err(_) => break,
                    Ok(n) => write_half(&mut to_gw, &buf[..n]).await,
                },
                chunk = out.recv() => match chunk {
                    Some(bytes) => write_half(&mut to_gw, &bytes).await,
                    None => break,
                },
            }
        }
    });
    tokio::spawn(async move {
        while let Some(event) = inner.recv().await {
            if events_tx.send(event).is_err() {
                break;
            }
        }
    });
    (addr, events, out_tx)
}

async fn write_half(half: &mut tokio::net::tcp::OwnedWriteHalf, bytes: &[u8]) {
    let _ = half.write_all(bytes).await;
}

/// Reads a raw backend's events (after its head) and splits them into
/// frames — `(first byte, unmasked payload)` — until a close frame, which
/// is the last one returned; panics if none comes within [`super::client::WAIT`].
pub async fn frames_until_close(
    events: &mut mpsc::UnboundedReceiver<RawEvent>,
) -> Vec<(u8, Vec<u8>)> {
    let read = async {
        let (mut bytes, mut frames) = (Vec::new(), Vec::new());
        loop {
            while let Some((frame, used)) = parse_frame(&bytes) {
                bytes.drain(..used);
                let close = frame.0 & 0x0f == 0x8;
                frames.push(frame);
                if close {
                    return frames;
                }
            }
            match events.recv().await {
                Some(RawEvent::Bytes(chunk)) => bytes.extend(chunk),
                Some(RawEvent::Head(_)) => {}
                None => panic!("backend connection ended before a close: {frames:?}"),
            }
        }
    };
    tokio::time::timeout(super::client::WAIT, read)
        .await
        .expect("a close reaches the backend")
}

/// One complete frame at the start of `bytes` and its length on the wire.
fn parse_frame(bytes: &[u8]) -> Option<((u8, Vec<u8>), usize)> {
    let (first, second) = (*bytes.first()?, *bytes.get(1)?);
    let (len, mut at) = match second & 0x7f {
        126 => (
            u64::from(u16::from_be_bytes([*bytes.get(2)?, *bytes.get(3)?])),
            4,
        ),
        127 => (u64::from_be_bytes(bytes.get(2..10)?.try_into().ok()?), 10),
        n => (u64::from(n), 2),
    };
    let key: Option<[u8; 4]> = if second & 0x80 != 0 {
        at += 4;
        Some(bytes.get(at - 4..at)?.try_into().ok()?)
    } else {
        None
    };
    let end = at.checked_add(usize::try_from(len).ok()?)?;
    let mut payload = bytes.get(at..end)?.to_vec();
    if let Some(k) = key {
        payload
            .iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b ^= k[i % 4]);
    }
    Some(((first, payload), end))
}

/// The close code of a close frame's payload (1005 when it has none).
pub fn close_code(payload: &[u8]) -> u16 {
    payload
        .get(..2)
        .map_or(1005, |c| u16::from_be_bytes([c[0], c[1]]))
}

/// A backend that answers every request with `101 Switching Protocols`
/// (`Upgrade: h2c`) and then bytes of the protocol it switched to, as a
/// backend would that honours an upgrade the gateway should never let
/// through. Counts connections.
pub async fn switching_backend() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            c.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                read_head(&mut stream).await;
                let answer = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";
                write(&mut stream, answer.as_bytes()).await;
                write(&mut stream, SWITCHED).await;
                read_to_end(&mut stream).await;
            });
        }
    });
    (addr, count)
}

/// What [`switching_backend`] sends after its 101.
pub const SWITCHED: &[u8] = b"TUNNELLED-BYTES";

/// A backend that reads a request head and hangs up without answering, as
/// one dying mid-handshake does; counts the requests it read.
pub async fn hang_up_backend() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let c = c.clone();
            tokio::spawn(async move {
                if read_head(&mut stream).await.ends_with("\r\n\r\n") {
                    c.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
    });
    (addr, count)
}
