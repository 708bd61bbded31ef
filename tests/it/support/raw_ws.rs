//! Raw WebSocket frames over TCP, for peers that break the rules on purpose:
//! a client that sends exactly the bytes a case needs, and a backend that
//! answers the handshake correctly and then misbehaves.

use std::net::SocketAddr;

use base64::Engine;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::client::{upgrade_request, WAIT};

/// Encodes one frame; `mask` set for client frames.
pub fn frame(first_byte: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = vec![first_byte];
    let bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(bit | n as u8),
        n if n < 65536 => {
            out.push(bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if let Some(key) = mask {
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

/// A masked client frame.
pub fn client_frame(first_byte: u8, payload: &[u8]) -> Vec<u8> {
    frame(first_byte, payload, Some([0x37, 0xfa, 0x21, 0x3d]))
}

/// Opens a WebSocket through the gateway with a raw socket; panics unless 101.
pub async fn raw_upgrade(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = upgrade_request("/", &[]);
    stream.write_all(request.as_bytes()).await.unwrap();
    // Byte by byte, so frames right behind the head stay in the socket.
    let head = tokio::time::timeout(WAIT, read_head(&mut stream))
        .await
        .expect("101 within the wait bound");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    stream
}

/// Reads frames until a close arrives; returns its code (None on EOF first).
/// Data frames and pings before it are skipped, unmasked.
pub async fn read_close(stream: &mut TcpStream) -> Option<u16> {
    let read = async {
        loop {
            let (opcode, payload) = read_frame(stream).await?;
            if opcode == 0x8 {
                return Some(
                    payload
                        .get(..2)
                        .map_or(1005, |c| u16::from_be_bytes([c[0], c[1]])),
                );
            }
        }
    };
    tokio::time::timeout(WAIT, read)
        .await
        .expect("close within the wait bound")
}

/// Reads one frame: (opcode, unmasked payload), or None on EOF. Any byte
/// stream: a TCP connection, or one HTTP/2 stream.
pub async fn read_frame<S: AsyncRead + Unpin>(stream: &mut S) -> Option<(u8, Vec<u8>)> {
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).await.ok()?;
    let len = match head[1] & 0x7f {
        126 => u64::from(stream.read_u16().await.ok()?),
        127 => stream.read_u64().await.ok()?,
        n => u64::from(n),
    };
    let mut key = None;
    if head[1] & 0x80 != 0 {
        let mut k = [0u8; 4];
        stream.read_exact(&mut k).await.ok()?;
        key = Some(k);
    }
    let mut payload = vec![0u8; usize::try_from(len).ok()?];
    stream.read_exact(&mut payload).await.ok()?;
    if let Some(k) = key {
        payload
            .iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b ^= k[i % 4]);
    }
    Some((head[0] & 0x0f, payload))
}

/// A backend that completes the handshake correctly, then writes `after`
/// and holds the connection until the gateway closes it. Returns its
/// address; each session's received bytes go to the returned channel.
pub async fn misbehaving_backend(
    after: Vec<u8>,
) -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let (after, tx) = (after.clone(), tx.clone());
            tokio::spawn(async move {
                let Some(key) = read_key(&mut stream).await else {
                    return;
                };
                let response = format!(
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
                    accept(&key)
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.write_all(&after).await;
                let mut received = Vec::new();
                let _ = stream.read_to_end(&mut received).await;
                let _ = tx.send(received);
            });
        }
    });
    (addr, rx)
}

/// Reads an HTTP head up to its blank line and no further.
pub async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read_exact(&mut byte).await.is_err() {
            break;
        }
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Reads a request head and returns its Sec-WebSocket-Key.
async fn read_key(stream: &mut TcpStream) -> Option<String> {
    let head = read_head(stream).await;
    head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("sec-websocket-key")
            .then(|| value.trim().to_string())
    })
}

fn accept(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// A raw-DEFLATE stream (RFC 1951, as permessage-deflate carries it) that
/// inflates to `1 + 258 * copies` zero bytes: one fixed-Huffman block with
/// a literal 0 and then `copies` copies of 258 bytes at distance 1, 13 bits
/// each, about 160 times smaller than what it inflates to. (Checked once
/// against zlib: `zlib.decompressobj(-15).decompress(bomb)`.)
pub fn deflate_bomb(copies: usize) -> Vec<u8> {
    let mut bits = BitWriter::default();
    bits.put(0b011, 3); // BFINAL = 1, BTYPE = 01 (fixed Huffman)
    bits.code(0x30, 8); // literal 0
    for _ in 0..copies {
        bits.code(0b1100_0101, 8); // length code 285: 258 bytes
        bits.code(0, 5); // distance code 0: distance 1
    }
    bits.code(0, 7); // end of block (code 256)
    bits.out
}

/// Packs bits as DEFLATE wants them: fields least significant bit first,
/// Huffman codes most significant bit first.
#[derive(Default)]
struct BitWriter {
    out: Vec<u8>,
    used: u32,
}

impl BitWriter {
    fn put(&mut self, value: u32, count: u32) {
        for i in 0..count {
            if self.used % 8 == 0 {
                self.out.push(0);
            }
            let bit = ((value >> i) & 1) as u8;
            *self.out.last_mut().unwrap() |= bit << (self.used % 8);
            self.used += 1;
        }
    }

    fn code(&mut self, code: u32, len: u32) {
        let reversed = code.reverse_bits() >> (32 - len);
        self.put(reversed, len);
    }
}
