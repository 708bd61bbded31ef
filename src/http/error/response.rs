//! The one function that turns any request-path error or refusal into the
//! response the client gets (and its CORS-readable twin for the fallback's
//! cross-origin pages).

use http::{header, HeaderValue, Response};

use super::{ProxyError, Side};
use crate::http::body::{full, Body};
use crate::http::cors;
use crate::limits::RETRY_AFTER_SECS;

impl ProxyError {
    /// The response the client gets. Backend details stay in the log: the
    /// client learns the kind of failure, not our internal addresses.
    pub fn to_response(&self) -> Response<Body> {
        if let ProxyError::AuthDenied(denial) = self {
            let mut response = Response::new(full(denial.body.clone()));
            *response.status_mut() = denial.status;
            *response.headers_mut() = denial.headers.clone();
            return response;
        }
        let body = match self {
            ProxyError::OverLimit(refusal) => format!("over limit: {}\n", refusal.reason()),
            _ => match self.side() {
                Side::Client | Side::Gateway => format!("{self}\n"),
                Side::Backend => format!("{}\n", self.status().canonical_reason().unwrap_or("")),
            },
        };
        let mut response = Response::new(full(body));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        match self {
            ProxyError::UnsupportedVersion(_) => {
                headers.insert(
                    header::SEC_WEBSOCKET_VERSION,
                    HeaderValue::from_static("13"),
                );
            }
            // Limits: say when to try again.
            ProxyError::TooManySessions { .. }
            | ProxyError::TooManyWebSockets { .. }
            | ProxyError::MessageRate { .. }
            | ProxyError::OverLimit(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
            }
            _ => {}
        }
        response
    }

    /// [`ProxyError::to_response`] for a request of the fallback's
    /// endpoints, readable by the page at `origin` (CORS): the page sees the
    /// status and the short reason of the refusal, which carry no data.
    pub fn to_readable_response(&self, origin: Option<&HeaderValue>) -> Response<Body> {
        let mut response = self.to_response();
        if let Some(origin) = origin {
            cors::allow_origin(response.headers_mut(), origin);
        }
        response
    }
}
