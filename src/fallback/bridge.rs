//! The bridge: one tracked task per session holding the backend WebSocket.
//!
//! tokio-tungstenite does the framing (the gateway is a WebSocket *client*
//! here, and must mask). Reading and writing run concurrently so a backend
//! that writes while we write cannot deadlock us; reading pauses while the
//! session's outbox is full, which is the backpressure the backend feels.
//! The task is tracked by the drain ([`Shutdown::track_session`]), and it
//! ends on expiry (backend 1001), on the client's abort, or once the close
//! is over and the client has acknowledged it. On shutdown the backend gets
//! 1001 at once, but the client's 1012 ("reconnect") is an event like any
//! other: the session stays answerable until the client has acknowledged
//! it, or until the gateway takes no more requests. Otherwise a long-poll
//! client that is between two polls when the drain starts would find its
//! session gone (404) instead of being told to reconnect.

use std::sync::Arc;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

use super::protocol::Payload;
use super::session::Session;
use super::store::SessionStore;
use crate::shutdown::Shutdown;
use crate::upstream::Lease;
use crate::ws::close::{
    reason, CLOSE_TIMEOUT, GOING_AWAY, INTERNAL_ERROR, NO_STATUS, SERVICE_RESTART,
};
use crate::ws::dial::BackendIo;

/// The backend WebSocket of a session.
pub type BackendWs = WebSocketStream<BackendIo>;

/// A session's backend: its WebSocket, and the lease that counts the
/// session on that backend (`least_conn`) until the bridge ends.
#[derive(Debug)]
pub struct Backend {
    /// The backend WebSocket.
    pub ws: BackendWs,
    /// Held by the bridge task, released when it ends.
    pub lease: Lease,
}
type Sink = SplitSink<BackendWs, Message>;
type Stream = SplitStream<BackendWs>;

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The backend sent close (or answered the client's).
    BackendClosed,
    /// The backend connection broke without a close.
    BackendLost,
    /// The gateway is draining.
    Shutdown,
    /// Nobody polled for `fallback_session_timeout`.
    Expired,
    /// The client called `POST …/close`.
    Aborted,
}

impl End {
    /// How logs spell the end, in the words of the relay's `end` label.
    fn label(self) -> &'static str {
        match self {
            End::BackendClosed => "close_handshake",
            End::BackendLost => "backend_gone",
            End::Shutdown => "shutdown",
            End::Expired => "expired",
            End::Aborted => "client_closed",
        }
    }
}

/// Starts the session's bridge as a task the drain waits for. When the
/// drain begins the backend gets 1001 and the client 1012; once the gateway
/// takes no more requests (the drain's closing stage), nobody can collect
/// an event any more, so the bridge stops waiting for an acknowledgement.
pub fn spawn(
    shutdown: &Shutdown,
    store: Arc<dyn SessionStore>,
    session: Arc<Session>,
    backend: Backend,
    inbox: mpsc::Receiver<Payload>,
) {
    let drain = shutdown.clone();
    shutdown.track_session(async move {
        let Backend { ws, lease: _lease } = backend;
        let (mut sink, mut stream) = ws.split();
        let end = tokio::select! {
            biased;
            _ = drain.draining().cancelled() => End::Shutdown,
            _ = session.aborted.cancelled() => End::Aborted,
            _ = expiry(&session) => End::Expired,
            end = pump(&mut sink, &mut stream, inbox, &session) => end,
        };
        finish(end, &session, sink, stream, drain.closing()).await;
        store.remove(&session.id);
        session.gone.cancel();
        session.stats.ended(end == End::Expired);
        tracing::info!(
            route = session.stats.route(),
            session = %session.id,
            transport = session.stats.transport().label(),
            end = end.label(),
            "fallback session ended"
        );
    });
}

/// Moves messages both ways until the backend side ends.
async fn pump(
    sink: &mut Sink,
    stream: &mut Stream,
    inbox: mpsc::Receiver<Payload>,
    session: &Session,
) -> End {
    tokio::select! {
        end = read_backend(stream, session) => end,
        () = write_backend(sink, inbox) => End::BackendLost,
    }
}

