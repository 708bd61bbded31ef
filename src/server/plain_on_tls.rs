//! Plain HTTP sent to a TLS port (`http://host:8443/`). Every TLS
//! connection starts with a handshake record, first byte 0x16; a request
//! line starts with a letter. Such a client gets `400 Bad Request` in plain
//! HTTP naming the `https://` URL — nginx's "The plain HTTP request was
//! sent to HTTPS port" — instead of a TLS alert its browser shows as an
//! unreadable error. The answer is counted and bounded by the listener's
//! `handshake_timeout`, like the handshake it replaces.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{header, Request};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::config::MIN_HEADER_BUF;
use crate::http::error::ProxyError;
use crate::telemetry::metrics::Metrics;

/// The first byte of every TLS connection: record type "handshake".
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// What the client's first byte says it speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FirstByte {
    /// A TLS handshake record: go on with the handshake.
    Tls,
    /// Anything else: most likely a plain HTTP request.
    Other,
    /// The client closed before sending anything.
    Closed,
}

/// Peeks at the first byte without taking it off the socket.
pub(super) async fn first_byte(stream: &TcpStream) -> io::Result<FirstByte> {
    let mut byte = [0u8; 1];
    Ok(match stream.peek(&mut byte).await? {
        0 => FirstByte::Closed,
        _ if byte[0] == TLS_HANDSHAKE_RECORD => FirstByte::Tls,
        _ => FirstByte::Other,
    })
}

/// Answers the plain request(s) on `stream` with 400 naming the https://
/// URL, then closes; gives up at `deadline`. `local` names the URL when the
/// request has no Host header.
pub(super) async fn answer(
    stream: TcpStream,
    local: SocketAddr,
    metrics: Arc<Metrics>,
    deadline: Instant,
) {
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        metrics.plain_http_on_tls();
        let error = ProxyError::PlainHttpOnTls {
            url: https_url(&req, local),
        };
        std::future::ready(Ok::<_, Infallible>(error.to_response()))
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .keep_alive(false)
        .max_buf_size(MIN_HEADER_BUF)
        .max_header_size(MIN_HEADER_BUF);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    match tokio::time::timeout_at(deadline, connection).await {
        Ok(Err(e)) => tracing::debug!(error = %e, "plain HTTP on a TLS port: bad request"),
        Err(_) => tracing::debug!("plain HTTP on a TLS port: no request head in time"),
        Ok(Ok(())) => {}
    }
}

/// The URL the client meant: its Host header (else the listener's
/// address) and its path, with `https://`.
fn https_url<B>(req: &Request<B>, local: SocketAddr) -> String {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| local.to_string(), str::to_owned);
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    format!("https://{host}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_names_host_and_path() {
        let local = SocketAddr::from(([127, 0, 0, 1], 8443));
        let req = Request::get("/chat?room=1")
            .header("host", "example.com:8443")
            .body(())
            .unwrap();
        assert_eq!(
            https_url(&req, local),
            "https://example.com:8443/chat?room=1"
        );
        let bare = Request::get("/").body(()).unwrap();
        assert_eq!(https_url(&bare, local), "https://127.0.0.1:8443/");
    }
}
