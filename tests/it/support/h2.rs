//! An HTTP/2 client for the tests (the `h2` crate over rustls with ALPN
//! `h2`), and WebSockets over it (RFC 8441) as tungstenite streams, so the
//! relay over an HTTP/2 stream is driven by the same WebSocket client as
//! over TCP.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use h2::client::SendRequest;
use h2::{RecvStream, SendStream};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

use super::client::WAIT;
use super::ops::eventually;
use super::tls::AcceptAny;

/// A TLS listener table with a self-signed certificate, for HTTP/2 tests.
pub const TLS_LISTENER: &str =
    "[[listeners]]\nbind = \"127.0.0.1:0\"\n[listeners.tls]\nself_signed = true\n";

/// A TLS connection to `addr` offering `alpn`, trusting any certificate.
pub async fn tls(addr: SocketAddr, alpn: &[&[u8]]) -> TlsStream<TcpStream> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let connect = TlsConnector::from(Arc::new(config)).connect(name, tcp);
    tokio::time::timeout(WAIT, connect)
        .await
        .expect("TLS handshake within the wait bound")
        .unwrap()
}

/// One HTTP/2 connection to the gateway.
pub struct H2 {
    /// Sends requests; cloned per request.
    pub send: SendRequest<Bytes>,
    /// The `host:port` requests name as `:authority`.
    pub authority: String,
    /// The connection task: ends with the connection.
    pub conn: tokio::task::JoinHandle<Result<(), h2::Error>>,
}

