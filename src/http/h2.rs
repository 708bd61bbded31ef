//! HTTP/2 requests in paths built around HTTP/1.1.
//!
//! Every path below the server layer (routing, the Origin check, the
//! backend's request) reads a request as HTTP/1.1 shapes it: a `Host`
//! header, one `Cookie` line. [`normalize`] gives an HTTP/2 request those
//! shapes once, at dispatch. The rest is what the server layer learns about
//! an HTTP/2 connection and hands down in a request's extensions, as plain
//! values: whether the client had acknowledged our SETTINGS
//! ([`SettingsAcked`]), and what keeps the connection from closing as idle
//! while a stream's work lives ([`StreamHold`], counted by [`Streams`]).
//! Last, why an extended CONNECT (RFC 8441) was refused ([`ConnectFault`]).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use http::header::{self, HeaderMap, HeaderValue};
use http::{StatusCode, Uri};
use tokio::sync::Notify;

use super::error::ProxyError;

/// Gives an HTTP/2 request the `Host` and `Cookie` of its HTTP/1.1 form:
/// `:authority` becomes `Host` (RFC 9113 §8.3.1; a `Host` that names
/// another host than `:authority` is malformed), and cookie fields, which
/// HTTP/2 may split, are joined with `"; "` (§8.2.3) so an HTTP/1.1
/// backend sees one `Cookie` header.
pub fn normalize(uri: &Uri, headers: &mut HeaderMap) -> Result<(), ProxyError> {
    if let Some(authority) = uri.authority() {
        match headers.get(header::HOST) {
            Some(host)
                if !host
                    .as_bytes()
                    .eq_ignore_ascii_case(authority.as_str().as_bytes()) =>
            {
                return Err(ProxyError::AuthorityMismatch);
            }
            Some(_) => {}
            None => {
                let host = HeaderValue::from_str(authority.as_str())
                    .map_err(|_| ProxyError::AuthorityMismatch)?;
                headers.insert(header::HOST, host);
            }
        }
    }
    join_cookies(headers);
    Ok(())
}

/// Joins several `cookie` fields into one, in order.
fn join_cookies(headers: &mut HeaderMap) {
    let mut values = headers.get_all(header::COOKIE).iter();
    let (Some(first), Some(_)) = (values.next(), values.next()) else {
        return;
    };
    let mut joined = first.as_bytes().to_vec();
    for value in headers.get_all(header::COOKIE).iter().skip(1) {
        joined.extend_from_slice(b"; ");
        joined.extend_from_slice(value.as_bytes());
    }
    if let Ok(value) = HeaderValue::from_bytes(&joined) {
        headers.insert(header::COOKIE, value);
    }
}

/// Whether the client had acknowledged the gateway's SETTINGS (and with
/// them `SETTINGS_ENABLE_CONNECT_PROTOCOL`) before the request arrived.
/// Set by the server layer on every HTTP/2 request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettingsAcked(pub bool);

/// The streams one HTTP/2 connection is serving, counted by the holds
/// handed out for them, so the server can tell when the connection idles.
#[derive(Debug, Default)]
pub struct Streams {
    /// Holds alive.
    open: AtomicUsize,
    /// Whether any hold was ever taken (a request arrived).
    used: AtomicBool,
    /// Woken when `open` moves between zero and one.
    changed: Notify,
}

impl Streams {
    /// A hold for one stream's work; the stream counts as open until every
    /// clone of it is dropped.
    pub fn hold(self: &Arc<Self>) -> StreamHold {
        self.used.store(true, Ordering::Relaxed);
        if self.open.fetch_add(1, Ordering::AcqRel) == 0 {
            self.changed.notify_waiters();
        }
        StreamHold {
            _held: Arc::new(Held(self.clone())),
        }
    }

    /// Streams open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Whether a request ever arrived on the connection.
    pub fn used(&self) -> bool {
        self.used.load(Ordering::Relaxed)
    }

    /// Resolves once `open() == 0` is `idle` (no stream open, or some).
    pub async fn until(&self, idle: bool) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if (self.open() == 0) == idle {
                return;
            }
            changed.await;
        }
    }
}

/// Held by whatever serves an HTTP/2 stream (its response body, a relay):
/// while any clone lives, the stream counts as open.
#[derive(Debug, Clone)]
pub struct StreamHold {
    /// Kept for its drop, which counts the stream closed.
    _held: Arc<Held>,
}

