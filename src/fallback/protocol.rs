//! The fallback's wire format (docs/fallback.md): session ids, the events
//! sent to the client and the batches it sends (the doc's "downstream" and
//! "upstream"; in `src/` "upstream" names only the backends).
//!
//! JSON because every browser parses it natively and SSE carries only text;
//! binary payloads are base64 inside it. Every event and every client
//! message has a sequence number, which is what makes retries safe.

use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::ws::close::{GOING_AWAY, NORMAL, NO_STATUS};

/// Longest close reason a WebSocket close frame can carry (RFC 6455 §5.5).
const MAX_CLOSE_REASON: usize = 123;

/// A 128-bit random session id, written as 32 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId([u8; 16]);

impl SessionId {
    /// A fresh id from the thread-local CSPRNG.
    pub fn random() -> Self {
        SessionId(rand::random())
    }

    /// The id made of these 128 bits (a cluster's id spelling carries them).
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        SessionId(bytes)
    }

    /// The id's 128 bits.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Parses the 32-hex-digit form; anything else is `None`.
    pub fn parse(text: &str) -> Option<Self> {
        // from_str_radix alone would take a sign ("+f"): an id has one spelling.
        if text.len() != 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut id = [0u8; 16];
        for (i, byte) in id.iter_mut().enumerate() {
            *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(SessionId(id))
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// One item of a message stream, in either direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Bytes),
    /// The end of the stream; 1005 means "no status code".
    Close {
        /// The close code.
        code: u16,
        /// The close reason (at most 123 bytes).
        reason: String,
    },
}

impl Payload {
    /// Bytes this item holds in a buffer.
    pub fn size(&self) -> usize {
        match self {
            Payload::Text(text) => text.len(),
            Payload::Binary(data) => data.len(),
            Payload::Close { reason, .. } => 2 + reason.len(),
        }
    }

    /// The JSON object of this item, without its sequence number.
    fn to_json(&self) -> Value {
        match self {
            Payload::Text(text) => json!({ "text": text }),
            Payload::Binary(data) => json!({ "binary": BASE64.encode(data) }),
            Payload::Close { code, reason } => {
                json!({ "close": { "code": code, "reason": reason } })
            }
        }
    }
}

/// One downstream event: `{"seq":N,"text":"…"}`, `{"seq":N,"binary":"<base64>"}`
/// or `{"seq":N,"close":{"code":C,"reason":"…"}}`.
pub fn encode_event(seq: u64, payload: &Payload) -> String {
    let mut value = payload.to_json();
    value["seq"] = json!(seq);
    value.to_string()
}

/// A long-poll answer: `{"events":[…]}`, plus `"superseded":true` when a
/// newer poll of the same session took over.
pub fn encode_poll(events: &[(u64, Payload)], superseded: bool) -> String {
    let events: Vec<Value> = events
        .iter()
        .map(|(seq, payload)| {
            let mut value = payload.to_json();
            value["seq"] = json!(seq);
            value
        })
        .collect();
    match superseded {
        true => json!({ "events": events, "superseded": true }).to_string(),
        false => json!({ "events": events }).to_string(),
    }
}

/// A client's `send` POST body, decoded.
#[derive(Debug, PartialEq, Eq)]
pub struct Batch {
    /// Acknowledges every downstream event up to and including this seq.
    pub ack: Option<u64>,
    /// The sequence number of the first message; the rest follow on.
    pub first_seq: u64,
    /// The messages, in order; a close, if any, is last.
    pub messages: Vec<Payload>,
}

/// `{"ack":N,"seq":S,"messages":[{"text":…}|{"binary":…}|{"close":{…}}]}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchWire {
    ack: Option<u64>,
    seq: Option<u64>,
    #[serde(default)]
    messages: Vec<MessageWire>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageWire {
    text: Option<String>,
    binary: Option<String>,
    close: Option<CloseWire>,
}

/// The body of a close: in a batch and for `POST …/close`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CloseWire {
    code: Option<u16>,
    #[serde(default)]
    reason: String,
}

/// Decodes and checks a client's batch; the error says what is wrong.
pub fn parse_batch(body: &[u8]) -> Result<Batch, String> {
    let wire: BatchWire = serde_json::from_slice(body).map_err(|e| format!("batch: {e}"))?;
    let first_seq = match (wire.seq, wire.messages.is_empty()) {
        (_, true) => 0,
        (Some(seq), false) if seq >= 1 => seq,
        _ => return Err("a batch with messages needs \"seq\" >= 1".into()),
    };
    let count = wire.messages.len();
    let mut messages = Vec::with_capacity(count);
    for (i, message) in wire.messages.into_iter().enumerate() {
        let payload = parse_message(message).map_err(|e| format!("messages[{i}]: {e}"))?;
        if matches!(payload, Payload::Close { .. }) && i + 1 != count {
            return Err(format!("messages[{i}]: a close must be the last message"));
        }
        messages.push(payload);
    }
    Ok(Batch {
        ack: wire.ack,
        first_seq,
        messages,
    })
}

/// One message of a batch: exactly one of `text`, `binary`, `close`.
fn parse_message(message: MessageWire) -> Result<Payload, String> {
    match (message.text, message.binary, message.close) {
        (Some(text), None, None) => Ok(Payload::Text(text)),
        (None, Some(data), None) => BASE64
            .decode(data)
            .map(|d| Payload::Binary(d.into()))
            .map_err(|e| format!("binary is not base64: {e}")),
        (None, None, Some(close)) => close_payload(close, false),
        _ => Err("needs exactly one of \"text\", \"binary\", \"close\"".into()),
    }
}

