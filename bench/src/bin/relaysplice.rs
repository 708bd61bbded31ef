//! `relaysplice`: a minimal frame-aware WebSocket pass-through on tokio's
//! current-thread runtime (epoll), to measure splice(2) against copying
//! (issue #18). Not wsgate's relay: a prototype of the mechanism only, on
//! plain TCP, with no limits, no timeouts, no UTF-8 checks and no close
//! handshake of its own.
//!
//! For each accepted client it connects to `--backend`, forwards the upgrade
//! request and the 101 verbatim (bytes up to the blank line, each way), then
//! relays both directions. Each direction follows the frame headers
//! ([`FrameTracker`]) and forwards every byte untouched (client frames stay
//! masked), in one of two modes:
//!
//! - `copy`: read up to 64 KiB, write what was read (also the `epoll` side
//!   of the io_uring comparison with `relayuring`).
//! - `splice`: as `copy`, but once a frame's header with a payload of at
//!   least `--threshold` bytes has been read, the rest of that payload goes
//!   socket → pipe → socket with splice(2) (one pipe per direction,
//!   `SPLICE_F_NONBLOCK | SPLICE_F_MOVE`, readiness from tokio); the bytes
//!   read before it (header and payload start) are sent with `MSG_MORE`, and
//!   the read after a splice takes at most 14 bytes (one header at most, so
//!   the next large payload is not pulled into user space).
//!
//! Prints the port it listens on (127.0.0.1, chosen by the kernel) as the
//! first line of stdout.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use rustix::net::{self, SendFlags};
use rustix::pipe::{self, PipeFlags, SpliceFlags};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use wsgate_bench::frame::{FrameTracker, MAX_HEADER_LEN};

/// Read buffer per direction.
const READ_BUF: usize = 64 * 1024;

/// Longest upgrade request or response head accepted.
const MAX_HEAD: usize = 64 * 1024;

/// How payloads are forwarded.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// read(2) into a 64 KiB buffer, write(2) it out.
    Copy,
    /// splice(2) through a pipe for payloads of at least --threshold bytes.
    Splice,
}

/// Frame-aware WebSocket pass-through: copy or splice(2).
#[derive(Parser)]
struct Cli {
    /// The WebSocket backend (plain TCP).
    #[arg(long)]
    backend: SocketAddr,
    /// How payloads are forwarded.
    #[arg(long, value_enum, default_value = "copy")]
    mode: Mode,
    /// Smallest payload (bytes) that is spliced in `splice` mode.
    #[arg(long, default_value_t = 16384)]
    threshold: u64,
    /// Pipe capacity asked for with F_SETPIPE_SZ (bytes).
    #[arg(long, default_value_t = 1 << 20)]
    pipe_size: usize,
}

/// What every connection needs to know.
#[derive(Clone, Copy)]
struct Config {
    backend: SocketAddr,
    mode: Mode,
    threshold: u64,
    pipe_size: usize,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = Config {
        backend: cli.backend,
        mode: cli.mode,
        threshold: cli.threshold,
        pipe_size: cli.pipe_size,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("relaysplice: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Accepts forever; two tasks per connection (one per direction).
async fn serve(config: Config) -> io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let mut stdout = io::stdout();
    writeln!(stdout, "{}", listener.local_addr()?.port())?;
    stdout.flush()?;
    loop {
        let (client, _) = listener.accept().await?;
        tokio::spawn(async move {
            if let Err(e) = connection(client, config).await {
                if e.kind() != io::ErrorKind::UnexpectedEof {
                    eprintln!("relaysplice: connection: {e}");
                }
            }
        });
    }
}

/// Upgrade, then relay both directions until each one ends.
async fn connection(client: TcpStream, config: Config) -> io::Result<()> {
    client.set_nodelay(true)?;
    let backend = TcpStream::connect(config.backend).await?;
    backend.set_nodelay(true)?;
    let (mut client_rx, mut client_tx) = client.into_split();
    let (mut backend_rx, mut backend_tx) = backend.into_split();
    let mut up = FrameTracker::default();
    up.feed(&forward_head(&mut client_rx, &mut backend_tx).await?);
    let mut down = FrameTracker::default();
    down.feed(&forward_head(&mut backend_rx, &mut client_tx).await?);
    let splicers = match config.mode {
        Mode::Copy => (None, None),
        Mode::Splice => (
            Some(Splicer::new(config.threshold, config.pipe_size)?),
            Some(Splicer::new(config.threshold, config.pipe_size)?),
        ),
    };
    tokio::spawn(pump(backend_rx, client_tx, down, splicers.1));
    pump(client_rx, backend_tx, up, splicers.0).await
}

/// Copies bytes from `src` to `dst` until a head's blank line has passed;
/// returns the bytes read after it (already forwarded too).
async fn forward_head(src: &mut OwnedReadHalf, dst: &mut OwnedWriteHalf) -> io::Result<Vec<u8>> {
    let mut head = Vec::new();
    let mut buf = vec![0; 8192];
    loop {
        let n = src.read(&mut buf).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        dst.write_all(&buf[..n]).await?;
        head.extend_from_slice(&buf[..n]);
        if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            return Ok(head.split_off(i + 4));
        }
        if head.len() > MAX_HEAD {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "head too long"));
        }
    }
}

