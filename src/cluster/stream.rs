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

/// The owner's answer body (`B`, hyper's `Incoming` in use), bounded by
/// silence and by the drain.
pub struct Bounded<B = Incoming> {
    inner: B,
    /// Fires after [`IDLE_LIMIT`] without a frame.
    idle: Pin<Box<Sleep>>,
    /// Resolves when this instance closes its connections.
    stop: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl<B> Bounded<B> {
    /// Bounds `inner`; it ends early once `stop` is cancelled.
    pub fn new(inner: B, stop: CancellationToken) -> Self {
        Bounded {
            inner,
            idle: Box::pin(sleep(IDLE_LIMIT)),
            stop: Box::pin(stop.cancelled_owned()),
        }
    }
}

impl<B> Body for Bounded<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BodyError>,
{
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

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tokio::sync::mpsc;

    /// A body fed by a channel, as an owner writing an event stream.
    struct Fed(mpsc::Receiver<Bytes>);

    impl Body for Fed {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_owner_that_keeps_writing_is_streamed_and_a_silent_one_is_cut() {
        let (tx, rx) = mpsc::channel(1);
        let mut body = Bounded::new(Fed(rx), CancellationToken::new());
        for _ in 0..3 {
            tokio::time::advance(IDLE_LIMIT - Duration::from_secs(1)).await;
            tx.send(Bytes::from_static(b": keepalive\n\n"))
                .await
                .unwrap();
            let frame = body.frame().await.unwrap().unwrap();
            assert_eq!(frame.into_data().unwrap(), ": keepalive\n\n");
        }
        let silent = body.frame().await.unwrap();
        assert!(silent.unwrap_err().to_string().contains("sent nothing"));
    }

    #[tokio::test(start_paused = true)]
    async fn the_drain_ends_the_stream() {
        let (_tx, rx) = mpsc::channel::<Bytes>(1);
        let stop = CancellationToken::new();
        let mut body = Bounded::new(Fed(rx), stop.clone());
        stop.cancel();
        assert!(body.frame().await.is_none());
    }
}
