//! The pump's I/O: writing the accepted run and the gateway's own frames to
//! the destination, and reading the source into a pooled buffer that is
//! given back (parked) as soon as everything read has been forwarded.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::Instant;

use super::{Injected, Mode, Pump, Then, CARRY_CAP};
use crate::ws::relay::pool::{Buf, Size};

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Pump<R, W> {
    /// Writes the accepted run; one write call per contiguous batch.
    pub(super) async fn write_run(&mut self) -> io::Result<()> {
        while self.out < self.pos {
            if self.dst_dead {
                self.out = self.pos;
                break;
            }
            let Some(buf) = &self.buf else { break };
            match self.dst.write(&buf[self.out..self.pos]).await {
                Ok(0) => return Err(self.dst_failed(io::ErrorKind::WriteZero.into())),
                Err(e) => return Err(self.dst_failed(e)),
                Ok(n) => {
                    self.out += n;
                    self.needs_flush = true;
                    self.last_forward = Instant::now();
                }
            }
        }
        Ok(())
    }

    /// At a frame boundary, writes the pending gateway frame (if any) and
    /// completes a [`Mode::Finish`].
    pub(super) async fn write_injection(&mut self) -> io::Result<Option<Injected>> {
        if !self.can_inject() {
            self.inject = None;
            self.queued = None;
        }
        if !self.at_boundary() {
            return Ok(None);
        }
        let Some(injection) = self.inject.as_mut() else {
            if let Mode::Finish { then } = self.mode {
                self.mode = if then == Then::Done {
                    Mode::Done
                } else {
                    Mode::Discard
                };
            }
            return Ok(None);
        };
        let dst = &mut self.dst;
        // Encoded inside the poll, so no frame bytes live across an await.
        let result = std::future::poll_fn(|cx| loop {
            let frame = injection.encode();
            let bytes = &frame.as_bytes()[usize::from(injection.written)..];
            if bytes.is_empty() {
                return Poll::Ready(Ok(injection.kind));
            }
            match std::task::ready!(Pin::new(&mut *dst).poll_write(cx, bytes)) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Err(e) => return Poll::Ready(Err(e)),
                // Fits in u8: a control frame is at most 131 bytes.
                Ok(n) => injection.written += n as u8,
            }
        })
        .await;
        let kind = result.map_err(|e| self.dst_failed(e))?;
        self.needs_flush = true;
        self.inject = self.queued.take();
        Ok(Some(kind))
    }

    pub(super) async fn flush(&mut self) -> io::Result<()> {
        if self.needs_flush && !self.dst_dead {
            if let Err(e) = self.dst.flush().await {
                return Err(self.dst_failed(e));
            }
        }
        self.needs_flush = false;
        Ok(())
    }

    pub(super) fn dst_failed(&mut self, e: io::Error) -> io::Error {
        self.mark_dst_dead();
        e
    }

    /// The bytes read and not yet given back (empty while parked).
    pub(super) fn data(&self) -> &[u8] {
        self.buf.as_deref().unwrap_or(&[])
    }

    /// Gives the buffer back once everything accepted has been written,
    /// keeping the unparsed tail (an incomplete header or control frame)
    /// inline. A longer tail only exists while the pump is leaving
    /// [`Mode::Forward`]; the buffer is then kept until it is walked.
    pub(super) fn park(&mut self) {
        let Some(buf) = &self.buf else { return };
        let tail = &buf[self.pos..self.end];
        if self.out < self.pos || tail.len() > CARRY_CAP {
            return;
        }
        self.carry.bytes[..tail.len()].copy_from_slice(tail);
        // Fits in u8: at most CARRY_CAP bytes.
        self.carry.len = tail.len() as u8;
        (self.out, self.pos, self.end) = (0, 0, 0);
        self.buf = None;
    }

    /// Reads more from the source; false on EOF or error. Only called when
    /// everything accepted has been written.
    pub(super) async fn read(&mut self) -> bool {
        std::future::poll_fn(|cx| self.poll_read(cx)).await
    }

    /// Reads into a pooled buffer that starts with the carried tail; a read
    /// that is not ready hands the buffer straight back, so waiting for the
    /// peer holds none. A pump that could not park reads into its own buffer.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        let held = self.buf.is_some();
        let (mut buf, kept) = match self.buf.take() {
            Some(mut buf) => {
                buf.copy_within(self.pos..self.end, 0);
                (buf, self.end - self.pos)
            }
            None => {
                let mut buf = Buf::take(self.next_read);
                let kept = usize::from(self.carry.len);
                buf[..kept].copy_from_slice(&self.carry.bytes[..kept]);
                (buf, kept)
            }
        };
        (self.out, self.pos, self.end) = (0, 0, kept);
        let room = self.read_allowance(buf.len() - kept);
        let mut read_buf = ReadBuf::new(&mut buf[kept..kept + room]);
        let space = read_buf.remaining();
        let n = match Pin::new(&mut self.src).poll_read(cx, &mut read_buf) {
            Poll::Ready(Ok(())) => read_buf.filled().len(),
            Poll::Ready(Err(_)) => 0,
            Poll::Pending if held => {
                self.buf = Some(buf);
                return Poll::Pending;
            }
            Poll::Pending => {
                (self.pos, self.end) = (0, 0);
                return Poll::Pending;
            }
        };
        if n > 0 {
            self.charge_read(n);
            self.next_read = Size::after_read(n, space);
        }
        if held || n > 0 {
            self.carry.len = 0;
            self.end = kept + n;
            self.buf = Some(buf);
        } else {
            // EOF while parked: the tail stays in the carry, unparsed.
            self.end = 0;
        }
        Poll::Ready(n > 0)
    }
}
