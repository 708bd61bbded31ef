//! The CORS headers that let a page of another origin read an answer of
//! the fallback's endpoints: its sessions' data once the route's Origin
//! policy allowed the page, and the status and short reason of a refusal
//! whatever the origin, so a page learns why (403, 502, ...) instead of a
//! bare "blocked by CORS policy".

use http::header::{self, HeaderMap, HeaderValue};

/// Lets the page at `origin` read the answer, cookies included (the client
/// sends its requests with credentials). Only the CORS-safelisted response
/// headers become readable: no header is exposed beyond them.
pub fn allow_origin(headers: &mut HeaderMap, origin: &HeaderValue) {
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
}
