//! Accept loops and per-connection serving.
//!
//! Each accepted connection is one task the drain tracks: for a TLS listener
//! it first runs the handshake (bounded by `handshake_timeout`), then the
//! HTTP that ALPN settled on: hyper's HTTP/1.1 server with upgrades
//! ([`h1`]) or its HTTP/2 server with extended CONNECT ([`h2`]). Plain
//! listeners speak HTTP/1.1 only. A WebSocket leaves hyper at its 101 (or,
//! over HTTP/2, its 200) and continues as a relay task the drain tracks
//! separately. A plain listener with `redirect_https` answers every request
//! with a redirect instead. The admin listener is served here too
//! ([`admin`]).
//!
//! A connection over a limit gets its 503/429 in the listener's own
//! protocol: on a TLS listener after a TLS handshake, since a plain HTTP
//! answer inside a TLS connection reaches no client. That handshake holds a
//! refusal slot and is bounded by the refusal deadline, so refusals stay
//! bounded in number and time. Every refusal, and every slow or oversized
//! request head cut here, is counted in `wsgate_limit_refusals_total`.

pub mod admin;
mod h1;
mod h2;
pub mod redirect;
mod refuse;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Request};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::gateway::{dispatch, Gateway};
use crate::http::client::{ClientInfo, HttpVersion};
use crate::limits::{self, Admission, Answer, ConnectionPermit, Limit, Refusal, RefusalPermit};
use crate::tls::listener::{AppProtocol, HandshakeError, TlsListener};

/// Pause after a failed `accept` (e.g. out of file descriptors) so the loop
/// does not spin while the condition lasts.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// What a listener does with the connections it accepts.
#[derive(Debug, Clone)]
pub enum Frontend {
    /// Plain HTTP, proxied.
    Plain,
    /// Plain HTTP, every request redirected to `https://` on this port.
    RedirectHttps(u16),
    /// TLS terminated here, then proxied.
    Tls(Arc<TlsListener>),
}

/// Accepts connections until `stop` is cancelled, then hands the socket
/// back (a config reload restarts a listener without closing it).
pub async fn accept_loop(
    listener: TcpListener,
    frontend: Frontend,
    gateway: Arc<Gateway>,
    stop: CancellationToken,
) -> TcpListener {
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return listener,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => admit(stream, peer, &frontend, &gateway),
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
            }
        }
    }
}

/// Serves an accepted connection, or refuses it when it is over a limit.
fn admit(stream: TcpStream, peer: SocketAddr, frontend: &Frontend, gateway: &Arc<Gateway>) {
    let metrics = &gateway.metrics;
    match gateway.limits.admit(peer.ip()) {
        Admission::Admit(permit) => {
            let task = serve_connection(stream, peer, frontend.clone(), gateway.clone(), permit);
            gateway.shutdown.track_connection(task);
        }
        Admission::Refuse(refusal, permit) => {
            metrics.limit_refused(refusal.reason(), Answer::Answered.label());
            tracing::warn!(client = %peer, reason = refusal.reason(), "connection refused: over limit");
            let task = refuse(stream, frontend.clone(), refusal, permit, gateway.clone());
            gateway.shutdown.track_connection(task);
        }
        Admission::Drop(refusal) => {
            drop(stream);
            metrics.limit_refused(refusal.reason(), Answer::Closed.label());
            tracing::debug!(client = %peer, reason = refusal.reason(), "connection closed: over limit, refusal slots full");
        }
    }
}

/// Answers an over-limit connection with its refusal, inside TLS on a TLS
/// listener. The TLS handshake is held to [`limits::REFUSAL_READ_TIMEOUT`]
/// (or the listener's shorter `handshake_timeout`) and to the refusal slot
/// `permit`, like the answer itself.
async fn refuse(
    stream: TcpStream,
    frontend: Frontend,
    refusal: Refusal,
    permit: RefusalPermit,
    gateway: Arc<Gateway>,
) {
    let Frontend::Tls(tls) = frontend else {
        return refuse::answer(TokioIo::new(stream), refusal, permit).await;
    };
    let handshake = tls.handshake_for_refusal(stream);
    let handshake = tokio::time::timeout(limits::REFUSAL_READ_TIMEOUT, handshake);
    match handshake.await {
        Ok(Ok(accepted)) => refuse::answer(TokioIo::new(accepted.stream), refusal, permit).await,
        Ok(Err(e)) => {
            gateway.metrics.tls_handshake_failed();
            tracing::debug!(error = %e, "refused connection: TLS handshake failed");
        }
        Err(_) => {
            gateway.metrics.tls_handshake_failed();
            tracing::debug!("refused connection: TLS handshake not completed in time");
        }
    }
}

