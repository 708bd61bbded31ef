//! ACME HTTP-01 answers on plain listeners, ahead of routes and redirects:
//! `GET /.well-known/acme-challenge/{token}` of a challenge pending in this
//! process (or shared through an ACME cache) gets its key authorization.
//! Any other token falls through to the routes or the redirect, so an
//! application that answers its own challenges keeps working.

use http::{header, HeaderValue, Method, Request, Response, StatusCode};

use crate::acme::challenge::Challenges;
use crate::http::body::{full, Body};

/// The path prefix of HTTP-01 challenges (RFC 8555 §8.3).
pub const CHALLENGE_PATH: &str = "/.well-known/acme-challenge/";

/// The answer to `req` if it fetches a pending challenge's token.
pub fn answer<B>(challenges: &Challenges, req: &Request<B>) -> Option<Response<Body>> {
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return None;
    }
    let token = req.uri().path().strip_prefix(CHALLENGE_PATH)?;
    let key_authorization = challenges.http01(token)?;
    let mut response = Response::new(full(key_authorization));
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    Some(response)
}
