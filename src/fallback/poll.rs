//! Delivery to the client: `GET …/poll?ack=N` and `GET …/sse`.
//!
//! Both start from what the client says it has (`ack` or `Last-Event-ID`),
//! which also acknowledges everything up to there; everything after is sent
//! again until acknowledged, so a response lost in transit costs nothing.
//! Only one poll or stream delivers at a time: a new one supersedes the old,
//! which ends (a poll answers with no events and `"superseded":true`).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response};
use http_body::Frame;
use tokio::sync::mpsc;
use tokio::time::{interval_at, sleep_until, Instant};

use super::exchange::{json, query_number, query_pairs, set_common};
use super::protocol::{encode_event, encode_poll, Payload};
use super::session::{Attached, Session};
use crate::http::body::{Body, BodyError};
use crate::http::error::ProxyError;

/// Upper bound on the events of one poll answer or SSE write, in payload bytes.
const MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// SSE comment interval, below common proxy idle cuts.
pub const SSE_HEARTBEAT: Duration = Duration::from_secs(15);

/// Padding sent first on an SSE stream: some proxies hold back the start of
/// a response until a few KiB have arrived.
const SSE_PADDING: usize = 2048;

/// Answers a long-poll: the unacknowledged events after `ack`, or none once
/// the poll hold passes or a newer poll takes over.
pub async fn poll(session: Arc<Session>, req: Request<Body>) -> Result<Response<Body>, ProxyError> {
    let ack = query_number(&query_pairs(req.uri().query())?, "ack")?;
    session.ack(ack)?;
    let origin = req.headers().get(header::ORIGIN).cloned();
    let _attached = session.attach();
    let generation = session.claim_consumer();
    let deadline = Instant::now() + session.settings.poll_hold;
    let mut changed = session.subscribe();
    loop {
        changed.borrow_and_update();
        if !session.is_current(generation) {
            return Ok(json(encode_poll(&[], true), origin.as_ref()));
        }
        let events = session.events_after(ack, MAX_RESPONSE_BYTES);
        if !events.is_empty() {
            return Ok(json(encode_poll(&events, false), origin.as_ref()));
        }
        tokio::select! {
            _ = changed.changed() => {}
            _ = session.gone.cancelled() => return Err(ProxyError::SessionUnknown),
            _ = sleep_until(deadline) => return Ok(json(encode_poll(&[], false), origin.as_ref())),
        }
    }
}

/// Opens an SSE stream starting after `Last-Event-ID` (or `?ack=`).
pub fn sse(session: Arc<Session>, req: Request<Body>) -> Result<Response<Body>, ProxyError> {
    let from = match req.headers().get("last-event-id") {
        Some(id) => id
            .to_str()
            .ok()
            .and_then(|id| id.trim().parse().ok())
            .ok_or_else(|| {
                ProxyError::BadFallbackRequest("Last-Event-ID is not a number".into())
            })?,
        None => query_number(&query_pairs(req.uri().query())?, "ack")?,
    };
    session.ack(from)?;
    let generation = session.claim_consumer();
    let (tx, rx) = mpsc::channel(1);
    let attached = session.attach();
    tokio::spawn(produce(session, generation, from, tx, attached));
    let mut response = Response::new(Body::new(SseBody { rx }));
    set_common(
        &mut response,
        "text/event-stream",
        req.headers().get(header::ORIGIN),
    );
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-transform"),
    );
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// Writes the stream until the client leaves, the close event is sent, a
/// newer consumer takes over or the session is gone. `tx.send` waiting is
/// the backpressure: a client that does not read gets nothing more queued,
/// and since it acknowledges nothing either, its session expires
/// (`Session::idle_deadline`), which ends this task too.
async fn produce(
    session: Arc<Session>,
    generation: u64,
    mut cursor: u64,
    tx: mpsc::Sender<Bytes>,
    _attached: Attached,
) {
    if !deliver(&session, generation, &tx, preamble()).await {
        return;
    }
    let mut changed = session.subscribe();
    let mut heartbeat = interval_at(Instant::now() + SSE_HEARTBEAT, SSE_HEARTBEAT);
    loop {
        changed.borrow_and_update();
        if !session.is_current(generation) {
            return;
        }
        let events = session.events_after(cursor, MAX_RESPONSE_BYTES);
        if let Some((last, _)) = events.last() {
            cursor = *last;
            let closed = events
                .iter()
                .any(|(_, p)| matches!(p, Payload::Close { .. }));
            if !deliver(&session, generation, &tx, sse_events(&events)).await || closed {
                return;
            }
            continue;
        }
        tokio::select! {
            _ = changed.changed() => {}
            _ = heartbeat.tick() => {
                let keepalive = Bytes::from_static(b": keepalive\n\n");
                if !deliver(&session, generation, &tx, keepalive).await {
                    return;
                }
            }
            _ = tx.closed() => return,
            _ = session.gone.cancelled() => return,
        }
    }
}

/// Hands `bytes` to the response body; `false` when the client left, or
/// while waiting for a slow reader the session went away or a newer poll
/// or stream took over.
async fn deliver(
    session: &Session,
    generation: u64,
    tx: &mpsc::Sender<Bytes>,
    bytes: Bytes,
) -> bool {
    tokio::select! {
        sent = tx.send(bytes) => sent.is_ok(),
        _ = session.gone.cancelled() => false,
        () = superseded(session, generation) => false,
    }
}

/// Resolves once `generation` is no longer the delivering consumer.
async fn superseded(session: &Session, generation: u64) {
    let mut changed = session.subscribe();
    while session.is_current(generation) {
        if changed.changed().await.is_err() {
            return;
        }
    }
}

/// Padding comment, reconnect delay, and the `ready` event the client waits
/// for to know that events get through (a buffering proxy would hold it).
pub(crate) fn preamble() -> Bytes {
    let mut text = String::with_capacity(SSE_PADDING + 64);
    text.push(':');
    text.push_str(&" ".repeat(SSE_PADDING));
    text.push_str("\n\nretry: 1000\nevent: ready\ndata: {}\n\n");
    Bytes::from(text)
}

/// `id: <seq>` and `data: <event JSON>` per event.
pub(crate) fn sse_events(events: &[(u64, Payload)]) -> Bytes {
    let mut text = String::new();
    for (seq, payload) in events {
        text.push_str(&format!(
            "id: {seq}\ndata: {}\n\n",
            encode_event(*seq, payload)
        ));
    }
    Bytes::from(text)
}

/// A response body fed by the producer task; `Sync` as every body must be.
pub(crate) struct SseBody {
    pub(crate) rx: mpsc::Receiver<Bytes>,
}

impl http_body::Body for SseBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        self.rx
            .poll_recv(cx)
            .map(|chunk| chunk.map(|b| Ok(Frame::data(b))))
    }
}
