//! Forward auth: before any backend is dialled, a route's `auth` service
//! is asked whether the request may pass — for a WebSocket upgrade (either
//! HTTP version), a fallback open and a plain HTTP request alike.
//!
//! The subrequest is a GET of the configured URL carrying what the service
//! needs to decide: the client's method (`X-Forwarded-Method`; `GET` for a
//! WebSocket over HTTP/2 too, so the service sees one WebSocket whichever
//! HTTP the browser chose) and URI
//! (`X-Forwarded-Uri`), its `Origin`, `Cookie` and `Authorization`, the
//! request id and the forwarding headers (built as for a backend, so an
//! untrusted client's claims never reach it). Then:
//!
//! - a 2xx admits; the `copy_headers` it names go onto the backend request,
//!   and the client's own copies of those headers are always removed, so
//!   a client cannot forge what the service vouches for;
//! - a 401 or 403 goes back to the client as is, body included (bounded);
//! - anything else — a redirect (never followed), another status, garbage,
//!   a body over [`MAX_DENIAL_BODY`] — is a 502; no answer within
//!   `auth.timeout` (connect included) a 504. It never admits.
//!
//! The service is dialled through the [`Connector`] as a backend is, so an
//! `https://` service is verified the same way (the route's `backend_ca`,
//! else the public roots).

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{request, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use crate::config::{Backend, BackendTls, ForwardAuth, Route};
use crate::http::body::{empty, Body};
use crate::http::client::ClientInfo;
use crate::http::error::{AuthDenial, ProxyError};
use crate::http::headers::{add_forwarding, strip_hop_by_hop};
use crate::upstream::{http1_sender, Connector};

/// The largest 401/403 body passed back to the client; a larger one is a
/// broken auth service (502), not something to stream to the client.
pub const MAX_DENIAL_BODY: usize = 64 * 1024;

/// Headers of the client's request the auth service gets as they are.
const PASSED: [HeaderName; 4] = [
    header::ORIGIN,
    header::COOKIE,
    header::AUTHORIZATION,
    HeaderName::from_static("x-request-id"),
];

/// Asks the route's auth service about the request `parts` from `client`;
/// on a 2xx returns the headers to copy onto the backend request. Counts
/// the outcome in `wsgate_auth_requests_total`.
pub async fn authorize(
    connector: &Connector,
    route: &Route,
    auth: &ForwardAuth,
    parts: &request::Parts,
    client: &ClientInfo,
) -> Result<HeaderMap, ProxyError> {
    let service = auth.service.url.clone();
    let asked = tokio::time::timeout(auth.timeout, ask(connector, route, auth, parts, client));
    let result = match asked.await {
        Ok(result) => result,
        Err(_) => Err(ProxyError::AuthTimeout {
            service,
            timeout: auth.timeout,
        }),
    };
    let label = match &result {
        Ok(_) => "allowed",
        Err(ProxyError::AuthDenied(_)) => "denied",
        Err(error) => error.reason(),
    };
    connector.metrics().auth_request(&route.name, label);
    result
}

/// Removes the client's own copies of the vouched-for headers and puts the
/// auth service's in: called on every backend request of a route with
/// `auth`, so nothing the client sends under those names gets through.
pub fn apply(headers: &mut HeaderMap, auth: Option<&ForwardAuth>, vouched: &HeaderMap) {
    let Some(auth) = auth else { return };
    for name in &auth.copy_headers {
        headers.remove(name);
    }
    for (name, value) in vouched {
        headers.append(name.clone(), value.clone());
    }
}

/// The subrequest and its answer, unbounded in time (the caller bounds it).
async fn ask(
    connector: &Connector,
    route: &Route,
    auth: &ForwardAuth,
    parts: &request::Parts,
    client: &ClientInfo,
) -> Result<HeaderMap, ProxyError> {
    let service = &auth.service.url;
    let unreachable = |error: ProxyError| ProxyError::AuthUnreachable {
        service: service.clone(),
        reason: error.to_string(),
    };
    let tls = BackendTls {
        sni: None,
        ..route.backend_tls.clone()
    };
    let backend = Backend::Remote(auth.service.clone());
    let stream = connector
        .connect_to(&backend, auth.timeout, &tls)
        .await
        .map_err(unreachable)?;
    let bad = |reason: String| ProxyError::AuthBadAnswer {
        service: service.clone(),
        reason,
    };
    let mut sender = http1_sender(stream, service)
        .await
        .map_err(|e| bad(e.to_string()))?;
    let response = sender
        .send_request(subrequest(auth, parts, client))
        .await
        .map_err(|e| bad(e.to_string()))?;
    verdict(response, auth).await.map_err(|e| match e {
        Verdict::Bad(reason) => bad(reason),
        Verdict::Denied(denied) => denied,
    })
}

/// Why an answer did not admit.
enum Verdict {
    /// 401/403: the client's answer.
    Denied(ProxyError),
    /// Anything else.
    Bad(String),
}

/// Reads the service's answer: the vouched-for headers of a 2xx, the
/// client's 401/403, or what was wrong with it.
async fn verdict(response: Response<Incoming>, auth: &ForwardAuth) -> Result<HeaderMap, Verdict> {
    let status = response.status();
    if status.is_success() {
        return Ok(vouched(response.headers(), auth));
    }
    if status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN {
        let what = match status.is_redirection() {
            true => "a redirect (not followed)",
            false => "a status that neither admits nor refuses",
        };
        return Err(Verdict::Bad(format!("{status}: {what}")));
    }
    let (mut parts, body) = response.into_parts();
    let body = Limited::new(body, MAX_DENIAL_BODY)
        .collect()
        .await
        .map_err(|e| {
            Verdict::Bad(format!(
                "{status} with a body that failed or is over {MAX_DENIAL_BODY} bytes: {e}"
            ))
        })?
        .to_bytes();
    strip_hop_by_hop(&mut parts.headers);
    parts.headers.remove(header::CONTENT_LENGTH);
    Err(Verdict::Denied(ProxyError::AuthDenied(Box::new(
        AuthDenial {
            status,
            headers: parts.headers,
            body,
        },
    ))))
}

/// The `copy_headers` of a 2xx answer, every value of each.
fn vouched(headers: &HeaderMap, auth: &ForwardAuth) -> HeaderMap {
    let mut out = HeaderMap::new();
    for name in &auth.copy_headers {
        for value in headers.get_all(name) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// The GET the auth service gets.
fn subrequest(auth: &ForwardAuth, parts: &request::Parts, client: &ClientInfo) -> Request<Body> {
    let mut headers = HeaderMap::new();
    for name in &PASSED {
        for value in parts.headers.get_all(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    for (name, value) in &parts.headers {
        let name_str = name.as_str();
        if name_str.starts_with("x-forwarded-") || name_str == "forwarded" {
            headers.append(name.clone(), value.clone());
        }
    }
    if let Some(host) = parts.headers.get(header::HOST) {
        headers.insert(header::HOST, host.clone());
    }
    add_forwarding(&mut headers, client);
    let uri = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let mut set = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    };
    set("x-forwarded-method", client_method(parts));
    set("x-forwarded-uri", uri);
    let host = match auth.service.host.contains(':') {
        true => format!("[{}]", auth.service.host),
        false => auth.service.host.clone(),
    };
    let authority = format!("{host}:{}", auth.service.port);
    set("host", &authority);
    let mut request = Request::new(empty());
    *request.uri_mut() = auth.path.parse().unwrap_or_default();
    *request.headers_mut() = headers;
    request
}

/// The method the service is told: an HTTP/2 extended CONNECT opens the
/// same WebSocket an HTTP/1.1 `GET` upgrade does (RFC 8441 §5).
fn client_method(parts: &request::Parts) -> &str {
    let extended = parts.extensions.get::<hyper::ext::Protocol>().is_some();
    match (&parts.method, extended) {
        (&http::Method::CONNECT, true) => "GET",
        (method, _) => method.as_str(),
    }
}