impl H2 {
    /// Connects over TLS with ALPN `h2` and waits for the server's SETTINGS
    /// (with `SETTINGS_ENABLE_CONNECT_PROTOCOL`).
    pub async fn connect(addr: SocketAddr) -> H2 {
        let io = tls(addr, &[b"h2"]).await;
        assert_eq!(io.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (send, connection) = h2::client::handshake(io).await.unwrap();
        let conn = tokio::spawn(connection);
        let send = send.ready().await.unwrap();
        let client = H2 {
            send,
            authority: format!("localhost:{}", addr.port()),
            conn,
        };
        let send = client.send.clone();
        eventually("the server's SETTINGS enable extended CONNECT", || {
            let enabled = send.is_extended_connect_protocol_enabled();
            async move { enabled }
        })
        .await;
        client
    }

    /// The absolute URI of `path` on this connection.
    pub fn uri(&self, path: &str) -> String {
        format!("https://{}{}", self.authority, path)
    }

    /// Sends `req` (headers only; the body follows on the returned stream
    /// unless `end`).
    pub async fn start(
        &mut self,
        req: Request<()>,
        end: bool,
    ) -> (h2::client::ResponseFuture, SendStream<Bytes>) {
        let send = self.send.clone().ready().await.unwrap();
        self.send = send;
        self.send.send_request(req, end).unwrap()
    }

    /// A complete exchange: `method path` with `headers` and `body`; the
    /// response head and whole body.
    pub async fn request(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (Response<()>, Bytes) {
        let mut req = Request::builder().method(method).uri(self.uri(path));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let (response, mut stream) = self.start(req.body(()).unwrap(), body.is_empty()).await;
        if !body.is_empty() {
            stream
                .send_data(Bytes::copy_from_slice(body), true)
                .unwrap();
        }
        let exchange = async {
            let response = response.await.unwrap();
            let (head, body) = response.into_parts();
            (Response::from_parts(head, ()), read_all(body).await)
        };
        tokio::time::timeout(WAIT, exchange)
            .await
            .expect("answer within the wait bound")
    }

    /// Opens a WebSocket on `path` (extended CONNECT, `:protocol =
    /// websocket`) with extra `headers`. `Ok`: the 200 and the socket;
    /// `Err`: the refusal's status, headers and body.
    pub async fn websocket(
        &mut self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<(Response<()>, WsH2), (StatusCode, HeaderMap, String)> {
        self.websocket_with(path, "websocket", headers).await
    }

    /// Like [`H2::websocket`] with another `:protocol`.
    pub async fn websocket_with(
        &mut self,
        path: &str,
        protocol: &str,
        headers: &[(&str, &str)],
    ) -> Result<(Response<()>, WsH2), (StatusCode, HeaderMap, String)> {
        let (response, io) = self.raw_websocket(path, protocol, headers).await?;
        let ws = WebSocketStream::from_raw_socket(io, Role::Client, None).await;
        Ok((response, ws))
    }

    /// Opens an extended CONNECT with `protocol` and, on its 200, hands
    /// over the stream as bytes, for tests that write frames themselves.
    pub async fn raw_websocket(
        &mut self,
        path: &str,
        protocol: &str,
        headers: &[(&str, &str)],
    ) -> Result<(Response<()>, H2Io), (StatusCode, HeaderMap, String)> {
        let (response, send) = self.open_protocol(path, protocol, headers).await;
        let response = tokio::time::timeout(WAIT, response)
            .await
            .expect("answer within the wait bound")
            .map_err(|e| {
                (
                    StatusCode::from_u16(599).unwrap(),
                    HeaderMap::new(),
                    e.to_string(),
                )
            })?;
        let (head, recv) = response.into_parts();
        if head.status != StatusCode::OK {
            let body = read_all(recv).await;
            return Err((
                head.status,
                head.headers,
                String::from_utf8_lossy(&body).into(),
            ));
        }
        Ok((Response::from_parts(head, ()), H2Io::new(send, recv)))
    }

    /// Sends an extended CONNECT for `path`; the answer is the caller's to
    /// await.
    pub async fn open(
        &mut self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (h2::client::ResponseFuture, SendStream<Bytes>) {
        self.open_protocol(path, "websocket", headers).await
    }

    /// Like [`H2::open`] with another `:protocol`.
    pub async fn open_protocol(
        &mut self,
        path: &str,
        protocol: &str,
        headers: &[(&str, &str)],
    ) -> (h2::client::ResponseFuture, SendStream<Bytes>) {
        let mut req = Request::builder()
            .method(Method::CONNECT)
            .uri(self.uri(path))
            .extension(h2::ext::Protocol::from(protocol));
        if !headers
            .iter()
            .any(|(name, _)| *name == "sec-websocket-version")
        {
            req = req.header("sec-websocket-version", "13");
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        self.start(req.body(()).unwrap(), false).await
    }
}

/// Reads a body to its end, giving flow-control capacity back as it goes.
pub async fn read_all(mut body: RecvStream) -> Bytes {
    let mut out = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        out.extend_from_slice(&chunk);
    }
    Bytes::from(out)
}

/// A WebSocket over one HTTP/2 stream.
pub type WsH2 = WebSocketStream<H2Io>;

/// One HTTP/2 stream as a byte stream: DATA frames out and in.
pub struct H2Io {
    send: SendStream<Bytes>,
    recv: RecvStream,
    /// Received bytes not read yet.
    pending: Bytes,
}

impl H2Io {
    pub fn new(send: SendStream<Bytes>, recv: RecvStream) -> H2Io {
        H2Io {
            send,
            recv,
            pending: Bytes::new(),
        }
    }

    /// Resets the stream (RST_STREAM with `reason`).
    pub fn reset(&mut self, reason: h2::Reason) {
        self.send.send_reset(reason);
    }
}

impl std::fmt::Debug for H2Io {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("H2Io")
    }
}

fn to_io(e: h2::Error) -> io::Error {
    io::Error::other(e)
}

impl AsyncRead for H2Io {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.pending.is_empty() {
            match ready!(self.recv.poll_data(cx)) {
                None => return Poll::Ready(Ok(())),
                Some(Err(e)) => return Poll::Ready(Err(to_io(e))),
                Some(Ok(data)) => {
                    let _ = self.recv.flow_control().release_capacity(data.len());
                    self.pending = data;
                }
            }
        }
        let n = self.pending.len().min(buf.remaining());
        buf.put_slice(&self.pending[..n]);
        self.pending.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for H2Io {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        self.send.reserve_capacity(buf.len());
        while self.send.capacity() == 0 {
            match ready!(self.send.poll_capacity(cx)) {
                Some(Ok(_)) => {}
                Some(Err(e)) => return Poll::Ready(Err(to_io(e))),
                None => return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
            }
        }
        let n = self.send.capacity().min(buf.len());
        let data = Bytes::copy_from_slice(&buf[..n]);
        self.send.send_data(data, false).map_err(to_io)?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// END_STREAM: the client's side of the stream is done.
    fn poll_shutdown(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        let _ = self.send.send_data(Bytes::new(), true);
        Poll::Ready(Ok(()))
    }
}
