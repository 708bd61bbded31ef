//! The load generator's WebSocket client: TCP (optionally TLS) connect, the
//! HTTP/1.1 upgrade (or, for `h2wss://`, an HTTP/2 extended CONNECT stream,
//! [`crate::h2ws`]), and a read buffer feeding a [`MessageCounter`].
//!
//! TLS is set up for measuring servers, not for security: every connection
//! performs a full TLS 1.3 handshake (resumption disabled, one fixed cipher
//! suite so that every proxy does the same work), and the server certificate
//! is not checked against a CA — the benchmark only ever talks to loopback
//! processes it started itself. Handshake signatures are still verified, so
//! the client does the work a real one would.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::frame::{self, Event, MessageCounter};
use crate::h2ws::H2Sessions;

/// Largest response head accepted for the upgrade.
const MAX_RESPONSE_HEAD: usize = 8192;

/// A fixed `Sec-WebSocket-Key`: proxies only check its shape, and a constant
/// keeps key generation out of the handshake-rate measurement.
const WS_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// Masking key for every client frame. Proxies forward masked payloads
/// without looking at the key, so a fixed one lets frames be encoded once.
pub const MASK_KEY: [u8; 4] = [0x5a, 0x17, 0xc3, 0x9e];

/// What one [`WsClient::read`] brought.
#[derive(Debug, Default, Clone, Copy)]
pub struct Received {
    /// Whole data messages that arrived.
    pub messages: usize,
    /// The server sent a close frame.
    pub closed: bool,
    /// The server ended the stream.
    pub eof: bool,
}

/// Any byte stream a connection can run on (plain TCP or TLS).
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Where to connect: parsed from a `ws://`, `wss://` or `h2wss://` URL on
/// an IP address.
#[derive(Clone)]
pub struct Target {
    /// Socket address of the server.
    pub addr: SocketAddr,
    /// `host:port` for the Host header.
    pub authority: String,
    /// Request path.
    pub path: String,
    /// TLS connector for `wss://` and `h2wss://`, `None` for `ws://`.
    pub tls: Option<TlsConnector>,
    /// For `h2wss://`: the HTTP/2 connections the WebSockets share.
    pub h2: Option<Arc<H2Sessions>>,
    /// Header lines added to the upgrade request (`--browser-headers`).
    pub extra_headers: &'static str,
}

/// What a browser adds to a WebSocket upgrade, about 500 bytes: the
/// shape the independent bench measured idle memory with.
pub const BROWSER_HEADERS: &str = "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36\r\n\
Accept-Language: en-GB,en-US;q=0.9,en;q=0.8,de;q=0.7\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Cache-Control: no-cache\r\n\
Pragma: no-cache\r\n\
Origin: http://127.0.0.1\r\n\
Cookie: session=9f8e7d6c5b4a39281706f5e4d3c2b1a0; _ga=GA1.1.1234567890.1700000000; _gid=GA1.1.987654321.1700000000; theme=dark; consent=analytics%3Dyes%26ads%3Dno\r\n";

