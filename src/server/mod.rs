//! Accept loops and per-connection serving.
//!
//! Each accepted connection is one task the drain tracks: for a TLS listener
//! it first runs the handshake ([`tls`], bounded by `handshake_timeout`),
//! then the HTTP that ALPN settled on: hyper's HTTP/1.1 server with
//! upgrades ([`h1`]) or its HTTP/2 server with extended CONNECT ([`h2`]).
//! Plain listeners speak HTTP/1.1 only. A WebSocket leaves hyper at its 101
//! (or, over HTTP/2, its 200) and continues as a relay task the drain tracks
//! separately. A plain listener with `redirect_https` answers every request
//! with a redirect instead. The admin listener is served here too
//! ([`admin`]), and a cluster's peer listener ([`peer`]). Who the client is
//! — the socket peer, or the client a trusted proxy names — is settled per
//! connection and request ([`edge`]).
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
mod h1;
mod h2;
pub mod http01;
pub mod peer;
mod plain_on_tls;
pub mod redirect;
mod refuse;
mod tls;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Request};
use hyper::body::Incoming;
use hyper::service::service_fn;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::gateway::{dispatch, Gateway};
use crate::http::client::{ClientInfo, Connection, HttpVersion};
use crate::limits::{Admission, Answer, ConnectionPermit};
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
        // A TLS connection's HTTP is settled by ALPN after the handshake.
        http: HttpVersion::Http1,
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
            h1::serve(stream, service, peer, &gateway).await
        }
        // Boxed for the same reason as HTTP/2 in `serve_proxy`: a plain
        // connection's task would otherwise carry the TLS future's size.
        Frontend::Tls(listener) => {
            Box::pin(tls::serve(stream, listener, served, gateway, permit)).await
        }
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
    let (peer, http) = (served.connection.peer, served.connection.http);
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
    // HTTP/2's serve future is boxed: inline, its size would be carried by
    // every HTTP/1.1 connection's task too, and that larger short-lived
    // allocation per upgrade left the heap more fragmented under the
    // relays that outlive it (about 1 KiB of RSS per idle WebSocket).
    match http {
        HttpVersion::Http1 => h1::serve(io, service, peer, &gateway).await,
        HttpVersion::Http2 => Box::pin(h2::serve(io, service, peer, &gateway)).await,
    }
}
