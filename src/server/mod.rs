//! Accept loops and per-connection HTTP/1.1 serving.
//!
//! Each accepted connection is one task the drain tracks: for a TLS listener
//! it first runs the handshake (bounded by `handshake_timeout`), then hyper
//! with upgrades enabled; a WebSocket leaves hyper at its 101 and continues
//! as a relay task the drain tracks separately. A plain listener with
//! `redirect_https` answers every request with a redirect instead. The
//! admin listener is served here too ([`admin`]), and a cluster's peer
//! listener ([`peer`]).
//!
//! Plain listeners answer pending ACME HTTP-01 challenges ahead of routes
//! and redirects ([`http01`]); a TLS listener closes an ACME TLS-ALPN-01
//! validation connection right after its handshake.
//!
//! A connection over a limit gets its 503/429 in the listener's own
//! protocol: on a TLS listener after a TLS handshake, since a plain HTTP
//! answer inside a TLS connection reaches no client. That handshake holds a
//! refusal slot and is bounded by the refusal deadline, so refusals stay
//! bounded in number and time. Every refusal, and every slow or oversized
//! request head cut here, is counted in `wsgate_limit_refusals_total`.

pub mod admin;
pub mod http01;
pub mod peer;
mod plain_on_tls;
pub mod redirect;
mod refuse;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Request, Response};
use hyper::body::Incoming;
use hyper::service::{service_fn, Service};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::gateway::{dispatch, Gateway};
use crate::http::body::Body;
use crate::http::client::ClientInfo;
use crate::limits::{self, Admission, Answer, ConnectionPermit, Limit, Refusal, RefusalPermit};
use crate::tls::listener::{Accepted, HandshakeError, TlsListener};
use plain_on_tls::FirstByte;

/// Pause after a failed `accept` (e.g. out of file descriptors) so the loop
/// does not spin while the condition lasts.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// How long closing an ACME validation connection (close_notify) may take.
const VALIDATION_CLOSE: Duration = Duration::from_secs(1);

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
    let handshake = tokio::time::timeout(limits::REFUSAL_READ_TIMEOUT, tls.handshake(stream));
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
            let client = ClientInfo { peer, tls: false };
            serve_proxy(stream, client, None, gateway, permit).await
        }
        Frontend::RedirectHttps(port) => {
            let challenges = gateway.acme_challenges.clone();
            let service = service_fn(move |req| {
                let response = http01::answer(&challenges, &req)
                    .unwrap_or_else(|| redirect::redirect(&req, port));
                async move { Ok::<_, Infallible>(response) }
            });
            serve_http(stream, service, peer, &gateway).await
        }
        Frontend::Tls(tls) => serve_tls(stream, peer, tls, gateway, permit).await,
    }
}

/// A TLS connection: its first byte checked (plain HTTP gets a 400 naming
/// https://), then the handshake, then the proxy. Everything before the
/// proxy is bounded by the listener's `handshake_timeout`.
async fn serve_tls(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Arc<TlsListener>,
    gateway: Arc<Gateway>,
    permit: ConnectionPermit,
) {
    let timeout = tls.handshake_timeout();
    let deadline = tokio::time::Instant::now() + timeout;
    let closing = gateway.shutdown.closing().clone();
    let sniffed = tokio::select! {
        sniffed = tokio::time::timeout_at(deadline, plain_on_tls::first_byte(&stream)) => sniffed,
        _ = closing.cancelled() => return,
    };
    match sniffed {
        Err(_) => return handshake_failed(&gateway, peer, HandshakeError::Timeout(timeout)),
        Ok(Ok(FirstByte::Other)) => {
            tracing::info!(client = %peer, "plain HTTP on a TLS port; answered 400");
            let local = stream.local_addr().unwrap_or(peer);
            let metrics = gateway.metrics.clone();
            return plain_on_tls::answer(stream, local, metrics, deadline).await;
        }
        // A read error or an early close: the handshake reports it.
        Ok(_) => {}
    }
    let handshake = tokio::select! {
        result = tokio::time::timeout_at(deadline, tls.handshake(stream)) => {
            result.unwrap_or(Err(HandshakeError::Timeout(timeout)))
        }
        _ = closing.cancelled() => return,
    };
    match handshake {
        Ok(accepted) => serve_accepted(accepted, peer, &tls, gateway, permit).await,
        Err(e) => handshake_failed(&gateway, peer, e),
    }
}

