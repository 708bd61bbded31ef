//! One session's state, shared by its HTTP requests and its bridge task.
//!
//! To the client, events wait in an outbox until the client acknowledges them,
//! so a lost poll response is simply delivered again. To the backend, the next
//! expected sequence number makes a retried POST harmless. Both halves are
//! bounded: the outbox by `fallback_buffer` bytes (the bridge stops reading
//! the backend when it is full), the inbox by [`INBOX_QUEUE`].
//!
//! A session expires after `fallback_session_timeout` without the client.
//! An open poll or stream counts as the client being there only while it
//! keeps up: once events wait unacknowledged for the timeout (an event
//! stream whose reader stalled, or that never acknowledges), the session
//! expires all the same, so a stalled reader cannot pin a paused backend.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use http::header::{self, HeaderMap, HeaderValue};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::protocol::{Batch, Payload, SessionId};
use super::stats::SessionMeter;
use crate::config::FallbackSettings;
use crate::http::error::ProxyError;

/// Messages queued for the backend writer; a POST waits when it is full.
pub const INBOX_QUEUE: usize = 64;

/// What a session is made from.
#[derive(Debug)]
pub struct SessionInit {
    /// The session's id.
    pub id: SessionId,
    /// The Origin that opened it; every later request must match.
    pub origin: Option<HeaderValue>,
    /// The client's IP, for the per-client cap.
    pub client_ip: IpAddr,
    /// The route's index, for the per-client cap.
    pub route_index: usize,
    /// The route's fallback tuning.
    pub settings: FallbackSettings,
    /// The route's `max_message_size`, applied to the client's messages.
    pub max_message: u64,
    /// Counters to update.
    pub stats: SessionMeter,
}

/// A fallback session.
#[derive(Debug)]
pub struct Session {
    /// The session's id.
    pub id: SessionId,
    /// Route index, for the per-client cap.
    pub route_index: usize,
    /// Client IP, for the per-client cap.
    pub client_ip: IpAddr,
    /// Fallback tuning of the route.
    pub settings: FallbackSettings,
    /// Largest message from the client.
    pub max_message: u64,
    /// Counters to update.
    pub stats: SessionMeter,
    /// The Origin bound at open.
    origin: Option<HeaderValue>,
    /// Events for the client, until acknowledged.
    down: Mutex<Outbox>,
    /// Bumped on every downstream change, waking polls, streams and the
    /// bridge's reader waiting for space.
    changed: watch::Sender<()>,
    /// Sequencing of the client's messages; async because a POST waits for
    /// queue space.
    inbox: tokio::sync::Mutex<Inbox>,
    /// When the client was last seen, and whether a poll or stream is open.
    activity: Mutex<Activity>,
    /// The client's `POST …/close`, taken by the bridge.
    abort: Mutex<Option<Payload>>,
    /// Cancelled by `POST …/close`.
    pub aborted: CancellationToken,
    /// Cancelled when the session is forgotten: held requests end.
    pub gone: CancellationToken,
}

/// Where the downstream stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DownState {
    /// Messages may still come.
    Open,
    /// The close event has this seq; nothing follows it.
    Closed(u64),
}

#[derive(Debug)]
struct Outbox {
    events: VecDeque<(u64, Payload)>,
    /// Since when the client has made no progress on the events waiting:
    /// set when an event arrives in an empty outbox and at every ack that
    /// leaves some; `None` while nothing waits.
    waiting_since: Option<Instant>,
    bytes: usize,
    last_seq: u64,
    acked: u64,
    /// Generation of the poll or stream allowed to deliver.
    consumer: u64,
    state: DownState,
}

/// Where the client's message stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InboxState {
    /// Messages are accepted.
    Open,
    /// The client's close went to the backend; nothing more is accepted.
    Closing,
}

#[derive(Debug)]
struct Inbox {
    next_seq: u64,
    tx: mpsc::Sender<Payload>,
    state: InboxState,
}

#[derive(Debug)]
struct Activity {
    last_seen: Instant,
    attached: usize,
}

/// Marks a poll or stream as open; the session does not expire meanwhile.
#[derive(Debug)]
pub struct Attached(Arc<Session>);