/// Serves one accepted connection until it closes, upgrades, or the
/// gateway drains (then in-flight requests finish first). The limit permit
/// rides along in each request's extensions, so an upgraded WebSocket's
/// relay keeps the connection's slot after hyper lets go.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    frontend: Frontend,
    gateway: Arc<Gateway>,
    permit: ConnectionPermit,
) {
    stream.set_nodelay(true).ok();
    match frontend {
        Frontend::Plain => {
            let client = ClientInfo {
                peer,
                tls: false,
                http: HttpVersion::Http1,
            };
            serve_proxy(stream, client, None, gateway, permit).await
        }
        Frontend::RedirectHttps(port) => {
            let service = service_fn(move |req| async move {
                Ok::<_, Infallible>(redirect::redirect(&req, port))
            });
            h1::serve(stream, service, peer, &gateway).await
        }
        Frontend::Tls(tls) => serve_tls(stream, peer, tls, gateway, permit).await,
    }
}

/// Runs the TLS handshake, then serves the HTTP that ALPN settled on.
async fn serve_tls(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Arc<TlsListener>,
    gateway: Arc<Gateway>,
    permit: ConnectionPermit,
) {
    let handshake = tokio::select! {
        result = tls.handshake(stream) => result,
        _ = gateway.shutdown.closing().cancelled() => return,
    };
    match handshake {
        Ok(accepted) => {
            let identity = tls.subject_header().map(|header| Identity {
                header: header.clone(),
                subject: accepted
                    .subject
                    .and_then(|s| HeaderValue::from_str(&s).ok()),
            });
            let http = match accepted.protocol {
                AppProtocol::Http1 => HttpVersion::Http1,
                AppProtocol::Http2 => HttpVersion::Http2,
            };
            let client = ClientInfo {
                peer,
                tls: true,
                http,
            };
            serve_proxy(accepted.stream, client, identity, gateway, permit).await
        }
        Err(e) => {
            gateway.metrics.tls_handshake_failed();
            if let HandshakeError::Timeout(_) = e {
                let limit = Limit::TlsHandshakeTimeout.label();
                gateway.metrics.limit_refused(limit, Answer::Closed.label());
            }
            tracing::info!(client = %peer, error = %e, "TLS handshake failed; connection closed")
        }
    }
}

/// The verified client certificate subject, and the header it travels in.
#[derive(Debug, Clone)]
struct Identity {
    /// `client_subject_header`.
    header: HeaderName,
    /// The subject; `None` when the client presented no certificate.
    subject: Option<HeaderValue>,
}

impl Identity {
    /// Replaces whatever the client sent in the header with the verified
    /// subject, so a backend can trust the header.
    fn apply(&self, headers: &mut http::HeaderMap) {
        headers.remove(&self.header);
        if let Some(subject) = &self.subject {
            headers.insert(self.header.clone(), subject.clone());
        }
    }
}

/// Serves the proxy on a (plain or decrypted) connection, in the client's
/// HTTP.
async fn serve_proxy<IO>(
    io: IO,
    client: ClientInfo,
    identity: Option<Identity>,
    gateway: Arc<Gateway>,
    permit: ConnectionPermit,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc_gateway = gateway.clone();
    let permit = Arc::new(permit);
    let service = service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(permit.clone());
        if let Some(identity) = &identity {
            identity.apply(req.headers_mut());
        }
        dispatch::handle(svc_gateway.clone(), req, client)
    });
    match client.http {
        HttpVersion::Http1 => h1::serve(io, service, client.peer, &gateway).await,
        HttpVersion::Http2 => h2::serve(io, service, client.peer, &gateway).await,
    }
}
