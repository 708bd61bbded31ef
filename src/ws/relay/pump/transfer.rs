//! The pump's I/O: writing the accepted run and the gateway's own frames to
//! the destination, and reading the source into a pooled buffer that is
//! given back (parked) as soon as everything read has been forwarded.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::ws::relay::split::WithTcp;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::Instant;

use super::{FrameState, Injected, Mode, Pump, Then, CARRY_CAP};
use crate::ws::relay::pool::{Buf, Size};
use crate::ws::relay::splice::{Pipe, PIPE_SIZE, SPLICE_MIN};

impl<R: AsyncRead + Unpin + WithTcp, W: AsyncWrite + Unpin + WithTcp> Pump<R, W> {
    /// Writes the accepted run; one write call per contiguous batch. Bytes
    /// spliced into a pipe go first (nothing is read while they wait).
    pub(super) async fn write_run(&mut self) -> io::Result<()> {
        if self.pipe.is_some() {
            std::future::poll_fn(|cx| self.poll_drain_pipe(cx)).await?;
        }
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

    /// Writes the pipe out to the destination; gives the pipe back once it
    /// is empty at the end of the payload.
    fn poll_drain_pipe(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some(pipe) = self.pipe.as_mut().filter(|pipe| pipe.len() > 0) {
            let moved = self.dst.with_tcp(|dst| match dst {
                Some(dst) => pipe.poll_drain(dst, cx),
                None => Poll::Ready(Err(io::ErrorKind::Unsupported.into())),
            });
            match std::task::ready!(moved) {
                Err(e) => return Poll::Ready(Err(self.dst_failed(e))),
                Ok(_) => {
                    self.needs_flush = true;
                    self.last_forward = Instant::now();
                }
            }
        }
        if self.at_boundary() {
            self.give_back_pipe();
        }
        Poll::Ready(Ok(()))
    }

    /// Gives the lent pipe back (closed if it is not empty).
    pub(super) fn give_back_pipe(&mut self) {
        if let Some(pipe) = self.pipe.take() {
            pipe.give_back();
        }
    }

    /// How many bytes to splice next, if the source's next bytes are the
    /// rest of a payload that qualifies: forwarded, not checked for UTF-8,
    /// [`SPLICE_MIN`] or more (or already being spliced), nothing of it
    /// buffered, no byte rate, and both legs plain TCP.
    fn splice_len(&self) -> Option<usize> {
        let FrameState::Payload {
            remaining,
            forward: true,
            utf8: None,
            ..
        } = self.frame
        else {
            return None;
        };
        let qualifies = (remaining >= SPLICE_MIN || self.pipe.is_some())
            && self.buf.is_none()
            && self.carry.len == 0
            && self.in_pipe() == 0
            && !self.dst_dead
            && !self.bytes_metered()
            && self.src.with_tcp(|tcp| tcp.is_some())
            && self.dst.with_tcp(|tcp| tcp.is_some());
        // Fits in usize: at most PIPE_SIZE.
        qualifies.then(|| remaining.min(PIPE_SIZE as u64) as usize)
    }

    /// How many bytes the next intake splices, if the payload qualifies
    /// ([`Pump::splice_len`]) and a pipe is lent (taken now at the
    /// payload's start; without one the pump reads as usual).
    pub(super) fn start_splice(&mut self) -> Option<usize> {
        let want = self.splice_len()?;
        if self.pipe.is_none() {
            self.pipe = Some(Pipe::take()?);
        }
        Some(want)
    }

    /// Takes in more of the source: `splice` bytes into the pipe, or a read
    /// into a buffer; false on EOF or error.
    pub(super) fn poll_take_in(
        &mut self,
        splice: Option<usize>,
        cx: &mut Context<'_>,
    ) -> Poll<bool> {
        match splice {
            Some(want) => self.poll_fill_pipe(want, cx),
            None => self.poll_read(cx),
        }
    }

    /// Splices up to `want` payload bytes from the source into the lent
    /// pipe and accepts them; false on EOF or error, as a read.
    fn poll_fill_pipe(&mut self, want: usize, cx: &mut Context<'_>) -> Poll<bool> {
        loop {
            let Some(pipe) = self.pipe.as_mut() else {
                return Poll::Ready(false);
            };
            let moved = self.src.with_tcp(|src| match src {
                Some(src) => match src.poll_read_ready(cx) {
                    Poll::Ready(Ok(())) => Poll::Ready(pipe.try_fill(src, want)),
                    Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                    Poll::Pending => Poll::Pending,
                },
                None => Poll::Ready(Err(io::ErrorKind::Unsupported.into())),
            });
            let n = match std::task::ready!(moved) {
                Ok(n) if n > 0 => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                // EOF or a failed splice: nothing moved, the pipe is empty.
                _ => {
                    self.give_back_pipe();
                    return Poll::Ready(false);
                }
            };
            self.charge_read(n);
            self.accept_spliced(n as u64);
            return Poll::Ready(true);
        }
    }

    /// Reads into a pooled buffer that starts with the carried tail; a read
    /// that is not ready hands the buffer straight back, so waiting for the
    /// peer holds none. A pump that could not park reads into its own buffer.
    /// Only called when everything accepted has been written; false on EOF
    /// or error.
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
