//! The peer listener (`[cluster] bind`): other instances forward fallback
//! requests here, as HTTP/2 over TCP, each request signed.
//!
//! It is bounded like any listener that faces a network: at most
//! [`MAX_PEER_CONNECTIONS`] connections at once (more are closed at
//! accept), and a connection that has not sent one authentic request
//! within [`PEER_AUTH_TIMEOUT`], or sends one that fails authentication,
//! is closed. Each refusal is counted in `wsgate_cluster_refusals_total`.
//! A genuine peer needs one connection (HTTP/2 multiplexes its requests),
//! so the bound leaves plenty of room for a large cluster.
//!
//! The drain treats it as a public listener: it accepts until the
//! listeners stop (so a draining owner still serves its sessions' 1012s),
//! and its connections close gracefully with the others.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::gateway::session::{serve_peer, PeerOutcome};
use crate::gateway::Gateway;

/// Peer connections held at once.
pub const MAX_PEER_CONNECTIONS: usize = 256;

/// A new connection must send an authentic request within this.
pub const PEER_AUTH_TIMEOUT: Duration = Duration::from_secs(5);

/// Concurrent requests on one peer connection: every held poll and event
/// stream of every session forwarded from that peer is one.
pub const PEER_MAX_STREAMS: u32 = 100_000;

/// Ping interval on peer connections; an unanswered ping closes them.
const PEER_KEEPALIVE: Duration = Duration::from_secs(10);

/// Pause after a failed `accept` (e.g. out of file descriptors).
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// Accepts peer connections until the drain stops the listeners.
pub async fn accept_loop(listener: TcpListener, gateway: Arc<Gateway>) {
    let slots = Arc::new(Semaphore::new(MAX_PEER_CONNECTIONS));
    let stop = gateway.shutdown.accepting_stopped().clone();
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "peer listener: accept failed");
                tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            count(&gateway, "peer_connection_limit");
            tracing::warn!(%remote, limit = MAX_PEER_CONNECTIONS, "peer connection refused: too many peer connections");
            continue;
        };
        let task = serve(stream, remote, gateway.clone(), slot);
        gateway.shutdown.track_connection(task);
    }
}

/// Counts a refused or cut peer connection.
fn count(gateway: &Gateway, reason: &'static str) {
    if let Some(cluster) = &gateway.cluster {
        cluster.count_refusal(reason);
    }
}

/// What one connection's requests tell its task.
#[derive(Default)]
struct Verdicts {
    /// Some request was authentic.
    authentic: AtomicBool,
    /// Some request failed authentication.
    refused: Notify,
}

/// Serves one peer connection until it closes, is refused, or the drain
/// closes it.
async fn serve(
    stream: TcpStream,
    remote: SocketAddr,
    gateway: Arc<Gateway>,
    slot: OwnedSemaphorePermit,
) {
    stream.set_nodelay(true).ok();
    let verdicts = Arc::new(Verdicts::default());
    let service = {
        let (gateway, verdicts) = (gateway.clone(), verdicts.clone());
        service_fn(move |req| {
            let (gateway, verdicts) = (gateway.clone(), verdicts.clone());
            async move {
                let (response, outcome) = serve_peer(gateway, req, remote).await;
                match outcome {
                    PeerOutcome::Served => verdicts.authentic.store(true, Ordering::Relaxed),
                    PeerOutcome::Refused => verdicts.refused.notify_one(),
                }
                Ok::<_, Infallible>(response)
            }
        })
    };
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(PEER_MAX_STREAMS)
        .keep_alive_interval(PEER_KEEPALIVE)
        .keep_alive_timeout(PEER_KEEPALIVE);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let deadline = tokio::time::sleep(PEER_AUTH_TIMEOUT);
    tokio::pin!(deadline);
    let (mut timed, mut closing) = (false, false);
    let result = loop {
        tokio::select! {
            result = connection.as_mut() => break result,
            () = &mut deadline, if !timed => {
                timed = true;
                if !verdicts.authentic.load(Ordering::Relaxed) {
                    count(&gateway, "peer_auth_timeout");
                    tracing::warn!(%remote, "peer connection closed: no authentic request in time");
                    return;
                }
            }
            () = verdicts.refused.notified() => connection.as_mut().graceful_shutdown(),
            _ = gateway.shutdown.closing().cancelled(), if !closing => {
                closing = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(%remote, error = %e, "peer connection ended with an error");
    }
    drop(slot);
}
