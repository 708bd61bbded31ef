//! The two halves of one stream, as `tokio::io::split` makes them, plus a
//! look at the stream itself: the pump asks whether it is a plain TCP
//! socket, to splice large payloads (see [`splice`](super::splice)).
//!
//! Like tokio's, both halves share the stream behind one mutex; both live
//! in the same relay task, so the lock is never contended.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::splice::SpliceTcp;

/// One half of a split stream.
pub(super) struct Half<T>(Arc<Mutex<T>>);

/// Splits `stream` into a read half and a write half.
pub(super) fn split<T>(stream: T) -> (Half<T>, Half<T>) {
    let shared = Arc::new(Mutex::new(stream));
    (Half(shared.clone()), Half(shared))
}

impl<T> Half<T> {
    fn lock(&self) -> MutexGuard<'_, T> {
        // A panic while the stream was held leaves it as it was; go on.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A half whose stream may be a plain TCP socket.
pub(super) trait WithTcp {
    /// Calls `f` with the TCP socket under the stream, if it may be spliced.
    fn with_tcp<R>(&self, f: impl FnOnce(Option<&TcpStream>) -> R) -> R;
}

impl<T: SpliceTcp> WithTcp for Half<T> {
    fn with_tcp<R>(&self, f: impl FnOnce(Option<&TcpStream>) -> R) -> R {
        f(self.lock().splice_tcp())
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Half<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.lock()).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Half<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.lock()).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.lock()).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.lock()).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.lock()).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.lock().is_write_vectored()
    }
}
