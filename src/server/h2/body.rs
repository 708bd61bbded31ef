//! A response body that keeps its stream's hold until hyper is done with it,
//! so a connection streaming a response (an SSE session, a download) never
//! counts as idle.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;
use pin_project_lite::pin_project;

use crate::http::body::{Body, BodyError};
use crate::http::h2::StreamHold;

pin_project! {
    /// `body`, with `hold` dropped beside it.
    struct Held {
        #[pin]
        body: Body,
        hold: StreamHold,
    }
}

/// `body` holding `hold` until it is dropped.
pub(super) fn held(body: Body, hold: StreamHold) -> Body {
    Held { body, hold }.boxed()
}

impl HttpBody for Held {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