impl Drop for Attached {
    fn drop(&mut self) {
        let mut activity = self.0.activity();
        activity.attached -= 1;
        activity.last_seen = Instant::now();
        drop(activity);
        // The expiry clock may start now: wake the bridge to re-read it.
        self.0.changed.send_replace(());
    }
}

impl Session {
    /// A new session and the receiving end of its inbox.
    pub fn new(init: SessionInit) -> (Arc<Session>, mpsc::Receiver<Payload>) {
        let (tx, rx) = mpsc::channel(INBOX_QUEUE);
        let session = Session {
            id: init.id,
            route_index: init.route_index,
            client_ip: init.client_ip,
            settings: init.settings,
            max_message: init.max_message,
            stats: init.stats,
            origin: init.origin,
            down: Mutex::new(Outbox {
                events: VecDeque::new(),
                waiting_since: None,
                bytes: 0,
                last_seq: 0,
                acked: 0,
                consumer: 0,
                state: DownState::Open,
            }),
            changed: watch::Sender::new(()),
            inbox: tokio::sync::Mutex::new(Inbox {
                next_seq: 1,
                tx,
                state: InboxState::Open,
            }),
            activity: Mutex::new(Activity {
                last_seen: Instant::now(),
                attached: 0,
            }),
            abort: Mutex::new(None),
            aborted: CancellationToken::new(),
            gone: CancellationToken::new(),
        };
        (Arc::new(session), rx)
    }

    fn down(&self) -> MutexGuard<'_, Outbox> {
        self.down.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn activity(&self) -> MutexGuard<'_, Activity> {
        self.activity.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A request from another Origin than the one that opened the session is
    /// refused. A request without Origin is a same-origin GET (browsers omit
    /// it there) unless Fetch Metadata says it came from another site.
    pub fn check_origin(&self, headers: &HeaderMap) -> Result<(), ProxyError> {
        let allowed = match headers.get(header::ORIGIN) {
            Some(origin) => self.origin.as_ref() == Some(origin),
            None => !headers
                .get("sec-fetch-site")
                .is_some_and(|v| v == "cross-site" || v == "same-site"),
        };
        allowed
            .then_some(())
            .ok_or(ProxyError::SessionOriginMismatch)
    }

    /// The largest POST body: `fallback_buffer`, raised where needed so that
    /// one binary message of `max_message_size` bytes fits base64-encoded
    /// (4 bytes per 3), as a WebSocket client could send it.
    pub fn post_limit(&self) -> u64 {
        super::post::post_limit(&self.settings, self.max_message)
    }

    /// Records client activity (any request).
    pub fn touch(&self) {
        self.activity().last_seen = Instant::now();
    }

    /// Marks a poll or stream open until the guard drops.
    pub fn attach(self: &Arc<Self>) -> Attached {
        let mut activity = self.activity();
        activity.attached += 1;
        activity.last_seen = Instant::now();
        Attached(self.clone())
    }

    /// When the session expires if nothing happens: the timeout after the
    /// client was last seen; while a poll or stream is attached, only if
    /// events wait unacknowledged, the timeout after its last progress.
    /// `None` while attached with nothing waiting. Changes that bring the
    /// deadline nearer are announced on [`Session::subscribe`].
    pub fn idle_deadline(&self) -> Option<Instant> {
        let (attached, last_seen) = {
            let activity = self.activity();
            (activity.attached, activity.last_seen)
        };
        let since = match attached {
            0 => Some(last_seen),
            _ => self.down().waiting_since.map(|w| w.max(last_seen)),
        };
        since.map(|since| since + self.settings.session_timeout)
    }

    /// Watches downstream changes.
    pub fn subscribe(&self) -> watch::Receiver<()> {
        self.changed.subscribe()
    }

    /// Queues an event for the client; ignored after the close event.
    pub fn push(&self, payload: Payload) {
        let mut down = self.down();
        if down.state != DownState::Open {
            return;
        }
        down.last_seq += 1;
        let seq = down.last_seq;
        if matches!(payload, Payload::Close { .. }) {
            down.state = DownState::Closed(seq);
        }
        down.bytes += payload.size();
        if down.events.is_empty() {
            down.waiting_since = Some(Instant::now());
        }
        down.events.push_back((seq, payload));
        drop(down);
        self.changed.send_replace(());
    }

