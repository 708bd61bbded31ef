//! Reaching backends: round-robin order, connect timeouts, skipping refusers.
//!
//! Both the WebSocket path and plain HTTP forwarding dial through here, so a
//! backend that refuses connections is handled the same way for both: it is
//! skipped for the next one *before* anything is sent to the client, and only
//! when every backend failed does the caller answer 502 (or 504 when the last
//! failure was a timeout).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::config::{Backend, Route};
use crate::proxy::error::ProxyError;

/// A connected backend stream.
#[derive(Debug)]
pub enum BackendStream {
    /// Plain TCP (`ws://`, `http://`, `builtin:echo`).
    Plain(TcpStream),
}

/// Dials backends; holds what dialing needs beyond the route itself.
#[derive(Debug, Clone)]
pub struct Connector {
    /// Where the in-process `builtin:echo` server listens.
    builtin_echo: Option<SocketAddr>,
}

/// A route's round-robin position, kept beside the immutable route.
#[derive(Debug, Default)]
pub struct Balancer {
    /// Index of the backend the next request starts with.
    next: AtomicUsize,
}

impl Balancer {
    /// Backends of `route` in the order this request should try them: each
    /// request starts one further along, the rest follow as fallbacks.
    pub fn order<'r>(&self, route: &'r Route) -> impl Iterator<Item = &'r Backend> {
        let n = route.backends.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n.max(1);
        (0..n).map(move |i| &route.backends[(start + i) % n])
    }
}

impl Connector {
    /// A connector; `builtin_echo` is the address of the in-process echo server.
    pub fn new(builtin_echo: Option<SocketAddr>) -> Self {
        Connector { builtin_echo }
    }

    /// Connects to the first backend of `route` that accepts, in balancer
    /// order. Returns the stream and the backend it reached.
    pub async fn connect_any<'r>(
        &self,
        route: &'r Route,
        balancer: &Balancer,
    ) -> Result<(BackendStream, &'r Backend), ProxyError> {
        let mut last = None;
        for backend in balancer.order(route) {
            match self.connect(backend, route.connect_timeout).await {
                Ok(stream) => return Ok((stream, backend)),
                Err(e) => {
                    tracing::warn!(route = %route.name, backend = %backend_label(backend), error = %e, "backend connect failed");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or(ProxyError::NoBackend))
    }

    /// Connects to one backend within `timeout`.
    pub async fn connect(
        &self,
        backend: &Backend,
        timeout: Duration,
    ) -> Result<BackendStream, ProxyError> {
        let label = backend_label(backend);
        let (host, port) = match backend {
            Backend::BuiltinEcho => {
                let addr = self
                    .builtin_echo
                    .ok_or_else(|| ProxyError::BackendConnect {
                        backend: label.clone(),
                        source: io::Error::new(io::ErrorKind::NotFound, "builtin echo not running"),
                    })?;
                (addr.ip().to_string(), addr.port())
            }
            Backend::Remote(remote) if remote.tls => {
                return Err(ProxyError::BackendTlsUnsupported { backend: label })
            }
            Backend::Remote(remote) => (remote.host.clone(), remote.port),
        };
        let dial = TcpStream::connect((host.as_str(), port));
        let stream = match tokio::time::timeout(timeout, dial).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(source)) => {
                return Err(ProxyError::BackendConnect {
                    backend: label,
                    source,
                })
            }
            Err(_) => {
                return Err(ProxyError::BackendConnectTimeout {
                    backend: label,
                    timeout,
                })
            }
        };
        stream.set_nodelay(true).ok();
        Ok(BackendStream::Plain(stream))
    }
}

/// How a backend is named in logs, errors and metric labels.
pub fn backend_label(backend: &Backend) -> String {
    match backend {
        Backend::BuiltinEcho => "builtin:echo".to_string(),
        Backend::Remote(remote) => remote.url.clone(),
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
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            BackendStream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            BackendStream::Plain(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BackendStream::Plain(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BackendStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
