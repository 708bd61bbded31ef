//! A connected backend stream, plain or TLS, as both the HTTP client and
//! the relay read and write it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::net::short_read::{poll_read_tcp, RelayRead};

/// A connected backend stream.
#[derive(Debug)]
pub enum BackendStream {
    /// Plain TCP (`ws://`, `http://`, `builtin:echo`).
    Plain(TcpStream),
    /// TLS over TCP (`wss://`, `https://`); boxed because the TLS state is
    /// large and most backends are plain.
    Tls(Box<TlsBackend>),
}

/// A TLS backend stream that logs a TLS failure after the handshake.
///
/// In TLS 1.3 a backend judges our client certificate (or its absence)
/// only after our side of the handshake is done, so its refusal — an alert
/// such as `CertificateRequired` — arrives on the first read, where hyper
/// reports it as a bare "connection error". The rustls reason is logged
/// here, once, so the operator sees why the backend hung up.
#[derive(Debug)]
pub struct TlsBackend {
    /// The TLS session.
    pub(super) stream: tokio_rustls::client::TlsStream<TcpStream>,
    /// The backend, as logs name it.
    pub(super) label: String,
    /// Whether a TLS failure was logged already.
    pub(super) logged: bool,
}

impl TlsBackend {
    /// Logs `error` if rustls raised it and nothing was logged yet.
    fn note<T>(&mut self, result: &Poll<io::Result<T>>) {
        let Poll::Ready(Err(error)) = result else {
            return;
        };
        let tls = error
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>());
        if let (Some(tls), false) = (tls, self.logged) {
            self.logged = true;
            tracing::warn!(backend = %self.label, reason = "backend_tls", error = %tls, "backend TLS failed after the handshake");
        }
    }
}

impl AsyncRead for BackendStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BackendStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            BackendStream::Tls(s) => {
                let result = Pin::new(&mut s.stream).poll_read(cx, buf);
                s.note(&result);
                result
            }
        }
    }
}

impl crate::net::splice_tcp::SpliceTcp for BackendStream {
    fn splice_tcp(&self) -> Option<&TcpStream> {
        match self {
            BackendStream::Plain(s) => Some(s),
            BackendStream::Tls(_) => None,
        }
    }
}

impl RelayRead for BackendStream {
    fn poll_relay_read(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self {
            BackendStream::Plain(s) => poll_read_tcp(s, cx, buf),
            BackendStream::Tls(_) => Pin::new(self).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for BackendStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            BackendStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            BackendStream::Tls(s) => {
                let result = Pin::new(&mut s.stream).poll_write(cx, buf);
                s.note(&result);
                result
            }
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            BackendStream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            BackendStream::Tls(s) => Pin::new(&mut s.stream).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            BackendStream::Plain(s) => s.is_write_vectored(),
            BackendStream::Tls(s) => s.stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BackendStream::Plain(s) => Pin::new(s).poll_flush(cx),
            BackendStream::Tls(s) => Pin::new(&mut s.stream).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BackendStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            BackendStream::Tls(s) => Pin::new(&mut s.stream).poll_shutdown(cx),
        }
    }
}