    /// Whether the outbox has room for more backend messages.
    pub fn has_space(&self) -> bool {
        (self.down().bytes as u64) < self.settings.buffer
    }

    /// Drops every event up to `ack`; an ack beyond the last event is an error.
    pub fn ack(&self, ack: u64) -> Result<(), ProxyError> {
        let mut down = self.down();
        if ack > down.last_seq {
            return Err(ProxyError::BadFallbackRequest(format!(
                "ack {ack} is beyond the last event ({})",
                down.last_seq
            )));
        }
        let mut progress = false;
        while down.events.front().is_some_and(|(seq, _)| *seq <= ack) {
            if let Some((_, payload)) = down.events.pop_front() {
                down.bytes -= payload.size();
                progress = true;
            }
        }
        if progress {
            down.waiting_since = (!down.events.is_empty()).then(Instant::now);
        }
        down.acked = down.acked.max(ack);
        drop(down);
        self.changed.send_replace(());
        Ok(())
    }

    /// Unacknowledged events after `after`, at most about `max_bytes` (at
    /// least one event if there is any).
    pub fn events_after(&self, after: u64, max_bytes: usize) -> Vec<(u64, Payload)> {
        let down = self.down();
        let mut bytes = 0;
        let mut out = Vec::new();
        for (seq, payload) in down.events.iter().filter(|(seq, _)| *seq > after) {
            if !out.is_empty() && bytes + payload.size() > max_bytes {
                break;
            }
            bytes += payload.size();
            out.push((*seq, payload.clone()));
        }
        out
    }

    /// Makes the caller the one poll or stream that delivers; the previous
    /// one notices through [`Session::is_current`] and ends.
    pub fn claim_consumer(&self) -> u64 {
        let mut down = self.down();
        down.consumer += 1;
        let generation = down.consumer;
        drop(down);
        self.changed.send_replace(());
        generation
    }

    /// Whether `generation` is still the delivering consumer.
    pub fn is_current(&self, generation: u64) -> bool {
        self.down().consumer == generation
    }

    /// Whether the client has acknowledged the close event.
    pub fn is_finished(&self) -> bool {
        let down = self.down();
        matches!(down.state, DownState::Closed(seq) if down.acked >= seq)
    }

    /// Applies a batch in sequence order, skipping messages already applied
    /// (a retried POST). Returns the last applied seq.
    pub async fn send_batch(&self, batch: Batch) -> Result<u64, ProxyError> {
        let mut inbox = self.inbox.lock().await;
        for (seq, payload) in (batch.first_seq..).zip(batch.messages) {
            if seq < inbox.next_seq {
                continue;
            }
            if seq > inbox.next_seq {
                return Err(ProxyError::BadFallbackRequest(format!(
                    "message seq {seq} skips {}; resend from there",
                    inbox.next_seq
                )));
            }
            if inbox.state == InboxState::Closing {
                return Err(ProxyError::SessionClosed);
            }
            if payload.size() as u64 > self.max_message {
                return Err(ProxyError::BodyTooLarge {
                    limit: self.max_message,
                });
            }
            // Cancel-safe: if the request is dropped while waiting, neither the
            // message nor the seq advance happens.
            let permit = inbox
                .tx
                .reserve()
                .await
                .map_err(|_| ProxyError::SessionClosed)?;
            let closing = matches!(payload, Payload::Close { .. });
            permit.send(payload);
            inbox.next_seq += 1;
            match closing {
                true => inbox.state = InboxState::Closing,
                false => self.stats.to_backend(),
            }
        }
        Ok(inbox.next_seq - 1)
    }

    /// The client abandons the session (`POST …/close`).
    pub fn abort(&self, close: Payload) {
        *self.abort.lock().unwrap_or_else(|e| e.into_inner()) = Some(close);
        self.aborted.cancel();
    }

    /// The close the client asked for with `POST …/close`, if any.
    pub fn take_abort(&self) -> Option<Payload> {
        self.abort.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

#[cfg(test)]
mod tests;
