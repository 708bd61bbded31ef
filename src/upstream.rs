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

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::config::{Backend, BackendTls, Route};
use crate::ops::metrics::Metrics;
use crate::proxy::error::ProxyError;
use crate::tls::backend::{self as backend_tls, BackendTlsConfigs};
use crate::ws::relay::{poll_read_tcp, RelayRead};

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
    stream: tokio_rustls::client::TlsStream<TcpStream>,
    /// The backend, as logs name it.
    label: String,
    /// Whether a TLS failure was logged already.
    logged: bool,
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

/// Dials backends; holds what dialing needs beyond the route itself.
#[derive(Debug, Clone)]
pub struct Connector {
    /// Where the in-process `builtin:echo` server listens.
    builtin_echo: Option<SocketAddr>,
    /// rustls client configs for TLS backends, shared by all clones.
    tls: std::sync::Arc<BackendTlsConfigs>,
    /// Where connect latency and errors are counted.
    metrics: std::sync::Arc<Metrics>,
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
        Connector {
            builtin_echo,
            tls: Default::default(),
            metrics: Default::default(),
        }
    }

    /// The metrics this connector counts into (shared with the gateway).
    pub fn metrics(&self) -> &std::sync::Arc<Metrics> {
        &self.metrics
    }

    /// Counts into `metrics` instead of a private set.
    pub fn with_metrics(self, metrics: std::sync::Arc<Metrics>) -> Self {
        Connector { metrics, ..self }
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
            match self.connect(backend, route).await {
                Ok(stream) => return Ok((stream, backend)),
                Err(e) => {
                    backend_skipped(route, backend, &e);
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or(ProxyError::NoBackend))
    }

    /// Connects to one backend of `route` within its `connect_timeout`,
    /// TLS handshake included.
    pub async fn connect(
        &self,
        backend: &Backend,
        route: &Route,
    ) -> Result<BackendStream, ProxyError> {
        let label = backend_label(backend);
        let timeout = route.connect_timeout;
        let (host, port, tls) = match backend {
            Backend::BuiltinEcho => {
                let addr = self
                    .builtin_echo
                    .ok_or_else(|| ProxyError::BackendConnect {
                        backend: label.clone(),
                        source: io::Error::new(io::ErrorKind::NotFound, "builtin echo not running"),
                    })?;
                (addr.ip().to_string(), addr.port(), false)
            }
            Backend::Remote(remote) => (remote.host.clone(), remote.port, remote.tls),
        };
        let dial = async {
            let stream = TcpStream::connect((host.as_str(), port))
                .await
                .map_err(|source| ProxyError::BackendConnect {
                    backend: label.clone(),
                    source,
                })?;
            stream.set_nodelay(true).ok();
            match tls {
                false => Ok(BackendStream::Plain(stream)),
                true => {
                    self.tls_handshake(stream, &host, &route.backend_tls, &label)
                        .await
                }
            }
        };
        let started = std::time::Instant::now();
        let result = tokio::time::timeout(timeout, dial).await.unwrap_or(Err(
            ProxyError::BackendConnectTimeout {
                backend: label.clone(),
                timeout,
            },
        ));
        let error = result.as_ref().err();
        self.metrics
            .backend_connect(&label, started.elapsed(), error);
        result
    }

    /// Runs the TLS handshake with a backend; any failure, certificate
    /// verification included, is a [`ProxyError::BackendTls`].
    async fn tls_handshake(
        &self,
        stream: TcpStream,
        host: &str,
        settings: &BackendTls,
        label: &str,
    ) -> Result<BackendStream, ProxyError> {
        let failed = |reason: String| ProxyError::BackendTls {
            backend: label.to_string(),
            reason,
        };
        let config = self.tls.get(settings).map_err(failed)?;
        let name = backend_tls::server_name(settings, host).map_err(failed)?;
        let tls = backend_tls::handshake(config, name, stream)
            .await
            .map_err(|e| failed(e.to_string()))?;
        Ok(BackendStream::Tls(Box::new(TlsBackend {
            stream: tls,
            label: label.to_string(),
            logged: false,
        })))
    }
}

/// Opens an HTTP/1.1 client connection on a connected backend stream and
/// drives it in its own task, which ends by itself: after the response (or
/// the upgrade, which it supports), or when sender and response are dropped.
pub async fn http1_sender<B>(
    stream: BackendStream,
    backend: &str,
) -> Result<hyper::client::conn::http1::SendRequest<B>, ProxyError>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (sender, connection) = hyper::client::conn::http1::Builder::new()
        .handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .map_err(|e| ProxyError::backend_protocol(backend, &e))?;
    tokio::spawn(async move {
        if let Err(e) = connection.with_upgrades().await {
            tracing::debug!(error = %e, "backend connection ended with an error");
        }
    });
    Ok(sender)
}

/// The log line for a backend passed over for the next one.
pub fn backend_skipped(route: &Route, backend: &Backend, error: &ProxyError) {
    tracing::warn!(route = %route.name, backend = %backend_label(backend), error = %error, "backend failed, trying the next");
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
            BackendStream::Tls(s) => {
                let result = Pin::new(&mut s.stream).poll_read(cx, buf);
                s.note(&result);
                result
            }
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
