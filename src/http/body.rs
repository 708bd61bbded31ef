//! The one response body type every handler returns.
//!
//! Synthetic responses (errors, the demo page, the fallback endpoints) and
//! backend responses streamed through share one boxed body type so a handler
//! can return either.

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full};

/// Errors a body may fail with while streaming.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// The body type of every response the gateway sends.
pub type Body = BoxBody<Bytes, BodyError>;

/// A complete body from bytes or a string.
pub fn full(data: impl Into<Bytes>) -> Body {
    Full::new(data.into())
        .map_err(|never| match never {})
        .boxed()
}

/// An empty body.
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// Boxes any body whose error converts into [`BodyError`] (e.g. hyper's
/// `Incoming` from a backend).
pub fn boxed<B>(body: B) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BodyError>,
{
    body.map_err(Into::into).boxed()
}
