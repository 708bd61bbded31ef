//! One side's stream after the 101, with hyper's wrapper taken off.
//!
//! hyper hands an upgraded connection over as [`Upgraded`]: the stream boxed
//! behind a trait object, plus the bytes hyper had already read past the
//! handshake. Relaying through that costs an allocation and a dynamic call
//! per read and write for the whole life of the connection. When the stream
//! is of a known type it is unboxed here; the bytes hyper had read are served
//! first. Any other stream keeps hyper's wrapper, which is always correct:
//! one a TLS layer wrapped, or an HTTP/2 stream after an extended CONNECT
//! (hyper's upgraded h2 stream: DATA frames under the stream's flow control,
//! EOF on the client's END_STREAM or a RST_STREAM(CANCEL), an error on
//! other resets; a shutdown sends END_STREAM).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf as _, Bytes};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::net::short_read::RelayRead;

/// An upgraded stream, unwrapped to `T` where possible.
#[derive(Debug)]
pub enum Leg<T> {
    /// The stream itself.
    Raw(T),
    /// The stream, after bytes hyper read past the 101 (rare: a peer that
    /// sent frames in the same segment as the handshake).
    Prefaced(Box<(Bytes, T)>),
    /// A stream of another type, still in hyper's wrapper.
    Upgraded(TokioIo<Upgraded>),
}

impl<T> Leg<T> {
    /// `io`, after `preface`: bytes already read from it past the handshake.
    pub fn prefaced(preface: Bytes, io: T) -> Self {
        match preface.is_empty() {
            true => Self::Raw(io),
            false => Self::Prefaced(Box::new((preface, io))),
        }
    }
}

impl<T> Leg<T>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    /// Unwraps `upgraded` if it is a `TokioIo<T>`.
    pub fn new(upgraded: Upgraded) -> Self {
        match upgraded.downcast::<TokioIo<T>>() {
            Ok(parts) if parts.read_buf.is_empty() => Self::Raw(parts.io.into_inner()),
            Ok(parts) => Self::Prefaced(Box::new((parts.read_buf, parts.io.into_inner()))),
            Err(upgraded) => Self::Upgraded(TokioIo::new(upgraded)),
        }
    }
}

impl<T: RelayRead> AsyncRead for Leg<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Raw(io) => io.poll_relay_read(cx, buf),
            Self::Prefaced(prefaced) => {
                let (preface, io) = &mut **prefaced;
                if preface.is_empty() {
                    return io.poll_relay_read(cx, buf);
                }
                let n = preface.len().min(buf.remaining());
                buf.put_slice(&preface[..n]);
                preface.advance(n);
                Poll::Ready(Ok(()))
            }
            Self::Upgraded(io) => Pin::new(io).poll_read(cx, buf),
        }
    }
}

/// Calls the same `AsyncWrite` method on whichever stream the leg holds
/// (a `match`, not a trait object: no dynamic call on the hot path).
macro_rules! on_writer {
    ($leg:expr, $io:ident => $call:expr) => {
        match $leg.get_mut() {
            Leg::Raw($io) => $call,
            Leg::Prefaced(prefaced) => {
                let $io = &mut prefaced.1;
                $call
            }
            Leg::Upgraded($io) => $call,
        }
    };
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Leg<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        on_writer!(self, io => Pin::new(io).poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        on_writer!(self, io => Pin::new(io).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        on_writer!(self, io => Pin::new(io).poll_shutdown(cx))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        on_writer!(self, io => Pin::new(io).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Raw(io) => io.is_write_vectored(),
            Self::Prefaced(prefaced) => prefaced.1.is_write_vectored(),
            Self::Upgraded(io) => io.is_write_vectored(),
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn bytes_hyper_read_come_first() {
        let (mut peer, ours) = duplex(64);
        let mut leg = Leg::Prefaced(Box::new((Bytes::from_static(b"early "), ours)));
        peer.write_all(b"late").await.unwrap();
        drop(peer);
        let mut got = String::new();
        leg.read_to_string(&mut got).await.unwrap();
        assert_eq!(got, "early late");
    }
}
