//! splice(2) of large binary payloads between two plain TCP legs.
//!
//! When both legs are plain TCP (Linux only), a data frame's payload bytes
//! that are not yet in the pump's buffer go socket → pipe → socket without
//! entering user space, once the frame has [`SPLICE_MIN`] bytes or more
//! still to come. They pass untouched, exactly as the copy path forwards
//! them (client payloads stay masked). Not spliced: text frames checked for
//! UTF-8 (the check needs the bytes), TLS and HTTP/2 legs, a leg whose
//! bytes hyper read past the 101 are not yet served, a client with a
//! `client_bytes_per_second` (its reads are metered), and payloads below the
//! threshold.
//!
//! A pipe is lent for one spliced payload and given back at its end if it
//! is empty (closed otherwise: a destination that failed). Each
//! worker thread keeps at most [`IDLE_PER_THREAD`] idle pipes; at most
//! [`MAX_LENT`] are lent at once (a pipe is two file descriptors, and a
//! slow destination keeps its pipe, holding up to [`PIPE_SIZE`] bytes);
//! beyond that the pump copies as before. `WSGATE_NO_SPLICE=1` in the
//! environment (read once) turns splicing off, for comparisons.

use std::sync::atomic::AtomicUsize;

use tokio::net::TcpStream;

use super::leg::Leg;
pub use crate::net::splice_tcp::SpliceTcp;

/// Smallest payload remainder that is spliced. The prototype
/// (`bench/src/bin/relaysplice.rs`, docs/performance.md "io_uring and
/// splice(2), measured") needed 0.60–0.67× the CPU of copying per message
/// at 64 KiB, 0.44–0.49× at 256 KiB, 0.33–0.39× at 1 MiB, and fewer
/// messages per second than copying at 64 KiB: the break-even region.
pub const SPLICE_MIN: u64 = 64 * 1024;

/// What a pipe is asked to hold (F_SETPIPE_SZ; the default
/// `/proc/sys/fs/pipe-max-size`). If refused, the pipe keeps its size.
pub const PIPE_SIZE: usize = 1 << 20;

/// Idle pipes kept per worker thread.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
const IDLE_PER_THREAD: usize = 16;

/// Pipes lent at once, process-wide: 512 file descriptors at most.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
const MAX_LENT: usize = 256;

/// Pipes lent now.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
static LENT: AtomicUsize = AtomicUsize::new(0);

impl<T: SpliceTcp> SpliceTcp for Leg<T> {
    fn splice_tcp(&self) -> Option<&TcpStream> {
        match self {
            Leg::Raw(io) => io.splice_tcp(),
            // Bytes hyper read past the 101 are served first.
            Leg::Prefaced(prefaced) if prefaced.0.is_empty() => prefaced.1.splice_tcp(),
            Leg::Prefaced(_) | Leg::Upgraded(_) => None,
        }
    }
}

#[cfg(target_os = "linux")]
pub(super) use linux::Pipe;
#[cfg(not(target_os = "linux"))]
pub(super) use other::Pipe;

#[cfg(target_os = "linux")]
mod linux {
    use std::cell::RefCell;
    use std::io;
    use std::os::fd::OwnedFd;
    use std::sync::atomic::Ordering;
    use std::sync::OnceLock;
    use std::task::{ready, Context, Poll};

    use rustix::pipe::{fcntl_setpipe_size, pipe_with, splice, PipeFlags, SpliceFlags};
    use tokio::io::Interest;
    use tokio::net::TcpStream;

    use super::{IDLE_PER_THREAD, LENT, MAX_LENT, PIPE_SIZE};

    /// Never block in the pipe; move pages rather than copy them.
    const FLAGS: SpliceFlags = SpliceFlags::NONBLOCK.union(SpliceFlags::MOVE);

    /// A pipe's read and write ends.
    type Fds = (OwnedFd, OwnedFd);

    thread_local! {
        /// This thread's idle (empty) pipes.
        static IDLE: RefCell<Vec<Fds>> = const { RefCell::new(Vec::new()) };
    }

    /// Whether splicing is on (`WSGATE_NO_SPLICE` unset), read once.
    fn enabled() -> bool {
        static ON: OnceLock<bool> = OnceLock::new();
        *ON.get_or_init(|| std::env::var_os("WSGATE_NO_SPLICE").map_or(true, |v| v == "0"))
    }

    /// Counts a pipe lent until dropped.
    #[derive(Debug)]
    struct Lent;