/// The one count a [`StreamHold`] and its clones stand for.
#[derive(Debug)]
struct Held(Arc<Streams>);

impl Drop for Held {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.changed.notify_waiters();
        }
    }
}

/// Why an extended CONNECT (RFC 8441) was refused by its own checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectFault {
    /// `:protocol` names something other than `websocket` (501).
    UnknownProtocol(String),
    /// The client sent `:protocol` before acknowledging the SETTINGS that
    /// allow it (RFC 8441 §3).
    SettingNotReceived,
    /// The CONNECT declares a body before its 200.
    Body,
}

impl ConnectFault {
    /// The status the client gets.
    pub fn status(&self) -> StatusCode {
        match self {
            ConnectFault::UnknownProtocol(_) => StatusCode::NOT_IMPLEMENTED,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// The rejection reason in logs and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            ConnectFault::UnknownProtocol(_) => "connect_protocol",
            ConnectFault::SettingNotReceived => "connect_early",
            ConnectFault::Body => "connect_body",
        }
    }
}

impl std::fmt::Display for ConnectFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectFault::UnknownProtocol(p) => {
                let shown: String = p.chars().take(64).collect();
                write!(
                    f,
                    ":protocol {shown:?} is not supported; only \"websocket\" is"
                )
            }
            ConnectFault::SettingNotReceived => f.write_str(
                ":protocol sent before SETTINGS_ENABLE_CONNECT_PROTOCOL was acknowledged",
            ),
            ConnectFault::Body => f.write_str("extended CONNECT with a body before its 200"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(text: &str) -> Uri {
        text.parse().unwrap()
    }

    #[test]
    fn authority_becomes_host_and_a_different_host_is_refused() {
        let mut headers = HeaderMap::new();
        normalize(&uri("https://chat.example.com:8443/x"), &mut headers).unwrap();
        assert_eq!(headers[header::HOST], "chat.example.com:8443");
        let mut same = HeaderMap::new();
        same.insert(header::HOST, HeaderValue::from_static("CHAT.example.com"));
        normalize(&uri("https://chat.example.com/x"), &mut same).unwrap();
        let mut other = HeaderMap::new();
        other.insert(header::HOST, HeaderValue::from_static("evil.example"));
        let err = normalize(&uri("https://chat.example.com/x"), &mut other).unwrap_err();
        assert_eq!(err.status(), 400);
        let mut none = HeaderMap::new();
        normalize(&uri("/x"), &mut none).unwrap();
        assert!(none.get(header::HOST).is_none());
    }

    #[test]
    fn split_cookies_are_joined_in_order() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("a=1"));
        headers.append(header::COOKIE, HeaderValue::from_static("b=2"));
        headers.append(header::COOKIE, HeaderValue::from_static("c=3"));
        normalize(&uri("/"), &mut headers).unwrap();
        let all: Vec<_> = headers.get_all(header::COOKIE).iter().collect();
        assert_eq!(all, ["a=1; b=2; c=3"]);
        let mut one = HeaderMap::new();
        one.insert(header::COOKIE, HeaderValue::from_static("a=1; b=2"));
        normalize(&uri("/"), &mut one).unwrap();
        assert_eq!(one[header::COOKIE], "a=1; b=2");
    }

    #[tokio::test]
    async fn holds_count_streams_until_their_last_clone_drops() {
        let streams = Arc::new(Streams::default());
        assert!(!streams.used());
        streams.until(true).await;
        let hold = streams.hold();
        let clone = hold.clone();
        let other = streams.hold();
        assert_eq!(streams.open(), 2);
        streams.until(false).await;
        drop(hold);
        assert_eq!(streams.open(), 2, "a clone keeps the stream open");
        drop(clone);
        drop(other);
        tokio::time::timeout(std::time::Duration::from_secs(5), streams.until(true))
            .await
            .unwrap();
        assert!(streams.used());
    }

    #[test]
    fn faults_have_their_status_and_reason() {
        let unknown = ConnectFault::UnknownProtocol("h3".into());
        assert_eq!(
            (unknown.status().as_u16(), unknown.reason()),
            (501, "connect_protocol")
        );
        for fault in [ConnectFault::SettingNotReceived, ConnectFault::Body] {
            assert_eq!(fault.status(), 400, "{fault}");
        }
    }
}
