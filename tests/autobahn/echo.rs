//! A small WebSocket echo server for the Autobahn|Testsuite runs
//! (`scripts/autobahn.sh`): tokio-tungstenite, echoing every text and binary
//! message, the equivalent of tokio-tungstenite's `autobahn-server` example.
//!
//! Usage: `cargo run --example autobahn-echo -- 127.0.0.1:0`; prints
//! `listening on ADDR` once bound, so a script can wait for that line.

use std::net::SocketAddr;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::{Error, Result};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let bind = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = TcpListener::bind(&bind).await?;
    println!("listening on {}", listener.local_addr()?);
    loop {
        let (stream, peer) = listener.accept().await?;
        tokio::spawn(async move {
            if let Err(e) = serve(stream, peer).await {
                match e {
                    Error::ConnectionClosed | Error::Protocol(_) | Error::Utf8 => {}
                    e => eprintln!("{peer}: {e}"),
                }
            }
        });
    }
}

/// Echoes data messages until the peer closes (tungstenite answers pings
/// and close frames itself).
async fn serve(stream: TcpStream, _peer: SocketAddr) -> Result<()> {
    let mut ws = tokio_tungstenite::accept_async(stream).await?;
    while let Some(message) = ws.next().await {
        let message = message?;
        if message.is_text() || message.is_binary() {
            ws.send(message).await?;
        }
    }
    Ok(())
}
