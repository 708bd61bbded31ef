//! `builtin:echo`: an in-process backend so the default config works with
//! nothing else running.
//!
//! It is a real, separate WebSocket server (tokio-tungstenite) on an
//! ephemeral loopback port, dialed like any other backend, so the demo
//! exercises the whole path: handshake checks, dial, 101, relay. WebSocket
//! messages are echoed back; a plain GET gets the demo page.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;

use futures_util::{SinkExt, StreamExt};
use http::{header, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

use crate::http::body::{empty, full, Body};
use crate::ws::handshake::{accept_key, offered_protocols};

/// The demo page: opens a socket to the echo route and shows the transport.
const DEMO_PAGE: &str = include_str!("demo.html");

/// Starts the echo server on `127.0.0.1:0`; it stops when `stop` fires.
pub async fn start(stop: CancellationToken) -> io::Result<SocketAddr> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let (stream, _) = tokio::select! {
                _ = stop.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(_) => continue,
                },
            };
            let service = service_fn(answer);
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            tokio::spawn(connection);
        }
    });
    Ok(addr)
}

/// Upgrades WebSocket requests to an echo session; serves the page otherwise.
async fn answer(mut req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let Some(key) = req
        .headers()
        .get(header::SEC_WEBSOCKET_KEY)
        .and_then(|k| k.to_str().ok())
    else {
        return Ok(demo_page());
    };
    let mut response = Response::new(empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept_key(key)).unwrap_or(HeaderValue::from_static("")),
    );
    if let Some(first) = offered_protocols(req.headers()).first() {
        if let Ok(protocol) = HeaderValue::from_str(first) {
            headers.insert(header::SEC_WEBSOCKET_PROTOCOL, protocol);
        }
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        if let Ok(upgraded) = on_upgrade.await {
            let ws =
                WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
            echo(ws).await;
        }
    });
    Ok(response)
}

/// Sends every text and binary message back; tungstenite answers pings and
/// the close handshake itself.
async fn echo<S>(ws: WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut sink, mut stream) = ws.split();
    while let Some(Ok(message)) = stream.next().await {
        if (message.is_text() || message.is_binary()) && sink.send(message).await.is_err() {
            break;
        }
    }
    let _ = sink.close().await;
}

/// The demo page response.
fn demo_page() -> Response<Body> {
    let mut response = Response::new(full(DEMO_PAGE));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}
