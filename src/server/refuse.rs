//! The answer an over-limit connection gets: one short HTTP response (503,
//! or 429 for the per-address limit) with `Retry-After`, then close. It
//! works on plain TCP and inside TLS alike, and it is held to a tight read
//! deadline and a small head buffer: an over-limit client gets no
//! generosity.

use std::convert::Infallible;

use http::Request;
use hyper::body::Incoming;
use hyper::rt::{Read, Write};
use hyper_util::rt::TokioTimer;

use std::sync::Arc;

use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::Frontend;
use crate::config::MIN_HEADER_BUF;
use crate::gateway::Gateway;
use crate::http::error::ProxyError;
use crate::limits::{Refusal, RefusalPermit, REFUSAL_READ_TIMEOUT};

/// Answers an over-limit connection with its refusal, inside TLS on a TLS
/// listener. The TLS handshake is held to [`REFUSAL_READ_TIMEOUT`]
/// (or the listener's shorter `handshake_timeout`) and to the refusal slot
/// `permit`, like the answer itself.
pub(super) async fn connection(
    stream: TcpStream,
    frontend: Frontend,
    refusal: Refusal,
    permit: RefusalPermit,
    gateway: Arc<Gateway>,
) {
    let Frontend::Tls(tls) = frontend else {
        return answer(TokioIo::new(stream), refusal, permit).await;
    };
    // ALPN settles on http/1.1 whatever the listener offers: the one
    // refusal is always an HTTP/1.1 answer.
    let handshake = tls.handshake_for_refusal(stream);
    let handshake = tokio::time::timeout(REFUSAL_READ_TIMEOUT, handshake);
    match handshake.await {
        Ok(Ok(accepted)) => answer(TokioIo::new(accepted.stream), refusal, permit).await,
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

/// Answers every request on `io` with `refusal` and closes: keep-alive off,
/// a short head deadline, a small head buffer. The refusal slot `permit` is
/// held until the answer is out.
pub(super) async fn answer<I>(io: I, refusal: Refusal, permit: RefusalPermit)
where
    I: Read + Write + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |_req: Request<Incoming>| async move {
        Ok::<_, Infallible>(ProxyError::OverLimit(refusal).to_response())
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .keep_alive(false)
        .max_buf_size(MIN_HEADER_BUF)
        .max_header_size(MIN_HEADER_BUF)
        .header_read_timeout(REFUSAL_READ_TIMEOUT);
    let result = tokio::time::timeout(
        REFUSAL_READ_TIMEOUT * 2,
        builder.serve_connection(io, service),
    )
    .await;
    drop(permit);
    if let Ok(Err(e)) = result {
        tracing::debug!(error = %e, "refused connection ended with an error");
    }
}