    impl Drop for Lent {
        fn drop(&mut self) {
            LENT.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// A lent pipe and the bytes in it.
    #[derive(Debug)]
    struct State {
        rx: OwnedFd,
        tx: OwnedFd,
        /// Bytes in the pipe (at most [`PIPE_SIZE`]).
        len: u32,
        _lent: Lent,
    }

    /// A lent pipe; closed when dropped, unless given back empty. Boxed:
    /// a pump holds one only while it splices.
    #[derive(Debug)]
    pub(in crate::ws::relay) struct Pipe(Box<State>);

    impl Pipe {
        /// An empty pipe, unless splicing is off, [`MAX_LENT`] are out or
        /// no pipe can be made (the pump then copies).
        pub(in crate::ws::relay) fn take() -> Option<Pipe> {
            if !enabled() {
                return None;
            }
            if LENT.fetch_add(1, Ordering::Relaxed) >= MAX_LENT {
                LENT.fetch_sub(1, Ordering::Relaxed);
                return None;
            }
            let lent = Lent;
            let idle = IDLE.try_with(|idle| idle.borrow_mut().pop()).ok().flatten();
            let (rx, tx) = match idle {
                Some(fds) => fds,
                None => {
                    let (rx, tx) = pipe_with(PipeFlags::NONBLOCK | PipeFlags::CLOEXEC).ok()?;
                    // Refused above pipe-max-size without CAP_SYS_RESOURCE;
                    // the default size then stays, and splices move less.
                    let _ = fcntl_setpipe_size(&tx, PIPE_SIZE);
                    (rx, tx)
                }
            };
            Some(Pipe(Box::new(State {
                rx,
                tx,
                len: 0,
                _lent: lent,
            })))
        }

        /// Bytes in the pipe.
        pub(in crate::ws::relay) fn len(&self) -> usize {
            self.0.len as usize
        }

        /// Gives the pipe back to this thread's idle pipes if it is empty;
        /// closes it otherwise.
        pub(in crate::ws::relay) fn give_back(self) {
            let State { rx, tx, len, .. } = *self.0;
            if len > 0 {
                return;
            }
            let _ = IDLE.try_with(|idle| {
                let mut idle = idle.borrow_mut();
                if idle.len() < IDLE_PER_THREAD {
                    idle.push((rx, tx));
                }
            });
        }

        /// Moves up to `want` bytes (at most [`PIPE_SIZE`]) from `src` into
        /// the empty pipe, if tokio saw `src` readable; `Ok(0)` at the
        /// source's end.
        ///
        /// The pipe is empty, so `EAGAIN` means the socket is, and is
        /// reported to tokio (clearing the readiness it saw). With bytes in
        /// the pipe it could also mean "pipe full"; the pump never fills a
        /// pipe that is not empty.
        pub(in crate::ws::relay) fn try_fill(
            &mut self,
            src: &TcpStream,
            want: usize,
        ) -> io::Result<usize> {
            let state = &mut *self.0;
            debug_assert_eq!(state.len, 0);
            let n = src.try_io(Interest::READABLE, || {
                splice(src, None, &state.tx, None, want, FLAGS).map_err(io::Error::from)
            })?;
            // Fits in u32: at most `want`, at most PIPE_SIZE.
            state.len += n as u32;
            Ok(n)
        }

        /// Moves bytes from the pipe to `dst`: how many.
        pub(in crate::ws::relay) fn poll_drain(
            &mut self,
            dst: &TcpStream,
            cx: &mut Context<'_>,
        ) -> Poll<io::Result<usize>> {
            let state = &mut *self.0;
            loop {
                ready!(dst.poll_write_ready(cx))?;
                let moved = dst.try_io(Interest::WRITABLE, || {
                    let len = state.len as usize;
                    splice(&state.rx, None, dst, None, len, FLAGS).map_err(io::Error::from)
                });
                match moved {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Ok(n) => {
                        // Fits in u32: at most what was in the pipe.
                        state.len -= n as u32;
                        return Poll::Ready(Ok(n));
                    }
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod other {
    use std::io;
    use std::task::{Context, Poll};

    use tokio::net::TcpStream;

    /// No splice(2) here: never lent, so the pump always copies.
    #[derive(Debug)]
    pub(in crate::ws::relay) enum Pipe {}

    impl Pipe {
        pub(in crate::ws::relay) fn take() -> Option<Pipe> {
            None
        }

        pub(in crate::ws::relay) fn len(&self) -> usize {
            match *self {}
        }

        pub(in crate::ws::relay) fn give_back(self) {
            match self {}
        }

        pub(in crate::ws::relay) fn try_fill(
            &mut self,
            _: &TcpStream,
            _: usize,
        ) -> io::Result<usize> {
            match *self {}
        }

        pub(in crate::ws::relay) fn poll_drain(
            &mut self,
            _: &TcpStream,
            _: &mut Context<'_>,
        ) -> Poll<io::Result<usize>> {
            match *self {}
        }
    }
}

/// A peer dying at every point of a spliced frame ends as on the copy path.
#[cfg(all(test, target_os = "linux"))]
mod tests;
