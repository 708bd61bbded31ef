//! Accept loops and per-connection HTTP/1.1 serving.
//!
//! Each accepted connection is one task the drain tracks: for a TLS listener
//! it first runs the handshake ([`tls`], bounded by `handshake_timeout`),
//! then hyper with upgrades enabled; a WebSocket leaves hyper at its 101 and
//! continues as a relay task the drain tracks separately. A plain listener
//! with `redirect_https` answers every request with a redirect instead. The
//! admin listener is served here too ([`admin`]), and a cluster's peer
//! listener ([`peer`]). Who the client is — the socket peer, or the client a
//! trusted proxy names — is settled per connection and request ([`edge`]).
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
pub mod edge;
pub mod http01;
pub mod peer;
mod plain_on_tls;
pub mod redirect;
mod refuse;
mod tls;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Request, Response};
use hyper::body::Incoming;
use hyper::service::{service_fn, Service};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::gateway::{dispatch, Gateway};
use crate::http::body::Body;
use crate::http::client::{ClientInfo, Connection};
use crate::limits::{Admission, Answer, ConnectionPermit, Limit};
use crate::tls::listener::TlsListener;
pub use edge::Edge;
use edge::Entry;

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
    edge: Edge,
    gateway: Arc<Gateway>,
    stop: CancellationToken,
) -> TcpListener {
    let edge = Arc::new(edge);
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return listener,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => admit(stream, peer, &frontend, &edge, &gateway),
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
            }
        }
    }
}

/// Serves an accepted connection, or refuses it when it is over a limit.
/// A trusted balancer's connection first reads its PROXY header, then is
/// counted under the client that header names.
fn admit(
    stream: TcpStream,
    peer: SocketAddr,
    frontend: &Frontend,
    edge: &Arc<Edge>,
    gateway: &Arc<Gateway>,
) {
    let limits = &gateway.limits;
    let connection = Connection {
        peer,
        proxied: None,
        tls: matches!(frontend, Frontend::Tls(_)),
    };
    let entry = edge.entry(peer.ip());
    let admission = match entry {
        Entry::Direct | Entry::Sniffed => limits.admit(peer.ip()),
        Entry::Proxy => limits.admit_proxy(),
        Entry::ProxyHeader => {
            let (frontend, edge, shared) = (frontend.clone(), edge.clone(), gateway.clone());
            let task = async move {
                let gateway = shared;
                let mut stream = stream;
                let Some(proxied) = edge::read_proxy_header(&mut stream, peer, &gateway).await
                else {
                    return;
                };
                let admission = match proxied {
                    Some(client) => gateway.limits.admit(client.ip()),
                    None => gateway.limits.admit_proxy(),
                };
                let connection = Connection {
                    proxied,
                    ..connection
                };
                let entered = Entered {
                    connection,
                    entry,
                    frontend,
                    edge,
                };
                enter(stream, entered, admission, &gateway);
            };
            return gateway.shutdown.track_connection(task);
        }
    };
    let entered = Entered {
        connection,
        entry,
        frontend: frontend.clone(),
        edge: edge.clone(),
    };
    enter(stream, entered, admission, gateway);
}

/// An accepted connection whose peer (and client, if a PROXY header named
/// one) is known.
struct Entered {
    connection: Connection,
    entry: Entry,
    frontend: Frontend,
    edge: Arc<Edge>,
}

/// Serves or refuses a connection as its admission says.
fn enter(stream: TcpStream, entered: Entered, admission: Admission, gateway: &Arc<Gateway>) {
    let metrics = &gateway.metrics;
    let client = entered
        .connection
        .proxied
        .unwrap_or(entered.connection.peer);
    match admission {
        Admission::Admit(permit) => {
            let task = serve_connection(stream, entered, gateway.clone(), permit);
            gateway.shutdown.track_connection(task);
        }
        Admission::Refuse(refusal, permit) => {
            metrics.limit_refused(refusal.reason(), Answer::Answered.label());
            tracing::warn!(%client, reason = refusal.reason(), "connection refused: over limit");
            let task =
                refuse::connection(stream, entered.frontend, refusal, permit, gateway.clone());
            gateway.shutdown.track_connection(task);
        }
        Admission::Drop(refusal) => {
            drop(stream);
            metrics.limit_refused(refusal.reason(), Answer::Closed.label());
            tracing::debug!(%client, reason = refusal.reason(), "connection closed: over limit, refusal slots full");
        }
    }
}

/// Serves one accepted connection until it closes, upgrades, or the
/// gateway drains (then in-flight requests finish first). The limit permit
/// rides along in each request's extensions, so an upgraded WebSocket's
/// relay keeps the connection's slot after hyper lets go.
async fn serve_connection(
    stream: TcpStream,
    entered: Entered,
    gateway: Arc<Gateway>,
    permit: ConnectionPermit,
) {
    stream.set_nodelay(true).ok();
    let Entered {
        connection,
        entry,
        frontend,
        edge,
    } = entered;
    let peer = connection.peer;
    if entry == Entry::Sniffed && !edge::untrusted_may_proceed(&stream, peer, &gateway).await {
        return;
    }
    let served = Served {
        connection,
        edge,
        identity: None,
    };
    match frontend {
        Frontend::Plain => serve_proxy(stream, served, gateway, permit).await,
        Frontend::RedirectHttps(port) => {
            let challenges = gateway.acme_challenges.clone();
            let service = service_fn(move |req| {
                let response = http01::answer(&challenges, &req)
                    .unwrap_or_else(|| redirect::redirect(&req, port));
                async move { Ok::<_, Infallible>(response) }
            });
            serve_http(stream, service, peer, &gateway).await
        }
        Frontend::Tls(listener) => tls::serve(stream, listener, served, gateway, permit).await,
    }
}

/// What every request on a served connection shares.
struct Served {
    /// The peer, and the client a PROXY header named.
    connection: Connection,
    /// Whose forwarding headers to believe.
    edge: Arc<Edge>,
    /// The verified client certificate, on a TLS listener that asks.
    identity: Option<Identity>,
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

/// Serves the proxy on a (plain or decrypted) connection; each request's
/// client is established from the connection and its own headers.
async fn serve_proxy<IO>(io: IO, served: Served, gateway: Arc<Gateway>, permit: ConnectionPermit)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc_gateway = gateway.clone();
    let permit = Arc::new(permit);
    let peer = served.connection.peer;
    let service = service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(permit.clone());
        if let Some(identity) = &served.identity {
            identity.apply(req.headers_mut());
        }
        let client = ClientInfo::resolve(&served.connection, req.headers(), &served.edge.trusted);
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
    serve_http(io, service, peer, &gateway).await
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
