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
use hyper::body::Incoming;
use serde_json::json;

use super::exchange::{json, read_body};
use super::protocol::{parse_batch, parse_close};
use super::session::Session;
use crate::http::body::Body;
use crate::http::error::ProxyError;

/// Applies a batch; answers `{"acked": <last applied seq>}`.
pub async fn send(
    session: Arc<Session>,
    req: Request<Incoming>,
) -> Result<Response<Body>, ProxyError> {
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
    req: Request<Incoming>,
) -> Result<Response<Body>, ProxyError> {
    let (parts, body) = req.into_parts();
    let body = read_body(body, &parts.headers, session.post_limit()).await?;
    let close = parse_close(&body).map_err(ProxyError::BadFallbackRequest)?;
    session.abort(close);
    Ok(json("{}".into(), parts.headers.get(header::ORIGIN)))
}
