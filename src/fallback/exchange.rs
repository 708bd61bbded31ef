//! The HTTP edge of the fallback endpoints: query parameters in, bounded
//! bodies in, and responses out with the headers real networks need
//! (`Cache-Control: no-store` so no proxy caches a poll, CORS for allowed
//! cross-origin pages).

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderValue};
use http::Response;
use http_body_util::BodyExt;

use crate::http::body::{full, Body};
use crate::http::cors;
use crate::http::error::ProxyError;

/// The decoded `name=value` pairs of a query string, in order.
pub fn query_pairs(query: Option<&str>) -> Result<Vec<(String, String)>, ProxyError> {
    let Some(query) = query else {
        return Ok(Vec::new());
    };
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((percent_decode(name)?, percent_decode(value)?))
        })
        .collect()
}

/// The first value of `name` in decoded query pairs.
pub fn query_value<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// A non-negative integer query parameter; absent is 0.
pub fn query_number(pairs: &[(String, String)], name: &str) -> Result<u64, ProxyError> {
    match query_value(pairs, name) {
        None => Ok(0),
        Some(text) => text.parse().map_err(|_| {
            ProxyError::BadFallbackRequest(format!("{name}={text:?} is not a number"))
        }),
    }
}

/// `application/x-www-form-urlencoded` decoding: `%XX` and `+` as space.
fn percent_decode(text: &str) -> Result<String, ProxyError> {
    let bad = || ProxyError::BadFallbackRequest(format!("bad percent-encoding in {text:?}"));
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = text.get(i + 1..i + 3).ok_or_else(bad)?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

/// Reads a request body of at most `limit` bytes (413 above it).
pub async fn read_body(
    mut body: Body,
    headers: &HeaderMap,
    limit: u64,
) -> Result<Bytes, ProxyError> {
    let too_large = ProxyError::BodyTooLarge { limit };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large);
    }
    let mut read = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| ProxyError::BadFallbackRequest(format!("reading the body: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if (read.len() + data.len()) as u64 > limit {
            return Err(too_large);
        }
        read.extend_from_slice(&data);
    }
    Ok(read.freeze())
}

/// A JSON response with the fallback's headers.
pub fn json(body: String, origin: Option<&HeaderValue>) -> Response<Body> {
    let mut response = Response::new(full(body));
    set_common(&mut response, "application/json", origin);
    response
}

/// `no-store` and, when the request had an Origin that passed the checks,
/// the CORS headers that let a cross-origin page read the answer.
pub fn set_common(
    response: &mut Response<Body>,
    content_type: &'static str,
    origin: Option<&HeaderValue>,
) {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(origin) = origin {
        cors::allow_origin(headers, origin);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode() {
        let pairs = query_pairs(Some("path=%2Fchat%3Fa%3D1&protocol=a+b&ack=7&flag")).unwrap();
        assert_eq!(query_value(&pairs, "path"), Some("/chat?a=1"));
        assert_eq!(query_value(&pairs, "protocol"), Some("a b"));
        assert_eq!(query_number(&pairs, "ack").unwrap(), 7);
        assert_eq!(query_number(&pairs, "missing").unwrap(), 0);
        assert_eq!(query_value(&pairs, "flag"), Some(""));
        assert!(query_pairs(Some("a=%zz")).is_err());
        assert!(query_pairs(Some("a=%4")).is_err());
        assert!(query_number(&pairs, "path").is_err());
    }
}
