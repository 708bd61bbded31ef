//! Connection churn: connect (TCP, and TLS for `wss://`), upgrade, close,
//! as fast as a few concurrent workers can; and a one-shot probe.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio::time::timeout;

use super::{READ_TIMEOUT, SMALL_READ_BUF};
use crate::client::{Target, WsClient, MASK_KEY};
use crate::frame::{client_frame, OP_BINARY};
use crate::procfs::Watch;
use crate::stats::metric;

/// Runs `concurrency` workers for `duration`, each repeating a full
/// connect + upgrade + close; prints the rate and, with a watched proxy, its
/// CPU time per handshake. TLS handshakes are full ones: the client never
/// resumes a session.
pub async fn handshakes(
    target: Target,
    concurrency: usize,
    duration: Duration,
    watch: Watch,
) -> Result<(), String> {
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let cpu_before = match watch.is_empty() {
        true => None,
        false => Some(watch.cpu_us().map_err(|e| e.to_string())?),
    };
    let start = Instant::now();
    let deadline = start + duration;
    let mut workers = JoinSet::new();
    for _ in 0..concurrency {
        let (target, ok, failed) = (target.clone(), ok.clone(), failed.clone());
        workers.spawn(async move {
            while Instant::now() < deadline {
                match timeout(READ_TIMEOUT, once(&target)).await {
                    Ok(Ok(())) => ok.fetch_add(1, Relaxed),
                    _ => failed.fetch_add(1, Relaxed),
                };
            }
        });
    }
    while workers.join_next().await.is_some() {}
    let elapsed = start.elapsed();
    let (ok, failed) = (ok.load(Relaxed), failed.load(Relaxed));
    metric("handshakes", ok as f64);
    metric("handshake_errors", failed as f64);
    metric("handshakes_per_s", ok as f64 / elapsed.as_secs_f64());
    if ok == 0 || failed * 100 > ok {
        return Err(format!("{failed} of {} handshakes failed", ok + failed));
    }
    if let Some(before) = cpu_before {
        let after = watch.cpu_us().map_err(|e| e.to_string())?;
        metric("cpu_us_per_handshake", (after - before) / ok as f64);
    }
    Ok(())
}

/// One connect + upgrade + close handshake.
async fn once(target: &Target) -> io::Result<()> {
    WsClient::connect(target, SMALL_READ_BUF)
        .await?
        .close()
        .await
}

/// Connects, echoes one message, closes: exits 0 if the target works.
pub async fn probe(target: Target) -> Result<(), String> {
    let run = async {
        let mut ws = WsClient::connect(&target, SMALL_READ_BUF).await?;
        ws.send(&client_frame(OP_BINARY, b"probe", MASK_KEY))
            .await?;
        loop {
            let got = ws.read().await?;
            if got.messages > 0 {
                break;
            }
            if got.eof || got.closed {
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
            }
        }
        ws.close().await
    };
    match timeout(READ_TIMEOUT, run).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".into()),
    }
}
