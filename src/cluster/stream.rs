//! A forwarded answer's body, streamed to the client as the owner writes
//! it (an event stream never ends on its own) but bounded: it fails when
//! the owner sends nothing for [`IDLE_LIMIT`] (event streams carry a
//! keepalive comment every `SSE_HEARTBEAT`), so the client reconnects
//! instead of waiting on a dead peer, and it ends when this instance
//! drains, so the client's connection can close.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{sleep, Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::fallback::poll::SSE_HEARTBEAT;
use crate::http::body::BodyError;

/// Longest silence from the owner inside an answer: two missed keepalives.
pub const IDLE_LIMIT: Duration = SSE_HEARTBEAT.saturating_mul(2);

/// The owner's answer body, bounded by silence and by the drain.
pub struct Bounded {
    inner: Incoming,
    /// Fires after [`IDLE_LIMIT`] without a frame.
    idle: Pin<Box<Sleep>>,
    /// Resolves when this instance closes its connections.
    stop: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl Bounded {
    /// Bounds `inner`; it ends early once `stop` is cancelled.
    pub fn new(inner: Incoming, stop: CancellationToken) -> Self {
        Bounded {
            inner,
            idle: Box::pin(sleep(IDLE_LIMIT)),
            stop: Box::pin(stop.cancelled_owned()),
        }
    }
}

impl Body for Bounded {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        if self.stop.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(frame)) => {
                self.idle.as_mut().reset(Instant::now() + IDLE_LIMIT);
                Poll::Ready(Some(frame.map_err(Into::into)))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match self.idle.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    let silent = format!("the session's owner sent nothing for {IDLE_LIMIT:?}");
                    Poll::Ready(Some(Err(silent.into())))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
