//! A TLS listener's connections: a plain-HTTP first byte gets a 400 naming
//! https:// ([`super::plain_on_tls`]), then the handshake (bounded by the
//! listener's `handshake_timeout`, abandoned when the drain closes
//! connections), then the proxy — in the HTTP that ALPN settled on — with
//! the client certificate's subject, or just a close for an ACME TLS-ALPN-01
//! validation.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::plain_on_tls::{self, FirstByte};
use super::{serve_proxy, Identity, Served};
use crate::gateway::Gateway;
use crate::http::client::{Connection, HttpVersion};
use crate::limits::{Answer, ConnectionPermit, Limit};
use crate::tls::listener::{Accepted, AppProtocol, HandshakeError, TlsListener};

/// How long closing an ACME validation connection (close_notify) may take.
const VALIDATION_CLOSE: Duration = Duration::from_secs(1);

/// A TLS connection: its first byte checked (plain HTTP gets a 400 naming
/// https://), then the handshake, then the proxy. Everything before the
/// proxy is bounded by the listener's `handshake_timeout`.
pub(super) async fn serve(
    stream: TcpStream,
    tls: Arc<TlsListener>,
    served: Served,
    gateway: Arc<Gateway>,
    permit: ConnectionPermit,
) {
    let peer = served.connection.peer;
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
        Ok(accepted) => serve_accepted(accepted, &tls, served, gateway, permit).await,
        Err(e) => handshake_failed(&gateway, peer, e),
    }
}

/// Serves a completed TLS handshake: an ACME TLS-ALPN-01 validation is
/// only closed (the handshake itself was the answer); anything else is
/// proxied, with the verified client certificate's subject when the
/// listener asks for it.
async fn serve_accepted(
    accepted: Accepted,
    tls: &TlsListener,
    served: Served,
    gateway: Arc<Gateway>,
    permit: ConnectionPermit,
) {
    let peer = served.connection.peer;
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
    let http = match accepted.protocol {
        AppProtocol::Http1 => HttpVersion::Http1,
        AppProtocol::Http2 => HttpVersion::Http2,
    };
    let connection = Connection {
        http,
        ..served.connection
    };
    let served = Served {
        connection,
        identity,
        ..served
    };
    serve_proxy(accepted.stream, served, gateway, permit).await
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
