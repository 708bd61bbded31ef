//! WebSockets over HTTP/2 (RFC 8441) for the load generator: several
//! WebSockets share each TLS connection, as a browser's do, each one an
//! extended CONNECT stream whose DATA frames carry the WebSocket frames.
//!
//! [`H2Sessions`] hands out streams: the first `per_conn` on one HTTP/2
//! connection, the next ones on a new connection, and so on. A stream is an
//! [`H2Io`], a byte stream like a TCP one, so the WebSocket client on top
//! is the same for both.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use h2::client::SendRequest;
use h2::{RecvStream, SendStream};
use http::{Method, Request, StatusCode};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

use crate::client::Target;

/// The client's receive window per stream and per connection: large, so
/// that the proxy's send side, not the client, sets the pace.
const STREAM_WINDOW: u32 = 1 << 20;
const CONN_WINDOW: u32 = 16 << 20;

/// HTTP/2 connections shared by the WebSockets of one run.
pub struct H2Sessions {
    /// Streams per connection.
    per_conn: usize,
    /// The connection new streams go to, and how many it carries.
    current: Mutex<Option<(SendRequest<Bytes>, usize)>>,
}

impl H2Sessions {
    /// Up to `per_conn` WebSockets per connection.
    pub fn new(per_conn: usize) -> Arc<H2Sessions> {
        Arc::new(H2Sessions {
            per_conn: per_conn.max(1),
            current: Mutex::new(None),
        })
    }

    /// Opens a WebSocket on `target`'s path: an extended CONNECT on the
    /// current connection (a new one when it is full).
    pub async fn open(&self, target: &Target) -> io::Result<H2Io> {
        let send = {
            let mut current = self.current.lock().await;
            let full = current.as_ref().is_none_or(|(_, n)| *n >= self.per_conn);
            if full {
                *current = Some((connect(target).await?, 0));
            }
            let (send, n) = current.as_mut().expect("a connection");
            *n += 1;
            send.clone()
        };
        let mut send = send.ready().await.map_err(to_io)?;
        let uri = format!("https://{}{}", target.authority, target.path);
        let request = Request::builder()
            .method(Method::CONNECT)
            .uri(uri)
            .extension(h2::ext::Protocol::from("websocket"))
            .header("sec-websocket-version", "13")
            .body(())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let (response, stream) = send.send_request(request, false).map_err(to_io)?;
        let response = response.await.map_err(to_io)?;
        if response.status() != StatusCode::OK {
            let refused = format!("extended CONNECT refused: {}", response.status());
            return Err(io::Error::new(io::ErrorKind::InvalidData, refused));
        }
        Ok(H2Io {
            send: stream,
            recv: response.into_body(),
            pending: Bytes::new(),
        })
    }
}

/// A new TLS connection with ALPN `h2` and its HTTP/2 handshake; waits
/// until the server allowed extended CONNECT.
async fn connect(target: &Target) -> io::Result<SendRequest<Bytes>> {
    let Some(tls) = &target.tls else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "h2 needs TLS"));
    };
    let tcp = TcpStream::connect(target.addr).await?;
    tcp.set_nodelay(true)?;
    let name = ServerName::IpAddress(target.addr.ip().into());
    let io = tls.connect(name, tcp).await?;
    let (send, connection) = h2::client::Builder::new()
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONN_WINDOW)
        .handshake(io)
        .await
        .map_err(to_io)?;
    tokio::spawn(connection);
    let mut send = send.ready().await.map_err(to_io)?;
    for _ in 0..500 {
        if send.is_extended_connect_protocol_enabled() {
            return Ok(send);
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        send = send.ready().await.map_err(to_io)?;
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "no SETTINGS_ENABLE_CONNECT_PROTOCOL",
    ))
}

fn to_io(e: h2::Error) -> io::Error {
    io::Error::other(e)
}

/// One extended CONNECT stream as a byte stream.
pub struct H2Io {
    send: SendStream<Bytes>,
    recv: RecvStream,
    /// Received bytes not read yet.
    pending: Bytes,
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
        self.send
            .send_data(Bytes::copy_from_slice(&buf[..n]), false)
            .map_err(to_io)?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        let _ = self.send.send_data(Bytes::new(), true);
        Poll::Ready(Ok(()))
    }
}
