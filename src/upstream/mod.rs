//! Reaching backends: balancing, connect timeouts, backend TLS, skipping
//! refusers.
//!
//! Both the WebSocket path and plain HTTP forwarding dial through here, so a
//! backend that refuses connections is handled the same way for both: it is
//! skipped for the next one *before* anything is sent to the client, and only
//! when every backend failed does the caller answer 502 (or 504 when the last
//! failure was a timeout).
//!
//! Which backend a connection goes to is decided per route by its
//! `balance`, from each backend's live state: open connections, health
//! checks, failed dials. That state lives in a [`Registry`] that outlives
//! route tables, so it survives reloads; docs/balancing.md has the rules.
//!
//! ```text
//! balance   the order a request tries a route's backends
//! sticky    the sticky cookie's value, and ip_hash's rendezvous score
//! state     one backend's count and health; the lease that counts
//! registry  every backend's state by identity, across reloads; /backends
//! health    active health checks, one task per backend
//! stream    a connected backend stream, plain or TLS
//! tls       rustls client configs for wss:// and https:// backends
//! ```

pub mod balance;
pub mod health;
pub mod registry;
pub mod state;
pub mod sticky;
pub mod stream;
pub mod tls;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpStream;

use crate::config::{Backend, BackendTls, Route};
use crate::http::error::ProxyError;
use crate::telemetry::metrics::Metrics;
pub use balance::{Balancer, Plan};
pub use registry::Registry;
pub use state::Lease;
pub use stream::BackendStream;
use stream::TlsBackend;
use tls::BackendTlsConfigs;

/// Dials backends; holds what dialing needs beyond the route itself.
#[derive(Debug, Clone)]
pub struct Connector {
    /// Where the in-process `builtin:echo` server listens.
    builtin_echo: Option<SocketAddr>,
    /// rustls client configs for TLS backends, shared by all clones.
    tls: Arc<BackendTlsConfigs>,
    /// Where connect latency and errors are counted.
    metrics: Arc<Metrics>,
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
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Counts into `metrics` instead of a private set.
    pub fn with_metrics(self, metrics: Arc<Metrics>) -> Self {
        Connector { metrics, ..self }
    }

    /// Connects to the first backend of `plan` that accepts. Returns the
    /// stream and the lease that counts the connection on its backend.
    pub async fn connect_any(
        &self,
        route: &Route,
        plan: &Plan,
    ) -> Result<(BackendStream, Lease), ProxyError> {
        let mut last = None;
        for (tried, lease) in plan.attempts().enumerate() {
            match self.connect(&lease.state().backend, route).await {
                Ok(stream) => return Ok((stream, lease)),
                Err(e) => {
                    backend_skipped(route, &lease, &e, tried + 1 < plan.len());
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or(ProxyError::NoBackend))
    }

    /// Connects to one backend of `route` within its `connect_timeout`,
    /// TLS handshake included, and counts the attempt on `/metrics`.
    pub async fn connect(
        &self,
        backend: &Backend,
        route: &Route,
    ) -> Result<BackendStream, ProxyError> {
        let started = std::time::Instant::now();
        let result = self.dial(backend, route).await;
        let reason = result.as_ref().err().map(ProxyError::reason);
        self.metrics
            .backend_connect(&backend_label(backend), started.elapsed(), reason);
        result
    }

    /// Connects to one backend of `route` within its `connect_timeout`,
    /// TLS handshake included; counts nothing (health checks dial this way).
    pub async fn dial(
        &self,
        backend: &Backend,
        route: &Route,
    ) -> Result<BackendStream, ProxyError> {
        self.connect_to(backend, route.connect_timeout, &route.backend_tls)
            .await
    }

    /// Connects to `backend` within `timeout`, TLS handshake included,
    /// verified as `tls_settings` says; counts nothing. What dialling a
    /// route's backend and its forward-auth service have in common.
    pub async fn connect_to(
        &self,
        backend: &Backend,
        timeout: std::time::Duration,
        tls_settings: &BackendTls,
    ) -> Result<BackendStream, ProxyError> {
        let label = backend_label(backend);
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
                    self.tls_handshake(stream, &host, tls_settings, &label)
                        .await
                }
            }
        };
        tokio::time::timeout(timeout, dial).await.unwrap_or(Err(
            ProxyError::BackendConnectTimeout {
                backend: label.clone(),
                timeout,
            },
        ))
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
        let name = tls::server_name(settings, host).map_err(failed)?;
        let tls = tls::handshake(config, name, stream)
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
pub async fn http1_sender<B, S>(
    stream: S,
    backend: &str,
) -> Result<hyper::client::conn::http1::SendRequest<B>, ProxyError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
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

/// A backend failed before it answered and is passed over: logged — with
/// a backend `left` to try it says so; after the last one it is only a
/// debug line, since the request's own rejection line names the failure —
/// and when the dial itself failed (refused, timed out) the backend is out
/// of rotation for a while ([`state::UNREACHABLE_FOR`]).
pub fn backend_skipped(route: &Route, lease: &Lease, error: &ProxyError, left: bool) {
    let state = lease.state();
    let backend = &state.label;
    if left {
        tracing::warn!(route = %route.name, %backend, error = %error, "backend failed, trying the next");
    } else {
        tracing::debug!(route = %route.name, %backend, error = %error, "backend failed; no other backend to try");
    }
    if matches!(
        error,
        ProxyError::BackendConnect { .. } | ProxyError::BackendConnectTimeout { .. }
    ) {
        state.unreachable(tokio::time::Instant::now());
    }
}

/// How a backend is named in logs, errors and metric labels.
pub fn backend_label(backend: &Backend) -> String {
    match backend {
        Backend::BuiltinEcho => "builtin:echo".to_string(),
        Backend::Remote(remote) => remote.url.clone(),
    }
}
