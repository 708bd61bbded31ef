//! The fallback's upstream parsers: a `POST …/send` batch and a `POST …/close`
//! body. Any bytes either decode or give an error message, never a panic,
//! and whatever decodes obeys the protocol's rules (docs/fallback.md).
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsgate::fallback::protocol::{parse_batch, parse_close, Payload, SessionId};

/// Close codes a browser's `close()` may send, plus "none" (1005).
fn client_code(code: u16) -> bool {
    code == 1000 || code == 1005 || (3000..=4999).contains(&code)
}

fuzz_target!(|data: &[u8]| {
    match parse_batch(data) {
        Ok(batch) => {
            assert!(batch.messages.is_empty() || batch.first_seq >= 1);
            for (i, message) in batch.messages.iter().enumerate() {
                if let Payload::Close { code, reason } = message {
                    assert_eq!(i + 1, batch.messages.len(), "a close is last");
                    assert!(client_code(*code), "code {code}");
                    assert!(reason.len() <= 123);
                }
            }
        }
        Err(message) => assert!(!message.is_empty()),
    }
    match parse_close(data) {
        Ok(Payload::Close { code, reason }) => {
            assert!(client_code(code) || code == 1001, "code {code}");
            assert!(reason.len() <= 123);
        }
        Ok(other) => panic!("a close body decoded as {other:?}"),
        Err(message) => assert!(!message.is_empty()),
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(id) = SessionId::parse(text) {
            assert_eq!(id.to_string(), text.to_ascii_lowercase());
        }
    }
});
