//! Answers for a session that ended without the client hearing of it:
//! the instance that held it is gone (killed, restarted, unreachable).
//!
//! Its buffered events are lost with it, but the client need not find
//! out from an error. A poll or an event stream gets one more event, the
//! close [`SERVICE_RESTART`] ("reconnect"), numbered right after what the
//! client acknowledged (`ack`, `Last-Event-ID`), so the bundled client
//! closes cleanly with that code and the application can open a new
//! session at once. A send or close cannot carry an event and gets the
//! error the caller chose.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{request, Response};
use tokio::sync::mpsc;

use super::exchange::{json, query_number, query_pairs, set_common};
use super::poll::{preamble, sse_events, SseBody};
use super::protocol::{encode_poll, Payload};
use super::Action;
use crate::http::body::Body;
use crate::http::error::ProxyError;
use crate::ws::close::SERVICE_RESTART;

/// Answers `action` on a lost session with the close event 1012 and
/// `reason` (at most 123 bytes), or with `otherwise` for a send or close.
pub fn answer(
    action: Action,
    parts: &request::Parts,
    reason: &str,
    otherwise: ProxyError,
) -> Result<Response<Body>, ProxyError> {
    let origin = parts.headers.get(header::ORIGIN);
    let close = Payload::Close {
        code: SERVICE_RESTART,
        reason: reason.to_string(),
    };
    match action {
        Action::Poll => {
            let ack = query_number(&query_pairs(parts.uri.query())?, "ack")?;
            let body = encode_poll(&[(ack.saturating_add(1), close)], false);
            Ok(json(body, origin))
        }
        Action::Sse => {
            let from = last_event_id(parts)?;
            let mut text = preamble().to_vec();
            text.extend_from_slice(&sse_events(&[(from.saturating_add(1), close)]));
            Ok(event_stream(Bytes::from(text), origin))
        }
        Action::Send | Action::Close => Err(otherwise),
    }
}

/// Where an event stream starts: `Last-Event-ID`, else `?ack=`, else 0.
fn last_event_id(parts: &request::Parts) -> Result<u64, ProxyError> {
    match parts.headers.get("last-event-id") {
        Some(id) => id
            .to_str()
            .ok()
            .and_then(|id| id.trim().parse().ok())
            .ok_or_else(|| ProxyError::BadFallbackRequest("Last-Event-ID is not a number".into())),
        None => query_number(&query_pairs(parts.uri.query())?, "ack"),
    }
}

/// A complete event stream holding `bytes`.
fn event_stream(bytes: Bytes, origin: Option<&HeaderValue>) -> Response<Body> {
    let (tx, rx) = mpsc::channel(1);
    // The channel has room for this one chunk; the stream ends after it.
    let _ = tx.try_send(bytes);
    let mut response = Response::new(Body::new(SseBody { rx }));
    set_common(&mut response, "text/event-stream", origin);
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-transform"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;
    use http_body_util::BodyExt;

    fn parts(uri: &str, last_event_id: Option<&str>) -> request::Parts {
        let mut req = Request::builder().uri(uri);
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        req.body(()).unwrap().into_parts().0
    }

    async fn text(response: Response<Body>) -> String {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn a_poll_gets_the_close_right_after_its_ack() {
        let reply = answer(
            Action::Poll,
            &parts("/p?ack=7", None),
            "gone",
            ProxyError::SessionUnknown,
        );
        assert_eq!(
            text(reply.unwrap()).await,
            r#"{"events":[{"close":{"code":1012,"reason":"gone"},"seq":8}]}"#
        );
    }

    #[tokio::test]
    async fn a_stream_gets_the_close_after_its_last_event_id() {
        let reply = answer(
            Action::Sse,
            &parts("/s", Some("41")),
            "gone",
            ProxyError::SessionUnknown,
        );
        let reply = reply.unwrap();
        assert_eq!(reply.headers()["content-type"], "text/event-stream");
        let body = text(reply).await;
        assert!(body.contains("event: ready"), "{body}");
        assert!(
            body.ends_with(
                "id: 42\ndata: {\"close\":{\"code\":1012,\"reason\":\"gone\"},\"seq\":42}\n\n"
            ),
            "{body}"
        );
    }

    #[test]
    fn sends_get_the_error() {
        let reply = answer(
            Action::Send,
            &parts("/s", None),
            "gone",
            ProxyError::SessionUnknown,
        );
        assert!(matches!(reply, Err(ProxyError::SessionUnknown)));
    }
}
