//! A backend that refused the upgrade: its answer goes to the client as
//! it is, body included, with hyper's client doing the body's framing
//! (length, chunks, or until close).
//!
//! The head has already been read and parsed by the gateway, so hyper is
//! handed a stream that replays what was read and then continues with the
//! socket; the request it sends is swallowed (the backend has it already).
//! This is the rare path: the task and channel hyper's client needs are
//! spent only on a refusal, never on an accepted upgrade.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::{Buf as _, Bytes};
use http::{Request, Response};
use hyper::body::Incoming;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::http::body::empty;
use crate::http::error::ProxyError;
use crate::upstream::{http1_sender, BackendStream};

/// The backend's answer as hyper's client reads it: `read` (the head and
/// whatever followed it) first, then the socket. Nothing is readable until
/// hyper has written its request: an answer before any request is one
/// hyper refuses ("unexpected message").
struct Replay {
    read: Bytes,
    stream: BackendStream,
    /// Whether hyper has written (and we have swallowed) its request.
    requested: bool,
    /// A read that came before the request, woken by the request's write.
    waiting: Option<Waker>,
}

impl AsyncRead for Replay {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.requested {
            this.waiting = Some(cx.waker().clone());
            return Poll::Pending;
        }
        if this.read.is_empty() {
            return Pin::new(&mut this.stream).poll_read(cx, buf);
        }
        let n = this.read.len().min(buf.remaining());
        buf.put_slice(&this.read[..n]);
        this.read.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Replay {
    /// The request was sent already: what hyper writes is dropped.
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.requested = true;
        if let Some(waker) = this.waiting.take() {
            waker.wake();
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// The refusal `read` starts with, as a response whose body streams from
/// the backend.
pub(super) async fn answer(
    stream: BackendStream,
    read: Bytes,
    path: &str,
    backend: &str,
) -> Result<Response<Incoming>, ProxyError> {
    let replay = Replay {
        read,
        stream,
        requested: false,
        waiting: None,
    };
    let mut sender = http1_sender(replay, backend).await?;
    let mut request = Request::new(empty());
    *request.uri_mut() = path.parse().unwrap_or_default();
    sender
        .send_request(request)
        .await
        .map_err(|e| ProxyError::backend_protocol(backend, &e))
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    /// A refusal whose head was read with part of its chunked body, the
    /// rest still on the socket: hyper gets the whole body, de-chunked.
    #[tokio::test]
    async fn a_refusal_read_in_part_streams_its_whole_body() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ours = TcpStream::connect(listener.local_addr().unwrap());
        let (ours, accepted) = tokio::join!(ours, listener.accept());
        let (mut theirs, _) = accepted.unwrap();
        let read = Bytes::from_static(
            b"HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\nX-Why: no\r\n\r\n4\r\nnot ",
        );
        theirs
            .write_all(b"\r\n7\r\nallowed\r\n0\r\n\r\n")
            .await
            .unwrap();
        let stream = BackendStream::Plain(ours.unwrap());
        let response = answer(stream, read, "/chat", "test").await.unwrap();
        assert_eq!(response.status(), 403);
        assert_eq!(response.headers()["x-why"], "no");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"not allowed");
    }
}
