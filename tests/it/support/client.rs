//! Test clients: raw HTTP over TCP (to send exactly the bytes a case needs)
//! and tokio-tungstenite WebSocket clients.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::Request;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A bound on every wait in the tests, so a regression fails instead of
/// hanging; far above what any case needs.
pub const WAIT: Duration = Duration::from_secs(10);

/// A parsed HTTP response head plus whatever body arrived.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl RawResponse {
    /// The first value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

/// A WebSocket upgrade request head for `path` with extra header lines.
pub fn upgrade_request(path: &str, extra: &[&str]) -> String {
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: chat.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    );
    for line in extra {
        req.push_str(line);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    req
}

/// Sends raw bytes and reads the response head and any body that follows
/// until the connection closes or the head's Content-Length is reached.
pub async fn raw_request(addr: SocketAddr, request: &str) -> RawResponse {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    tokio::time::timeout(WAIT, read_response(&mut stream))
        .await
        .expect("response within the wait bound")
}

/// Reads one response from a stream (head, then Content-Length bytes or EOF).
pub async fn read_response(stream: &mut TcpStream) -> RawResponse {
    let mut data = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(pos) = find(&data, b"\r\n\r\n") {
            break pos + 4;
        }
        let n = stream.read(&mut chunk).await.unwrap_or(0);
        assert!(
            n > 0,
            "connection closed before a response head: {:?}",
            String::from_utf8_lossy(&data)
        );
        data.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut response = RawResponse {
        status,
        head,
        body: String::new(),
    };
    let length: Option<usize> = response
        .header("content-length")
        .and_then(|v| v.parse().ok());
    let chunked = response
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    let mut body = data[head_end..].to_vec();
    if status != 101 {
        while length.map_or(true, |l| body.len() < l) && !(chunked && body.ends_with(b"0\r\n\r\n"))
        {
            let n = stream.read(&mut chunk).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }
    if chunked {
        body = dechunk(&body);
    }
    response.body = String::from_utf8_lossy(&body).to_string();
    response
}

/// Decodes a complete chunked body (sizes in hex, each chunk then CRLF).
fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = find(data, b"\r\n") {
        let size = std::str::from_utf8(&data[..line_end])
            .ok()
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok());
        let Some(size) = size.filter(|s| *s > 0) else {
            break;
        };
        let start = line_end + 2;
        out.extend_from_slice(&data[start..(start + size).min(data.len())]);
        data = &data[(start + size + 2).min(data.len())..];
    }
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A WebSocket client request with extra headers.
pub fn ws_request(url: &str, headers: &[(&str, &str)]) -> Request<()> {
    let mut request = url.into_client_request().unwrap();
    for (name, value) in headers {
        request.headers_mut().append(
            tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    request
}

/// The client-side WebSocket type the tests use.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The next message that is not a ping (tungstenite answers pings itself),
/// over any WebSocket (TCP or an HTTP/2 stream); `None` once it has ended.
pub async fn next_message<S>(ws: &mut WebSocketStream<S>) -> Option<Message>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures_util::StreamExt;
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("message within bound")
        {
            Some(Ok(Message::Ping(_))) => continue,
            Some(Ok(m)) => return Some(m),
            Some(Err(_)) | None => return None,
        }
    }
}

/// The code of a close frame, if `message` is one with a code.
pub fn close_code(message: Option<Message>) -> Option<u16> {
    match message {
        Some(Message::Close(Some(frame))) => Some(frame.code.into()),
        _ => None,
    }
}

/// Connects a WebSocket client (bounded by [`WAIT`]).
pub async fn connect(
    request: Request<()>,
) -> Result<
    (
        Ws,
        tokio_tungstenite::tungstenite::handshake::client::Response,
    ),
    tokio_tungstenite::tungstenite::Error,
> {
    tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
        .await
        .expect("handshake within the wait bound")
}

/// Opens a raw TCP connection, upgrades it with [`upgrade_request`] plus
/// `extra` header lines, and asserts the 101: for tests that then write
/// frames byte by byte.
pub async fn raw_upgrade(addr: SocketAddr, extra: &[&str]) -> (TcpStream, RawResponse) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(upgrade_request("/", extra).as_bytes())
        .await
        .unwrap();
    let response = tokio::time::timeout(WAIT, read_response(&mut stream))
        .await
        .expect("101 within bound");
    assert_eq!(response.status, 101, "{}", response.head);
    (stream, response)
}

/// Reads from `stream` into `seen` until it contains `needle` (bounded by
/// [`WAIT`]); panics with what arrived if the stream ends first.
pub async fn read_until(stream: &mut TcpStream, seen: &mut Vec<u8>, needle: &[u8]) {
    let read = async {
        let mut chunk = [0u8; 4096];
        while find(seen, needle).is_none() {
            let n = stream.read(&mut chunk).await.unwrap_or(0);
            assert!(
                n > 0,
                "ended before {:?}: {:?}",
                String::from_utf8_lossy(needle),
                String::from_utf8_lossy(seen)
            );
            seen.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(WAIT, read).await.unwrap_or_else(|_| {
        panic!(
            "no {:?} within the wait bound",
            String::from_utf8_lossy(needle)
        )
    });
}
