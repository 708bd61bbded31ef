//! HTTP/1.1 on one connection: hyper's server with upgrades, and the limits
//! a client ran into when hyper cut it (a request head over
//! `max_header_size`, or none within `header_read_timeout`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::{service_fn, Service};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::gateway::Gateway;
use crate::http::body::Body;
use crate::limits::{Answer, Limit};

/// Runs hyper's HTTP/1.1 server with upgrades on one connection, and
/// counts the limits a client ran into when hyper cut it.
pub(super) async fn serve<IO, S>(io: IO, service: S, peer: SocketAddr, gateway: &Gateway)
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
