//! The PROXY protocol header (v1 text, v2 binary) an L4 balancer sends
//! before the client's bytes, naming the client it accepted.
//!
//! The header is read exactly, never a byte past it: what follows (a TLS
//! ClientHello, an HTTP request) belongs to the next layer. v2 announces
//! its length, so it is read in two exact reads; v1 ends at its CRLF and
//! is read a byte at a time, at most [`V1_MAX`] bytes. The bytes are then
//! parsed by the `ppp` crate. Reading is not bounded in time here: the
//! caller holds the deadline.

use std::net::SocketAddr;

use ppp::v1;
use ppp::v2;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The v2 signature (and its first 12 bytes).
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

/// The v1 prefix.
const V1_PREFIX: &[u8; 6] = b"PROXY ";

/// The longest v1 header, CRLF included (the spec's own bound).
pub const V1_MAX: usize = 107;

/// The longest v2 address-and-TLV block accepted: room for the addresses
/// and the TLVs balancers add (AWS, Azure, HAProxy's SSL info), far below
/// the format's 64 KiB.
pub const V2_MAX_PAYLOAD: usize = 1024;

/// What a valid header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyHeader {
    /// The balancer relays this client.
    Client(SocketAddr),
    /// The balancer speaks for itself (a v2 `LOCAL` health check) or does
    /// not know the client (v1 `UNKNOWN`, a non-TCP family): the socket
    /// peer stays the client.
    Unknown,
}

/// Why a header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyHeaderError {
    /// The connection does not start with a PROXY header.
    #[error("the connection does not start with a PROXY header")]
    Missing,
    /// The connection ended inside the header.
    #[error("the connection ended inside the PROXY header")]
    Truncated,
    /// The header is longer than this gateway accepts.
    #[error("PROXY header longer than {0} bytes")]
    Oversized(usize),
    /// The header is malformed.
    #[error("malformed PROXY header: {0}")]
    Invalid(String),
}

impl ProxyHeaderError {
    /// The `result` label of `wsgate_proxy_protocol_headers_total`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Truncated => "truncated",
            Self::Oversized(_) => "oversized",
            Self::Invalid(_) => "invalid",
        }
    }
}

/// Whether `first` (the first bytes a peer sent) starts like a PROXY
/// header, v1 or v2.
pub fn looks_like_header(first: &[u8]) -> bool {
    first.starts_with(V1_PREFIX) || first.starts_with(V2_SIGNATURE)
}

/// Reads one header from `stream`, consuming exactly its bytes.
pub async fn read<S: AsyncRead + Unpin>(stream: &mut S) -> Result<ProxyHeader, ProxyHeaderError> {
    let mut start = [0u8; 12];
    read_exact(stream, &mut start).await?;
    if &start == V2_SIGNATURE {
        return read_v2(stream, start).await;
    }
    if start.starts_with(V1_PREFIX) {
        return read_v1(stream, start).await;
    }
    Err(ProxyHeaderError::Missing)
}

/// The rest of a v2 header: version, family, length, then the block.
async fn read_v2<S: AsyncRead + Unpin>(
    stream: &mut S,
    start: [u8; 12],
) -> Result<ProxyHeader, ProxyHeaderError> {
    let mut fixed = [0u8; 4];
    read_exact(stream, &mut fixed).await?;
    let len = usize::from(u16::from_be_bytes([fixed[2], fixed[3]]));
    if len > V2_MAX_PAYLOAD {
        return Err(ProxyHeaderError::Oversized(16 + V2_MAX_PAYLOAD));
    }
    let mut header = Vec::with_capacity(16 + len);
    header.extend_from_slice(&start);
    header.extend_from_slice(&fixed);
    header.resize(16 + len, 0);
    read_exact(stream, &mut header[16..]).await?;
    parse_v2(&header)
}

/// Parses a whole v2 header.
pub fn parse_v2(bytes: &[u8]) -> Result<ProxyHeader, ProxyHeaderError> {
    let header =
        v2::Header::try_from(bytes).map_err(|e| ProxyHeaderError::Invalid(e.to_string()))?;
    Ok(match (header.command, header.addresses) {
        (v2::Command::Local, _) => ProxyHeader::Unknown,
        (v2::Command::Proxy, v2::Addresses::IPv4(a)) => {
            ProxyHeader::Client(SocketAddr::from((a.source_address, a.source_port)))
        }
        (v2::Command::Proxy, v2::Addresses::IPv6(a)) => {
            ProxyHeader::Client(SocketAddr::from((a.source_address, a.source_port)))
        }
        (v2::Command::Proxy, _) => ProxyHeader::Unknown,
    })
}