/// One direction: read, follow the frames, write; splice large payloads.
async fn pump(
    mut src: OwnedReadHalf,
    mut dst: OwnedWriteHalf,
    mut frames: FrameTracker,
    mut splicer: Option<Splicer>,
) -> io::Result<()> {
    let mut buf = vec![0; READ_BUF];
    let mut limit = READ_BUF;
    loop {
        let n = src.read(&mut buf[..limit]).await?;
        if n == 0 {
            return dst.shutdown().await;
        }
        frames.feed(&buf[..n]);
        limit = READ_BUF;
        let splice = splicer
            .as_mut()
            .filter(|s| frames.payload_len() >= s.threshold && frames.payload_left() > 0);
        let Some(splicer) = splice else {
            dst.write_all(&buf[..n]).await?;
            continue;
        };
        // The header (and any payload read with it) goes out corked, to
        // leave in one segment with the spliced payload's start.
        send_more(dst.as_ref(), &buf[..n]).await?;
        splicer
            .transfer(src.as_ref(), dst.as_ref(), frames.payload_left())
            .await?;
        frames.skip_payload();
        limit = MAX_HEADER_LEN;
    }
}

/// Writes all of `data` with `MSG_MORE`: the kernel holds a partial segment
/// back until the next write without it.
async fn send_more(dst: &TcpStream, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        let sent = dst.try_io(Interest::WRITABLE, || {
            net::send(dst, data, SendFlags::MORE).map_err(io::Error::from)
        });
        match sent {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => dst.writable().await?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// One direction's pipe for splice(2).
struct Splicer {
    /// Smallest payload spliced.
    threshold: u64,
    /// The pipe's read end.
    rx: OwnedFd,
    /// The pipe's write end.
    tx: OwnedFd,
    /// The pipe's capacity in bytes.
    capacity: usize,
}

/// Never block in the pipe; move pages rather than copy where possible.
const SPLICE: SpliceFlags = SpliceFlags::NONBLOCK.union(SpliceFlags::MOVE);

impl Splicer {
    /// A non-blocking pipe of (up to) `size` bytes.
    fn new(threshold: u64, size: usize) -> io::Result<Splicer> {
        let (rx, tx) = pipe::pipe_with(PipeFlags::NONBLOCK | PipeFlags::CLOEXEC)?;
        // Above /proc/sys/fs/pipe-max-size this fails for an unprivileged
        // process; the default size (64 KiB) then stays.
        let _ = pipe::fcntl_setpipe_size(&tx, size);
        let capacity = pipe::fcntl_getpipe_size(&tx)?;
        Ok(Splicer {
            threshold,
            rx,
            tx,
            capacity,
        })
    }

    /// Moves exactly `left` bytes from `src` to `dst` through the pipe.
    ///
    /// Readiness: an EAGAIN from socket → pipe is only reported to tokio
    /// (clearing `src`'s readiness) while the pipe is empty, because with
    /// data in the pipe it may mean "pipe full" (a pipe holds a limited
    /// number of buffers, whatever their size) rather than "socket empty".
    async fn transfer(
        &mut self,
        src: &TcpStream,
        dst: &TcpStream,
        mut left: u64,
    ) -> io::Result<()> {
        let mut in_pipe = 0usize;
        while left > 0 || in_pipe > 0 {
            let mut moved = false;
            if left > 0 && in_pipe < self.capacity {
                let want = ((self.capacity - in_pipe) as u64).min(left) as usize;
                let fill = || {
                    pipe::splice(src, None, &self.tx, None, want, SPLICE).map_err(io::Error::from)
                };
                let got = match in_pipe {
                    0 => src.try_io(Interest::READABLE, fill),
                    _ => fill(),
                };
                match got {
                    Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                    Ok(n) => {
                        left -= n as u64;
                        in_pipe += n;
                        moved = true;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
            if in_pipe > 0 {
                let drain = || {
                    pipe::splice(&self.rx, None, dst, None, in_pipe, SPLICE)
                        .map_err(io::Error::from)
                };
                match dst.try_io(Interest::WRITABLE, drain) {
                    Ok(n) => {
                        in_pipe -= n;
                        moved = true;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
            if !moved {
                match in_pipe {
                    0 => src.readable().await?,
                    _ => dst.writable().await?,
                }
            }
        }
        Ok(())
    }
}
