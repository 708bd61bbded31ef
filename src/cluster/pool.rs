//! Connections to peers: one HTTP/2 connection per owner, shared by every
//! request forwarded to it (held polls and event streams are streams on
//! it, not connections), made on first use and again when it breaks.
//!
//! HTTP/2 over plain TCP ("prior knowledge"): every request is signed
//! (`auth`), and HTTP/2 multiplexes the long-held requests of thousands
//! of sessions onto one socket. Keepalive pings find a peer that vanished
//! without closing the connection (a host gone, a partition).

use std::collections::HashMap;
use std::io;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;

/// How long connecting to a peer may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Ping interval on peer connections, busy or idle.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// A ping unanswered for this long closes the connection.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a request did not get an answer.
#[derive(Debug)]
pub enum SendError {
    /// No connection could be made.
    Connect(io::Error),
    /// The connection failed under the request.
    Request(hyper::Error),
}

/// The open connection to each peer, by its advertised address.
#[derive(Debug, Default)]
pub struct Pool {
    connections: Mutex<HashMap<String, SendRequest<Full<Bytes>>>>,
}

impl Pool {
    /// Sends `req` to `peer` on its pooled connection, connecting first if
    /// there is none (or it closed).
    pub async fn send(
        &self,
        peer: &str,
        req: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, SendError> {
        let mut sender = match self.pooled(peer) {
            Some(sender) => sender,
            None => self.connect(peer).await.map_err(SendError::Connect)?,
        };
        sender.ready().await.map_err(SendError::Request)?;
        sender.send_request(req).await.map_err(SendError::Request)
    }

    /// Forgets the connection to `peer` (after it failed under a request).
    pub fn evict(&self, peer: &str) {
        self.lock().remove(peer);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, SendRequest<Full<Bytes>>>> {
        self.connections.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The pooled connection to `peer`, if it is still open.
    fn pooled(&self, peer: &str) -> Option<SendRequest<Full<Bytes>>> {
        let mut connections = self.lock();
        match connections.get(peer) {
            Some(sender) if !sender.is_closed() => Some(sender.clone()),
            Some(_) => {
                connections.remove(peer);
                None
            }
            None => None,
        }
    }

    /// Connects to `peer` and pools the connection. Two requests racing
    /// here may both connect; the later one is kept, both work.
    async fn connect(&self, peer: &str) -> io::Result<SendRequest<Full<Bytes>>> {
        let connect = TcpStream::connect(peer);
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(io::Error::other)?;
        let name = peer.to_string();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(peer = %name, error = %e, "peer connection ended");
            }
        });
        self.lock().insert(peer.to_string(), sender.clone());
        Ok(sender)
    }
}