/// Serves a completed TLS handshake: an ACME TLS-ALPN-01 validation is
/// only closed (the handshake itself was the answer); anything else is
/// proxied, with the verified client certificate's subject when the
/// listener asks for it.
async fn serve_accepted(
    accepted: Accepted,
    peer: SocketAddr,
    tls: &TlsListener,
    gateway: Arc<Gateway>,
    permit: ConnectionPermit,
) {
    if accepted.is_acme_validation() {
        tracing::debug!(client = %peer, "ACME TLS-ALPN-01 validation handshake answered; closing");
        let mut stream = accepted.stream;
        let _ = tokio::time::timeout(VALIDATION_CLOSE, stream.shutdown()).await;
        return;
    }
    let identity = tls.subject_header().map(|header| Identity {
        header: header.clone(),
        subject: accepted
            .subject
            .and_then(|s| HeaderValue::from_str(&s).ok()),
    });
    let client = ClientInfo { peer, tls: true };
    serve_proxy(accepted.stream, client, identity, gateway, permit).await
}

/// Counts and logs a client TLS handshake that did not complete.
fn handshake_failed(gateway: &Gateway, peer: SocketAddr, error: HandshakeError) {
    gateway.metrics.tls_handshake_failed();
    if let HandshakeError::Timeout(_) = error {
        let limit = Limit::TlsHandshakeTimeout.label();
        gateway.metrics.limit_refused(limit, Answer::Closed.label());
    }
    tracing::info!(client = %peer, error = %error, "TLS handshake failed; connection closed")
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

/// Serves the proxy on a (plain or decrypted) connection.
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
        let gateway = svc_gateway.clone();
        let challenge = (!client.tls)
            .then(|| http01::answer(&gateway.acme_challenges, &req))
            .flatten();
        async move {
            match challenge {
                Some(response) => Ok(response),
                None => dispatch::handle(gateway, req, client).await,
            }
        }
    });
    serve_http(io, service, client.peer, &gateway).await
}

/// Runs hyper's HTTP/1.1 server with upgrades on one connection, and
/// counts the limits a client ran into when hyper cut it.
async fn serve_http<IO, S>(io: IO, service: S, peer: SocketAddr, gateway: &Gateway)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Service<Request<Incoming>, Response = Response<Body>, Error = Infallible>,
{
    let served = Arc::new(AtomicBool::new(false));
    let service = {
        let served = served.clone();
        service_fn(move |req| {
            served.store(true, Ordering::Relaxed);
            service.call(req)
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .max_header_size(gateway.settings.limits.max_header_size)
        .header_read_timeout(gateway.settings.header_read_timeout);
    let connection = builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = gateway.shutdown.closing().cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = &result {
        if let Some((limit, answer)) = limit_hit(e, served.load(Ordering::Relaxed)) {
            gateway.metrics.limit_refused(limit.label(), answer.label());
        }
    }
    match result {
        Err(e) if e.is_parse() || e.is_parse_too_large() || e.is_timeout() => {
            tracing::info!(client = %peer, error = %e, "bad or incomplete request; connection closed");
        }
        Err(e) => tracing::debug!(client = %peer, error = %e, "connection ended with an error"),
        Ok(()) => {}
    }
}

/// The limit behind hyper ending a connection with `error`, if any, and
/// what the client got: a request head over `max_header_size` (hyper
/// answered 431), or no first request head within `header_read_timeout`
/// (slowloris, or a connection opened and never used). hyper runs the same
/// timer on a kept-alive connection waiting for its next request; once a
/// request was `served`, that cut is ordinary idling and not counted.
fn limit_hit(error: &hyper::Error, served: bool) -> Option<(Limit, Answer)> {
    if error.is_parse_too_large() {
        Some((Limit::HeaderSize, Answer::Answered))
    } else if error.is_timeout() && !served {
        Some((Limit::HeaderReadTimeout, Answer::Closed))
    } else {
        None
    }
}