/// Backend → outbox, pausing while the outbox is full.
async fn read_backend(stream: &mut Stream, session: &Session) -> End {
    loop {
        wait_for_space(session).await;
        let payload = match stream.next().await {
            Some(Ok(Message::Text(text))) => Payload::Text(text),
            Some(Ok(Message::Binary(data))) => Payload::Binary(data.into()),
            Some(Ok(Message::Close(frame))) => {
                let (code, reason) = frame.map_or((1005, String::new()), |f| {
                    (u16::from(f.code), f.reason.into_owned())
                });
                session.push(Payload::Close { code, reason });
                return End::BackendClosed;
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => {
                tracing::info!(session = %session.id, error = %e, "fallback backend failed");
                return End::BackendLost;
            }
            None => return End::BackendLost,
        };
        session.stats.to_client();
        session.push(payload);
    }
}

/// Resolves once the outbox has room.
async fn wait_for_space(session: &Session) {
    let mut changed = session.subscribe();
    while !session.has_space() {
        if changed.changed().await.is_err() {
            return;
        }
    }
}

/// Inbox → backend. Returns when the backend cannot be written.
async fn write_backend(sink: &mut Sink, mut inbox: mpsc::Receiver<Payload>) {
    while let Some(payload) = inbox.recv().await {
        let message = match payload {
            Payload::Text(text) => Message::Text(text),
            Payload::Binary(data) => Message::Binary(data.to_vec()),
            Payload::Close { code, reason } => Message::Close(close_frame(code, reason)),
        };
        if sink.send(message).await.is_err() {
            return;
        }
    }
    std::future::pending::<()>().await;
}

/// Completes the end: tells whichever side does not know yet, then, when
/// the client has a close event to collect, waits for its acknowledgement.
async fn finish(
    end: End,
    session: &Session,
    mut sink: Sink,
    stream: Stream,
    unreachable: &CancellationToken,
) {
    let to_backend = match end {
        End::Shutdown => Some((GOING_AWAY, reason::SHUTTING_DOWN.to_string())),
        End::Expired => Some((GOING_AWAY, reason::SESSION_EXPIRED.to_string())),
        End::Aborted => match session.take_abort() {
            Some(Payload::Close { code, reason }) => Some((code, reason)),
            _ => Some((NO_STATUS, String::new())),
        },
        End::BackendClosed | End::BackendLost => None,
    };
    // The client first: a held poll answers while the backend says goodbye.
    match end {
        End::Shutdown => session.push(Payload::Close {
            code: SERVICE_RESTART,
            reason: reason::RESTARTING.into(),
        }),
        End::BackendLost => session.push(Payload::Close {
            code: INTERNAL_ERROR,
            reason: reason::BACKEND_GONE.into(),
        }),
        _ => {}
    }
    match to_backend {
        Some((code, reason)) => close_backend(&mut sink, stream, code, reason).await,
        None => {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.close()).await;
        }
    }
    if matches!(end, End::BackendClosed | End::BackendLost | End::Shutdown) {
        tokio::select! {
            _ = unreachable.cancelled() => {}
            _ = session.aborted.cancelled() => {}
            _ = expiry(session) => {}
            _ = finished(session) => {}
        }
    }
}

/// Sends a close to the backend and waits (bounded) for its reply.
async fn close_backend(sink: &mut Sink, mut stream: Stream, code: u16, reason: String) {
    let handshake = async {
        sink.send(Message::Close(close_frame(code, reason))).await?;
        while let Some(message) = stream.next().await {
            if message?.is_close() {
                break;
            }
        }
        Ok::<_, tokio_tungstenite::tungstenite::Error>(())
    };
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, handshake).await;
}

/// A close frame; 1005 means "no status" and sends an empty close.
fn close_frame(code: u16, reason: String) -> Option<CloseFrame<'static>> {
    (code != NO_STATUS).then(|| CloseFrame {
        code: CloseCode::from(code),
        reason: reason.into(),
    })
}

/// Resolves when the session has had no client activity for its timeout
/// (see [`Session::idle_deadline`]). Re-reads the deadline at every
/// downstream change, since an event or a detach can start the clock.
async fn expiry(session: &Session) {
    let mut changed = session.subscribe();
    loop {
        changed.borrow_and_update();
        let deadline = session.idle_deadline();
        if deadline.is_some_and(|d| d <= tokio::time::Instant::now()) {
            return;
        }
        // The sender lives in the session, which outlives this future.
        let far = tokio::time::Instant::now() + session.settings.session_timeout;
        tokio::select! {
            _ = changed.changed() => {}
            () = tokio::time::sleep_until(deadline.unwrap_or(far)) => {}
        }
    }
}

/// Resolves when the client has acknowledged the close event.
async fn finished(session: &Session) {
    let mut changed = session.subscribe();
    while !session.is_finished() {
        if changed.changed().await.is_err() {
            return;
        }
    }
}