/// A client close, held to the codes a browser's `close()` may send:
/// 1000 or 3000–4999; none at all is 1005. `leaving` also admits 1001, which
/// a page that is going away sends (`POST …/close` from `pagehide`).
fn close_payload(close: CloseWire, leaving: bool) -> Result<Payload, String> {
    let code = close.code.unwrap_or(NO_STATUS);
    let allowed = code == NORMAL || code == NO_STATUS || (3000..=4999).contains(&code);
    if !(allowed || (leaving && code == GOING_AWAY)) {
        return Err(format!("close code {code} is not 1000 or 3000-4999"));
    }
    if close.reason.len() > MAX_CLOSE_REASON {
        return Err("close reason longer than 123 bytes".into());
    }
    if code == NO_STATUS && !close.reason.is_empty() {
        return Err("a close reason needs a close code".into());
    }
    Ok(Payload::Close {
        code,
        reason: close.reason,
    })
}

/// Parses the body of `POST …/close` (may be empty: code 1005).
pub fn parse_close(body: &[u8]) -> Result<Payload, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return close_payload(CloseWire::default(), true);
    }
    let wire: CloseWire = serde_json::from_slice(body).map_err(|e| format!("close: {e}"))?;
    close_payload(wire, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_round_trip_and_reject_junk() {
        let id = SessionId::random();
        let text = id.to_string();
        assert_eq!(text.len(), 32);
        assert_eq!(SessionId::parse(&text), Some(id));
        assert_ne!(SessionId::random(), id);
        for junk in [
            "",
            "abc",
            &"g".repeat(32),
            &"ab".repeat(17),
            "é".repeat(16).as_str(),
            &"+f".repeat(16), // a sign from_str_radix would take
        ] {
            assert_eq!(SessionId::parse(junk), None, "{junk}");
        }
    }

    #[test]
    fn events_encode_every_kind() {
        assert_eq!(
            encode_event(3, &Payload::Text("hi".into())),
            r#"{"seq":3,"text":"hi"}"#
        );
        assert_eq!(
            encode_event(4, &Payload::Binary(Bytes::from_static(&[0, 1, 2]))),
            r#"{"binary":"AAEC","seq":4}"#
        );
        let close = Payload::Close {
            code: 1000,
            reason: "bye".into(),
        };
        let poll = encode_poll(&[(5, close)], false);
        assert_eq!(
            poll,
            r#"{"events":[{"close":{"code":1000,"reason":"bye"},"seq":5}]}"#
        );
        assert!(encode_poll(&[], true).contains("\"superseded\":true"));
    }

    #[test]
    fn batches_decode() {
        let body = br#"{"ack":7,"seq":2,"messages":[{"text":"a"},{"binary":"AAEC"},{"close":{"code":4000,"reason":"x"}}]}"#;
        let batch = parse_batch(body).unwrap();
        assert_eq!(batch.ack, Some(7));
        assert_eq!(batch.first_seq, 2);
        assert_eq!(
            batch.messages,
            vec![
                Payload::Text("a".into()),
                Payload::Binary(Bytes::from_static(&[0, 1, 2])),
                Payload::Close {
                    code: 4000,
                    reason: "x".into()
                },
            ]
        );
        assert_eq!(parse_batch(br#"{"ack":1}"#).unwrap().messages, vec![]);
    }

    #[test]
    fn malformed_batches_say_why() {
        let cases: [(&[u8], &str); 8] = [
            (b"not json", "batch:"),
            (br#"{"messages":[{"text":"a"}]}"#, "seq"),
            (br#"{"seq":0,"messages":[{"text":"a"}]}"#, "seq"),
            (
                br#"{"seq":1,"messages":[{"text":"a","binary":"AA=="}]}"#,
                "exactly one",
            ),
            (br#"{"seq":1,"messages":[{"binary":"!!"}]}"#, "base64"),
            (
                br#"{"seq":1,"messages":[{"close":{"code":1001}}]}"#,
                "1000 or 3000",
            ),
            (
                br#"{"seq":1,"messages":[{"close":{}},{"text":"a"}]}"#,
                "last",
            ),
            (br#"{"seq":1,"extra":1}"#, "unknown field"),
        ];
        for (body, want) in cases {
            let err = parse_batch(body).unwrap_err();
            assert!(err.contains(want), "{err} should mention {want}");
        }
    }

    #[test]
    fn close_bodies() {
        assert_eq!(
            parse_close(b"").unwrap(),
            Payload::Close {
                code: 1005,
                reason: String::new()
            }
        );
        assert!(parse_close(br#"{"code":1000,"reason":"ok"}"#).is_ok());
        assert!(parse_close(br#"{"code":1001,"reason":"page closed"}"#).is_ok());
        assert!(parse_close(br#"{"code":1002}"#).is_err());
        assert!(parse_close(
            format!(r#"{{"code":1000,"reason":"{}"}}"#, "x".repeat(124)).as_bytes()
        )
        .is_err());
        assert!(parse_close(br#"{"reason":"no code"}"#).is_err());
    }
}
