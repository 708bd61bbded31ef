//! Reads that tell the runtime a socket is drained without asking the kernel.
//!
//! tokio learns that a socket has nothing more to read only from a read
//! that fails with `WouldBlock`, so a relay that reads 200 bytes, forwards
//! them and reads again pays a second `recv` per batch just to hear "empty".
//! A TCP `recv` that returns less than it was offered has already emptied
//! the receive queue, so that second call can be skipped: the read is done
//! inside `try_io` and a short result is reported to tokio as `WouldBlock`,
//! which clears the readiness — but only for the readiness event observed
//! *before* the `recv`. Data that arrives afterwards is a new event, so it
//! is never missed. (nginx makes the same inference with `EPOLLRDHUP`.)

use std::io;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, Interest, ReadBuf};
use tokio::net::TcpStream;

/// A stream the relay reads from. The default is a plain `poll_read`; TCP
/// streams skip the extra `recv` after a short read.
pub trait RelayRead: AsyncRead + Unpin {
    /// As [`AsyncRead::poll_read`].
    fn poll_relay_read(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        std::pin::Pin::new(self).poll_read(cx, buf)
    }
}

impl RelayRead for TcpStream {
    fn poll_relay_read(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        poll_read_tcp(self, cx, buf)
    }
}

#[cfg(test)]
impl RelayRead for tokio::io::DuplexStream {}

/// Reads from `tcp`; a short read also marks it as not readable.
pub fn poll_read_tcp(
    tcp: &TcpStream,
    cx: &mut Context<'_>,
    buf: &mut ReadBuf<'_>,
) -> Poll<io::Result<()>> {
    loop {
        ready!(tcp.poll_read_ready(cx))?;
        let space = buf.initialize_unfilled();
        let offered = space.len();
        let mut got = 0;
        let read = tcp.try_io(Interest::READABLE, || {
            got = tcp.try_read(space)?;
            if got > 0 && got < offered {
                // Drained: let tokio clear the readiness seen before the read.
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(got)
        });
        match read {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && got == 0 => continue,
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => return Poll::Ready(Err(e)),
            _ => {
                buf.advance(got);
                return Poll::Ready(Ok(()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    use super::*;

    /// One read; a lost wake-up shows as a timeout, not a hung test.
    async fn read_some(tcp: &TcpStream, buf: &mut [u8]) -> usize {
        let mut read_buf = ReadBuf::new(buf);
        let read = std::future::poll_fn(|cx| poll_read_tcp(tcp, cx, &mut read_buf));
        tokio::time::timeout(std::time::Duration::from_secs(10), read)
            .await
            .expect("data that was sent wakes the reader")
            .unwrap();
        read_buf.filled().len()
    }

    /// After a short read marked the socket drained, data sent later still
    /// wakes the reader; a full read leaves the rest readable; EOF is 0.
    #[tokio::test]
    async fn short_reads_never_lose_a_wake_up() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut writer = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (reader, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 8];
        for round in 0..200u32 {
            let message = round.to_be_bytes();
            writer.write_all(&message).await.unwrap();
            assert_eq!(read_some(&reader, &mut buf).await, 4);
            assert_eq!(buf[..4], message);
        }
        writer.write_all(&[7; 12]).await.unwrap();
        let mut total = 0;
        while total < 12 {
            total += read_some(&reader, &mut buf).await;
        }
        assert_eq!(total, 12);
        drop(writer);
        assert_eq!(read_some(&reader, &mut buf).await, 0);
    }
}
