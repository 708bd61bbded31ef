//! Accept loops and per-connection HTTP/1.1 serving.
//!
//! Each accepted connection is one tracked task running hyper with upgrades
//! enabled; a WebSocket leaves hyper at its 101 and continues as a relay
//! task tracked by [`gateway::Gateway::relays`].

pub mod gateway;
pub mod service;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::limits::{self, Admission, ConnectionPermit};
use crate::proxy::headers::ClientInfo;
use gateway::Gateway;

/// Pause after a failed `accept` (e.g. out of file descriptors) so the loop
/// does not spin while the condition lasts.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// Accepts connections until `stop` is cancelled.
pub async fn accept_loop(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    stop: CancellationToken,
    connections: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => match gateway.limits.admit(peer.ip()) {
                Admission::Admit(permit) => {
                    connections.spawn(serve_connection(stream, peer, gateway.clone(), permit));
                }
                Admission::Refuse(refusal, permit) => {
                    tracing::warn!(client = %peer, reason = refusal.reason(), "connection refused: over limit");
                    connections.spawn(limits::refuse(TokioIo::new(stream), refusal, permit));
                }
                Admission::Drop => drop(stream),
            },
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
            }
        }
    }
}

/// Serves HTTP/1.1 on one plain connection until it closes, upgrades, or
/// the gateway drains (then in-flight requests finish first). The permit
/// rides along in each request's extensions, so an upgraded WebSocket's
/// relay keeps the connection's slot after hyper lets go.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    gateway: Arc<Gateway>,
    permit: ConnectionPermit,
) {
    stream.set_nodelay(true).ok();
    let client = ClientInfo { peer, tls: false };
    let svc_gateway = gateway.clone();
    let permit = Arc::new(permit);
    let service = service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(permit.clone());
        service::handle(svc_gateway.clone(), req, client)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .max_header_size(gateway.settings.limits.max_header_size)
        .header_read_timeout(gateway.settings.header_read_timeout);
    let connection = builder
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = gateway.shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    match result {
        Err(e) if e.is_parse() || e.is_parse_too_large() || e.is_timeout() => {
            tracing::info!(client = %peer, error = %e, "bad or incomplete request; connection closed");
        }
        Err(e) => tracing::debug!(client = %peer, error = %e, "connection ended with an error"),
        Ok(()) => {}
    }
}
