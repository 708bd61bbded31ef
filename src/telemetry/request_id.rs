//! Request ids: every request carries an `X-Request-Id` to its backend and
//! in its log lines. A sane id the client (or a proxy in front) sent is kept,
//! so one id follows a request across every hop; otherwise a 128-bit random
//! one is generated.

use http::header::{HeaderMap, HeaderName, HeaderValue};
use rand::Rng;

/// The header carrying the id.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client-sent id that is kept; longer ones are replaced, so a
/// client cannot bloat every log line.
const MAX_ID_LEN: usize = 128;

/// Makes sure `headers` carry exactly one usable `X-Request-Id` and returns it.
pub fn ensure(headers: &mut HeaderMap) -> HeaderValue {
    let kept = headers
        .get(&REQUEST_ID)
        .filter(|_| headers.get_all(&REQUEST_ID).iter().count() == 1)
        .filter(|v| acceptable(v.as_bytes()))
        .cloned();
    let id = kept.unwrap_or_else(generate);
    headers.insert(REQUEST_ID, id.clone());
    id
}

/// Visible ASCII without spaces or quotes, 1 to [`MAX_ID_LEN`] bytes: safe
/// to log and to pass on.
fn acceptable(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .iter()
            .all(|b| b.is_ascii_graphic() && *b != b'"' && *b != b'\\')
}

/// 128 random bits as 32 lower-case hex digits.
fn generate() -> HeaderValue {
    let bits: u128 = rand::thread_rng().gen();
    HeaderValue::from_str(&format!("{bits:032x}")).unwrap_or(HeaderValue::from_static("0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_a_sane_id_and_replaces_the_rest() {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID, HeaderValue::from_static("abc-123"));
        assert_eq!(ensure(&mut headers), "abc-123");

        for bad in ["", "has space", "quote\"d"] {
            let mut headers = HeaderMap::new();
            headers.insert(REQUEST_ID, HeaderValue::from_str(bad).unwrap());
            let id = ensure(&mut headers);
            assert_eq!(id.len(), 32, "{bad:?} → {id:?}");
            assert_eq!(headers.get(REQUEST_ID), Some(&id));
        }

        let mut headers = HeaderMap::new();
        headers.append(REQUEST_ID, HeaderValue::from_static("a"));
        headers.append(REQUEST_ID, HeaderValue::from_static("b"));
        let id = ensure(&mut headers);
        assert_eq!(id.len(), 32);
        assert_eq!(headers.get_all(REQUEST_ID).iter().count(), 1);
    }

    #[test]
    fn generated_ids_are_hex_and_distinct() {
        let (a, b) = (generate(), generate());
        assert_ne!(a, b);
        assert!(a.to_str().unwrap().bytes().all(|c| c.is_ascii_hexdigit()));
    }
}
