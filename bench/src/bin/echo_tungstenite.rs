//! `echo_tungstenite`: the independent bench's echo backend. tokio-tungstenite
//! reads each whole message (reassembled, unmasked, UTF-8 checked for text)
//! before it echoes it, unlike `echo`, which streams frames back as they
//! arrive: a proxy in front of it sees whole-message echoes, one message per
//! write.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// WebSocket echo backend on tokio-tungstenite.
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
            eprintln!("echo_tungstenite: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(addr: SocketAddr) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(echo(stream));
    }
}

/// Echoes every data message, whole, until the client closes.
async fn echo(stream: TcpStream) {
    stream.set_nodelay(true).ok();
    let config = WebSocketConfig {
        max_message_size: Some(1 << 20),
        ..WebSocketConfig::default()
    };
    let Ok(ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else {
        return;
    };
    let (mut tx, mut rx) = ws.split();
    while let Some(Ok(message)) = rx.next().await {
        if (message.is_binary() || message.is_text()) && tx.send(message).await.is_err() {
            return;
        }
    }
}