impl Target {
    /// Parses `ws://127.0.0.1:port/path`, `wss://...` or `h2wss://...`
    /// (WebSockets over HTTP/2, 10 per connection; see
    /// [`Target::h2_streams`]); only IP literals, since the benchmark never
    /// resolves names.
    pub fn parse(url: &str) -> Result<Target, String> {
        let (tls, h2, rest) = if let Some(rest) = url.strip_prefix("wss://") {
            (true, false, rest)
        } else if let Some(rest) = url.strip_prefix("h2wss://") {
            (true, true, rest)
        } else if let Some(rest) = url.strip_prefix("ws://") {
            (false, false, rest)
        } else {
            return Err(format!("{url}: expected ws://, wss:// or h2wss://"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let addr: SocketAddr = authority
            .parse()
            .map_err(|e| format!("{url}: expected ip:port ({e})"))?;
        let alpn: &[u8] = if h2 { b"h2" } else { b"http/1.1" };
        Ok(Target {
            addr,
            authority: authority.to_string(),
            path: path.to_string(),
            tls: tls.then(|| tls_connector(alpn)),
            h2: h2.then(|| H2Sessions::new(10)),
            extra_headers: "",
        })
    }

    /// For `h2wss://`: `n` WebSockets per HTTP/2 connection.
    pub fn h2_streams(mut self, n: usize) -> Target {
        if self.h2.is_some() {
            self.h2 = Some(H2Sessions::new(n));
        }
        self
    }
}

/// An open WebSocket client connection.
pub struct WsClient {
    /// The underlying stream.
    io: Box<dyn Io>,
    /// Bytes read but not yet consumed by the counter.
    buf: Vec<u8>,
    /// How many bytes of `buf` are filled.
    filled: usize,
    /// Message framing state of the server's stream.
    counter: MessageCounter,
}

impl WsClient {
    /// Connects, performs the upgrade, and keeps a read buffer of `buf_size`.
    pub async fn connect(target: &Target, buf_size: usize) -> io::Result<WsClient> {
        if let Some(sessions) = &target.h2 {
            let io: Box<dyn Io> = Box::new(sessions.open(target).await?);
            return Ok(WsClient::over(io, Vec::new(), 0, buf_size));
        }
        let tcp = TcpStream::connect(target.addr).await?;
        tcp.set_nodelay(true)?;
        let mut io: Box<dyn Io> = match &target.tls {
            Some(connector) => {
                let name = ServerName::IpAddress(target.addr.ip().into());
                Box::new(connector.connect(name, tcp).await?)
            }
            None => Box::new(tcp),
        };
        let (buf, filled) = upgrade(&mut io, target).await?;
        Ok(WsClient::over(io, buf, filled, buf_size))
    }

    /// A client on an upgraded stream whose first `filled` bytes of `buf`
    /// are frames already read.
    fn over(io: Box<dyn Io>, mut buf: Vec<u8>, filled: usize, buf_size: usize) -> WsClient {
        buf.resize(buf_size.max(filled).max(frame::MAX_HEADER_LEN + 125), 0);
        buf.shrink_to_fit();
        WsClient {
            io,
            buf,
            filled,
            counter: MessageCounter::default(),
        }
    }

    /// Writes pre-encoded frames.
    pub async fn send(&mut self, frames: &[u8]) -> io::Result<()> {
        self.io.write_all(frames).await
    }

    /// Reads once (waiting if nothing is buffered) and reports what arrived.
    /// Pings are answered here. Cancel-safe: nothing is lost if the future is
    /// dropped while it waits.
    pub async fn read(&mut self) -> io::Result<Received> {
        let n = self.io.read(&mut self.buf[self.filled..]).await?;
        let mut received = Received {
            eof: n == 0,
            ..Received::default()
        };
        self.filled += n;
        let mut pings = Vec::new();
        let used = self
            .counter
            .feed(&self.buf[..self.filled], |event| match event {
                Event::Message => received.messages += 1,
                Event::Ping(payload) => pings.push(payload),
                Event::Close => received.closed = true,
            });
        self.buf.copy_within(used..self.filled, 0);
        self.filled -= used;
        for payload in pings {
            let pong = frame::client_frame(frame::OP_PONG, &payload, MASK_KEY);
            self.io.write_all(&pong).await?;
        }
        Ok(received)
    }

    /// Sends a close frame (1000) and waits, bounded by the caller, for the
    /// server's close and then its end of stream, so that the server closes
    /// the TCP connection first and keeps the TIME_WAIT state.
    pub async fn close(mut self) -> io::Result<()> {
        let close = frame::client_frame(frame::OP_CLOSE, &1000u16.to_be_bytes(), MASK_KEY);
        self.io.write_all(&close).await?;
        while !self.read().await?.eof {}
        Ok(())
    }
}

/// Sends the upgrade request for `target` on an open stream and reads the
/// response head. On a 101, returns a buffer whose first `filled` bytes are
/// what the server sent after the head (the start of its frames); any other
/// status is an error naming the status line.
pub async fn upgrade<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    target: &Target,
) -> io::Result<(Vec<u8>, usize)> {
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n{}\r\n",
        target.path, target.authority, target.extra_headers
    );
    io.write_all(request.as_bytes()).await?;
    let mut buf = vec![0; MAX_RESPONSE_HEAD];
    let mut filled = 0;
    let head_end = loop {
        if let Some(i) = find(&buf[..filled], b"\r\n\r\n") {
            break i + 4;
        }
        if filled == MAX_RESPONSE_HEAD {
            return Err(invalid("upgrade response head too long"));
        }
        let n = io.read(&mut buf[filled..MAX_RESPONSE_HEAD]).await?;
        if n == 0 {
            return Err(invalid("connection closed during the upgrade"));
        }
        filled += n;
    };
    if !buf.starts_with(b"HTTP/1.1 101") {
        let line = String::from_utf8_lossy(&buf[..find(&buf, b"\r\n").unwrap_or(0)]);
        return Err(invalid(&format!("upgrade refused: {line}")));
    }
    buf.copy_within(head_end..filled, 0);
    Ok((buf, filled - head_end))
}

/// The error for a server that does not speak WebSocket as expected.
fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_string())
}

/// Position of `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// TLS 1.3 only, one cipher suite, no resumption, ALPN `alpn`.
fn tls_connector(alpn: &[u8]) -> TlsConnector {
    let base = ring::default_provider();
    let provider = CryptoProvider {
        cipher_suites: vec![ring::cipher_suite::TLS13_AES_128_GCM_SHA256],
        ..base
    };
    let provider = Arc::new(provider);
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3 with the ring provider")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    config.alpn_protocols = vec![alpn.to_vec()];
    TlsConnector::from(Arc::new(config))
}

/// Accepts any certificate but verifies handshake signatures with it.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
