//! `relayuring`: the copy mode of `relaysplice` on monoio, to measure
//! io_uring against epoll (issue #18; cargo feature `uring`). Not wsgate's
//! relay: a prototype of the mechanism only.
//!
//! The logic is `relaysplice --mode copy`'s, line for line: forward the
//! upgrade request and the 101 verbatim, then per direction read up to
//! 64 KiB, follow the frame headers ([`FrameTracker`]), write what was read.
//! What differs is the engine: monoio's io_uring driver (reads and writes
//! are submitted to the ring and own their buffer until they complete), or
//! with `--driver legacy` monoio's epoll driver, so that the same executor
//! can be compared on both.
//!
//! Prints the port it listens on (127.0.0.1, chosen by the kernel) as the
//! first line of stdout.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, Splitable};
use monoio::net::{TcpListener, TcpStream};
use monoio::{IoUringDriver, LegacyDriver, RuntimeBuilder};
use wsgate_bench::frame::FrameTracker;

/// Read buffer per direction.
const READ_BUF: usize = 64 * 1024;

/// Longest upgrade request or response head accepted.
const MAX_HEAD: usize = 64 * 1024;

/// Submission queue entries of the ring.
const RING_ENTRIES: u32 = 1024;

/// monoio's I/O driver.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Driver {
    /// io_uring: reads and writes submitted to the ring.
    Uring,
    /// epoll (mio) readiness, then read(2) / write(2).
    Legacy,
}

/// Frame-aware WebSocket pass-through on monoio (io_uring or epoll).
#[derive(Parser)]
struct Cli {
    /// The WebSocket backend (plain TCP).
    #[arg(long)]
    backend: SocketAddr,
    /// monoio's I/O driver.
    #[arg(long, value_enum, default_value = "uring")]
    driver: Driver,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.driver {
        Driver::Uring => RuntimeBuilder::<IoUringDriver>::new()
            .with_entries(RING_ENTRIES)
            .build()
            .and_then(|mut runtime| runtime.block_on(serve(cli.backend))),
        Driver::Legacy => RuntimeBuilder::<LegacyDriver>::new()
            .build()
            .and_then(|mut runtime| runtime.block_on(serve(cli.backend))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("relayuring: {e} ({e:?})");
            ExitCode::FAILURE
        }
    }
}

/// Accepts forever; two tasks per connection (one per direction).
async fn serve(backend: SocketAddr) -> io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let mut stdout = io::stdout();
    writeln!(stdout, "{}", listener.local_addr()?.port())?;
    stdout.flush()?;
    loop {
        let (client, _) = listener.accept().await?;
        monoio::spawn(async move {
            if let Err(e) = connection(client, backend).await {
                if e.kind() != io::ErrorKind::UnexpectedEof {
                    eprintln!("relayuring: connection: {e}");
                }
            }
        });
    }
}

/// Upgrade, then relay both directions until each one ends.
async fn connection(client: TcpStream, backend: SocketAddr) -> io::Result<()> {
    client.set_nodelay(true)?;
    let backend = TcpStream::connect(backend).await?;
    backend.set_nodelay(true)?;
    let (mut client_rx, mut client_tx) = client.into_split();
    let (mut backend_rx, mut backend_tx) = backend.into_split();
    let mut up = FrameTracker::default();
    up.feed(&forward_head(&mut client_rx, &mut backend_tx).await?);
    let mut down = FrameTracker::default();
    down.feed(&forward_head(&mut backend_rx, &mut client_tx).await?);
    monoio::spawn(pump(backend_rx, client_tx, down));
    pump(client_rx, backend_tx, up).await
}

/// Copies bytes from `src` to `dst` until a head's blank line has passed;
/// returns the bytes read after it (already forwarded too).
async fn forward_head(
    src: &mut impl AsyncReadRent,
    dst: &mut impl AsyncWriteRent,
) -> io::Result<Vec<u8>> {
    let mut head = Vec::new();
    let mut buf = Vec::with_capacity(8192);
    loop {
        buf.clear();
        let (read, back) = src.read(buf).await;
        buf = back;
        if read? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(&buf);
        let (written, back) = dst.write_all(buf).await;
        buf = back;
        written?;
        if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            return Ok(head.split_off(i + 4));
        }
        if head.len() > MAX_HEAD {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "head too long"));
        }
    }
}

/// One direction: read, follow the frames, write.
async fn pump(
    mut src: impl AsyncReadRent,
    mut dst: impl AsyncWriteRent,
    mut frames: FrameTracker,
) -> io::Result<()> {
    let mut buf = Vec::with_capacity(READ_BUF);
    loop {
        buf.clear();
        let (read, back) = src.read(buf).await;
        buf = back;
        if read? == 0 {
            return dst.shutdown().await;
        }
        frames.feed(&buf);
        let (written, back) = dst.write_all(buf).await;
        buf = back;
        written?;
    }
}
