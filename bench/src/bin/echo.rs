//! `echo`: a minimal WebSocket echo backend for the proxy benchmark.
//!
//! It must never be the bottleneck, so it does the least a correct echo
//! can: one read buffer per connection, frames echoed as they stream in
//! (header first, then payload chunks unmasked in place), one write per read,
//! no per-message allocation. Fragmented messages are mirrored frame by
//! frame; pings get pongs; a close is answered and the TCP connection closed
//! from this side (so TIME_WAIT stays on the server).

use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;

use base64::Engine;
use clap::Parser;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use wsgate_bench::frame::{self, apply_mask, parse_header, Header};

/// Largest request head accepted.
const MAX_REQUEST_HEAD: usize = 8192;

/// Per-connection read buffer: large enough for few syscalls per 64 KiB
/// message, small enough for 9,000 held connections.
const READ_BUF: usize = 32 * 1024;

/// Listen backlog: the idle-connection test opens thousands quickly.
const BACKLOG: u32 = 4096;

/// The GUID of RFC 6455 §1.3 for `Sec-WebSocket-Accept`.
const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// WebSocket echo backend.
#[derive(Parser)]
struct Cli {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9000")]
    listen: SocketAddr,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.threads.max(1))
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(serve(cli.listen)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echo: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Accepts forever, one task per connection.
async fn serve(addr: SocketAddr) -> io::Result<()> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    let listener = socket.listen(BACKLOG)?;
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(_) => continue,
        };
        tokio::spawn(async move {
            let _ = connection(stream).await;
        });
    }
}

/// Upgrade, then echo until close or EOF.
async fn connection(mut stream: TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = vec![0u8; MAX_REQUEST_HEAD];
    let mut filled = 0;
    let head_end = loop {
        if let Some(i) = buf[..filled].windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if filled == buf.len() {
            return Ok(());
        }
        let n = stream.read(&mut buf[filled..]).await?;
        if n == 0 {
            return Ok(());
        }
        filled += n;
    };
    let Some(accept) = accept_key(&buf[..head_end]) else {
        stream
            .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
            .await?;
        return Ok(());
    };
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    stream.write_all(response.as_bytes()).await?;
    buf.copy_within(head_end..filled, 0);
    filled -= head_end;
    buf.resize(READ_BUF, 0);
    let mut echo = Echo::default();
    let mut out = Vec::new();
    loop {
        let used = echo.process(&mut buf[..filled], &mut out);
        if !out.is_empty() {
            stream.write_all(&out).await?;
            out.clear();
        }
        if echo.closed {
            return stream.shutdown().await;
        }
        buf.copy_within(used..filled, 0);
        filled -= used;
        let n = stream.read(&mut buf[filled..]).await?;
        if n == 0 {
            return Ok(());
        }
        filled += n;
    }
}

/// `Sec-WebSocket-Accept` for the request's `Sec-WebSocket-Key`.
fn accept_key(head: &[u8]) -> Option<String> {
    let head = std::str::from_utf8(head).ok()?;
    let key = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("sec-websocket-key")
            .then(|| value.trim())
    })?;
    let digest = Sha1::new()
        .chain_update(key)
        .chain_update(WS_GUID)
        .finalize();
    Some(base64::engine::general_purpose::STANDARD.encode(digest))
}

/// Streaming echo state of one connection.
#[derive(Default)]
struct Echo {
    /// The data frame whose payload is streaming through, if any.
    current: Option<Header>,
    /// Payload bytes of `current` already echoed.
    done: u64,
    /// A close frame was answered; the connection ends.
    closed: bool,
}

impl Echo {
    /// Echoes what `buf` holds into `out`; returns the bytes consumed.
    fn process(&mut self, buf: &mut [u8], out: &mut Vec<u8>) -> usize {
        let mut pos = 0;
        while !self.closed {
            if let Some(header) = self.current {
                let n = (header.payload_len - self.done).min((buf.len() - pos) as u64) as usize;
                let chunk = &mut buf[pos..pos + n];
                if let Some(key) = header.mask {
                    apply_mask(chunk, key, self.done);
                }
                out.extend_from_slice(chunk);
                pos += n;
                self.done += n as u64;
                if self.done < header.payload_len {
                    return pos;
                }
                self.current = None;
            }
            let Some(header) = parse_header(&buf[pos..]) else {
                return pos;
            };
            if header.is_control() {
                let end = pos + header.header_len + header.payload_len as usize;
                if buf.len() < end {
                    return pos;
                }
                let payload = &mut buf[pos + header.header_len..end];
                if let Some(key) = header.mask {
                    apply_mask(payload, key, 0);
                }
                let reply = match header.opcode {
                    frame::OP_PING => Some(frame::OP_PONG),
                    frame::OP_CLOSE => Some(frame::OP_CLOSE),
                    _ => None,
                };
                if let Some(opcode) = reply {
                    frame::encode_header(out, opcode, header.payload_len, None);
                    out.extend_from_slice(payload);
                }
                self.closed = header.opcode == frame::OP_CLOSE;
                pos = end;
                continue;
            }
            frame::encode_header_fin(out, header.fin, header.opcode, header.payload_len, None);
            pos += header.header_len;
            self.current = Some(header);
            self.done = 0;
        }
        pos
    }
}
