//! Idle connections: open many, echo one message on each (or none, as the
//! independent bench does), then hold them and measure how much resident
//! memory the proxy gained per connection.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{sleep, timeout};

use super::{CONNECT_DEADLINE, DRAIN_DEADLINE, READ_TIMEOUT, SMALL_READ_BUF};
use crate::client::{Target, WsClient, MASK_KEY};
use crate::frame::{client_frame, OP_BINARY};
use crate::procfs::Watch;
use crate::stats::metric;

/// Size of the one message echoed on each connection before it goes idle,
/// so that every proxy has seen traffic both ways (and may have grown and
/// then released its buffers).
pub const FIRST_MESSAGE: usize = 64;

/// Opens `conns` connections, at most `concurrency` handshakes at a time,
/// echoes a `first` message of that size on each (if any), waits `settle`,
/// and prints the proxy's RSS growth per connection.
pub async fn hold(
    target: Target,
    conns: usize,
    concurrency: usize,
    settle: Duration,
    first: Option<usize>,
    watch: Watch,
) -> Result<(), String> {
    let baseline = watch.rss_kib().map_err(|e| e.to_string())?;
    let permits = Arc::new(Semaphore::new(concurrency));
    let (release, released) = watch::channel(false);
    let opened = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let frame = Arc::new(first.map(|size| client_frame(OP_BINARY, &vec![0x42; size], MASK_KEY)));
    let mut tasks = JoinSet::new();
    for _ in 0..conns {
        let (target, permits, frame) = (target.clone(), permits.clone(), frame.clone());
        let (opened, failed, released) = (opened.clone(), failed.clone(), released.clone());
        tasks.spawn(async move {
            let permit = permits.acquire_owned().await;
            match timeout(READ_TIMEOUT, open(&target, &frame)).await {
                Ok(Ok(ws)) => {
                    opened.fetch_add(1, Relaxed);
                    drop(permit);
                    idle(ws, released).await;
                }
                _ => {
                    failed.fetch_add(1, Relaxed);
                }
            }
        });
    }
    let deadline = Instant::now() + CONNECT_DEADLINE;
    while opened.load(Relaxed) + failed.load(Relaxed) < conns && Instant::now() < deadline {
        sleep(Duration::from_millis(20)).await;
    }
    sleep(settle).await;
    let after = watch.rss_kib().map_err(|e| e.to_string())?;
    let open_now = opened.load(Relaxed);
    release.send(true).ok();
    if timeout(DRAIN_DEADLINE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        tasks.abort_all();
    }
    metric("conns_open", open_now as f64);
    metric("conns_failed", failed.load(Relaxed) as f64);
    metric("rss_baseline_kib", baseline as f64);
    metric("rss_held_kib", after as f64);
    if open_now == 0 {
        return Err("no connection could be opened".into());
    }
    metric(
        "rss_kib_per_conn",
        (after as f64 - baseline as f64) / open_now as f64,
    );
    Ok(())
}

/// Connects and echoes one message, if there is one.
async fn open(target: &Target, frame: &Option<Vec<u8>>) -> io::Result<WsClient> {
    let mut ws = WsClient::connect(target, SMALL_READ_BUF).await?;
    let Some(frame) = frame else { return Ok(ws) };
    ws.send(frame).await?;
    loop {
        let got = ws.read().await?;
        if got.eof || got.closed {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if got.messages > 0 {
            return Ok(ws);
        }
    }
}

/// Holds a connection, answering pings, until released or closed.
async fn idle(mut ws: WsClient, mut released: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = released.changed() => return,
            got = ws.read() => match got {
                Ok(got) if !got.eof && !got.closed => {}
                _ => return,
            },
        }
    }
}
