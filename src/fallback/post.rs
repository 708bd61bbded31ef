//! From the client: `POST …/send` (a batch of messages, plus an ack for
//! SSE clients) and `POST …/close` (abandon the session now).
//!
//! The body is bounded by `Session::post_limit` (413), malformed batches are a
//! 400 that leaves the session as it was, a batch over the route's
//! `client_messages_per_second` a 429 that applies nothing, and sequence
//! numbers make a retried POST apply nothing twice.

use std::sync::Arc;

use http::header;
use http::{Request, Response};
use serde_json::json;

use super::exchange::{json, read_body};
use super::protocol::{parse_batch, parse_close};
use super::session::Session;
use crate::config::FallbackSettings;
use crate::http::body::Body;
use crate::http::error::ProxyError;

/// Room for the JSON around one message in a POST body
/// (`{"ack":…,"seq":…,"messages":[{"binary":"…"}]}` with 20-digit numbers).
const POST_OVERHEAD: u64 = 256;

/// The largest POST body of a session with these settings (see
/// [`Session::post_limit`]).
pub fn post_limit(settings: &FallbackSettings, max_message: u64) -> u64 {
    let one_message = max_message.div_ceil(3).saturating_mul(4) + POST_OVERHEAD;
    settings.buffer.max(one_message)
}

/// Applies a batch; answers `{"acked": <last applied seq>}`.
pub async fn send(session: Arc<Session>, req: Request<Body>) -> Result<Response<Body>, ProxyError> {
    let (parts, body) = req.into_parts();
    let body = read_body(body, &parts.headers, session.post_limit()).await?;
    let batch = parse_batch(&body).map_err(ProxyError::BadFallbackRequest)?;
    session.stats.admit_messages(batch.messages.len())?;
    if let Some(ack) = batch.ack {
        session.ack(ack)?;
    }
    let acked = session.send_batch(batch).await?;
    session.touch();
    let body = json!({ "acked": acked }).to_string();
    Ok(json(body, parts.headers.get(header::ORIGIN)))
}

/// Ends the session at once: the backend gets the client's close code, the
/// session is forgotten. Meant for page unload (`navigator.sendBeacon`).
pub async fn close(
    session: Arc<Session>,
    req: Request<Body>,
) -> Result<Response<Body>, ProxyError> {
    let (parts, body) = req.into_parts();
    let body = read_body(body, &parts.headers, session.post_limit()).await?;
    let close = parse_close(&body).map_err(ProxyError::BadFallbackRequest)?;
    session.abort(close);
    Ok(json("{}".into(), parts.headers.get(header::ORIGIN)))
}