/// The rest of a v1 header, up to its CRLF.
async fn read_v1<S: AsyncRead + Unpin>(
    stream: &mut S,
    start: [u8; 12],
) -> Result<ProxyHeader, ProxyHeaderError> {
    let mut line = Vec::with_capacity(V1_MAX);
    line.extend_from_slice(&start);
    while !line.ends_with(b"\r\n") {
        if line.len() >= V1_MAX {
            return Err(ProxyHeaderError::Oversized(V1_MAX));
        }
        let mut byte = [0u8; 1];
        read_exact(stream, &mut byte).await?;
        line.push(byte[0]);
    }
    parse_v1(&line)
}

/// Parses a whole v1 line, CRLF included.
pub fn parse_v1(bytes: &[u8]) -> Result<ProxyHeader, ProxyHeaderError> {
    let header =
        v1::Header::try_from(bytes).map_err(|e| ProxyHeaderError::Invalid(e.to_string()))?;
    Ok(match header.addresses {
        v1::Addresses::Tcp4(a) => {
            ProxyHeader::Client(SocketAddr::from((a.source_address, a.source_port)))
        }
        v1::Addresses::Tcp6(a) => {
            ProxyHeader::Client(SocketAddr::from((a.source_address, a.source_port)))
        }
        v1::Addresses::Unknown => ProxyHeader::Unknown,
    })
}

/// `read_exact`, with an early end reported as [`ProxyHeaderError::Truncated`].
async fn read_exact<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut [u8],
) -> Result<(), ProxyHeaderError> {
    stream
        .read_exact(buf)
        .await
        .map(|_| ())
        .map_err(|_| ProxyHeaderError::Truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read_all(bytes: &[u8]) -> (Result<ProxyHeader, ProxyHeaderError>, Vec<u8>) {
        let mut stream = bytes;
        let result = read(&mut stream).await;
        (result, stream.to_vec())
    }

    fn v2(command: u8, family: u8, block: &[u8]) -> Vec<u8> {
        let mut bytes = V2_SIGNATURE.to_vec();
        bytes.push(0x20 | command);
        bytes.push(family);
        bytes.extend_from_slice(&(block.len() as u16).to_be_bytes());
        bytes.extend_from_slice(block);
        bytes
    }

    #[tokio::test]
    async fn v1_names_the_client_and_leaves_what_follows() {
        let (result, rest) = read_all(b"PROXY TCP4 192.0.2.8 10.0.0.1 61000 443\r\nGET /").await;
        assert_eq!(
            result,
            Ok(ProxyHeader::Client("192.0.2.8:61000".parse().unwrap()))
        );
        assert_eq!(rest, b"GET /");
        let (result, _) = read_all(b"PROXY TCP6 2001:db8::8 ::1 5 443\r\n").await;
        assert_eq!(
            result,
            Ok(ProxyHeader::Client("[2001:db8::8]:5".parse().unwrap()))
        );
        let (result, _) = read_all(b"PROXY UNKNOWN\r\n").await;
        assert_eq!(result, Ok(ProxyHeader::Unknown));
    }

    #[tokio::test]
    async fn v2_names_the_client_and_leaves_what_follows() {
        let mut block = vec![192, 0, 2, 8, 10, 0, 0, 1];
        block.extend_from_slice(&61000u16.to_be_bytes());
        block.extend_from_slice(&443u16.to_be_bytes());
        let mut bytes = v2(1, 0x11, &block);
        bytes.extend_from_slice(b"\x16\x03\x01");
        let (result, rest) = read_all(&bytes).await;
        assert_eq!(
            result,
            Ok(ProxyHeader::Client("192.0.2.8:61000".parse().unwrap()))
        );
        assert_eq!(rest, b"\x16\x03\x01");
        let (local, _) = read_all(&v2(0, 0, &[])).await;
        assert_eq!(local, Ok(ProxyHeader::Unknown));
    }

    #[tokio::test]
    async fn bad_headers_are_refused_by_kind() {
        let cases: [(&[u8], &str); 6] = [
            (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "missing"),
            (b"PROXY TCP4 192.0.2.8 10.0", "truncated"),
            (b"PROXY TCP4 not-an-ip 10.0.0.1 1 2\r\n", "invalid"),
            (&[b'P'; 4], "truncated"),
            (b"\r\n\r\n\0\r\nQUIT\n\x21\x11\xff\xff", "oversized"),
            (b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c\xc0\x00", "truncated"),
        ];
        for (bytes, want) in cases {
            let (result, _) = read_all(bytes).await;
            assert_eq!(result.unwrap_err().label(), want, "{bytes:?}");
        }
        let mut long = b"PROXY TCP4 ".to_vec();
        long.extend_from_slice(&[b'1'; 200]);
        assert_eq!(
            read_all(&long).await.0,
            Err(ProxyHeaderError::Oversized(V1_MAX))
        );
    }

    #[test]
    fn what_looks_like_a_header() {
        assert!(looks_like_header(b"PROXY TCP4 1.2.3.4"));
        assert!(looks_like_header(V2_SIGNATURE));
        assert!(!looks_like_header(b"POST / HTTP/1.1"));
        assert!(!looks_like_header(b"\x16\x03\x01"));
    }
}
