//! The gateway's own WebSocket handshake with a backend.
//!
//! The client gets its 101 only after this succeeds, so a backend that is
//! down, slow or misbehaving becomes a plain HTTP error (502, 504 or the
//! backend's own status) instead of a 101 followed by a close.

use http::header::{self, HeaderMap, HeaderValue};
use http::{request, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;

use crate::config::Route;
use crate::http::body::empty;
use crate::http::client::ClientInfo;
use crate::http::error::ProxyError;
use crate::http::headers::{add_forwarding, strip_hop_by_hop};
use crate::upstream::{backend_skipped, http1_sender, BackendStream, Connector, Lease, Plan};
use crate::ws::handshake::{
    accept_key, check_extension_answer, choose_protocol, new_key, CheckedUpgrade,
};

/// A backend that accepted the upgrade.
#[derive(Debug)]
pub struct BackendUpgrade {
    /// The upgraded backend connection, ready for frames.
    pub io: TokioIo<Upgraded>,
    /// The backend as configured, for logs.
    pub backend: String,
    /// The subprotocol for the client's 101.
    pub protocol: Option<String>,
    /// The backend's extension answer, passed to the client as is.
    pub extensions: Option<HeaderValue>,
    /// Whether `permessage-deflate` was negotiated (the relay allows RSV1).
    pub deflate: bool,
    /// Other headers of the backend's 101 (e.g. `Set-Cookie`) for the
    /// client, the gateway's sticky cookie included.
    pub headers: HeaderMap,
    /// Counts the connection on its backend for as long as it is held:
    /// by the relay, or by the fallback session's bridge.
    pub lease: Lease,
}

/// How the backend answered the upgrade.
pub enum DialOutcome {
    /// 101: relay frames.
    Upgraded(BackendUpgrade),
    /// Any other status: relayed to the client as is.
    Declined {
        /// The backend's answer.
        response: Response<Incoming>,
        /// The backend as configured, for logs.
        backend: String,
    },
}

/// Opens a WebSocket to one of the route's backends on the client's behalf.
///
/// Backends are tried in the plan's order. One that refuses, does not
/// accept in time, fails TLS, or hangs up before any answer is skipped for
/// the next (as nginx's `proxy_next_upstream error timeout`): the client
/// has seen nothing yet, and the upgrade is a GET, safe to send again. A
/// backend that answers — 101, a refusal, garbage — or takes longer than
/// `response_timeout` settles it. Either answer carries the sticky cookie
/// naming that backend when the route balances by cookie.
pub async fn open(
    connector: &Connector,
    route: &Route,
    plan: &Plan,
    client_req: &request::Parts,
    checked: &CheckedUpgrade,
    client: &ClientInfo,
) -> Result<DialOutcome, ProxyError> {
    let mut last = None;
    for (tried, lease) in plan.attempts().enumerate() {
        let attempt = async {
            let stream = connector
                .connect(&lease.state().backend, route)
                .await
                .map_err(Failed::Skip)?;
            let label = lease.state().label.clone();
            exchange(stream, label, route, client_req, checked, client).await
        };
        let cookie = plan.set_cookie(&lease);
        match attempt.await {
            Ok(outcome) => return Ok(outcome.settle(lease, cookie)),
            Err(Failed::Final(e)) => return Err(e),
            Err(Failed::Skip(e)) => {
                backend_skipped(route, &lease, &e, tried + 1 < plan.len());
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or(ProxyError::NoBackend))
}

/// The backend's answer, before it is settled on a lease.
enum Answer {
    /// A checked 101.
    Upgraded(Accepted),
    /// Any other status, and the backend that gave it.
    Declined {
        /// The backend's answer.
        response: Response<Incoming>,
        /// The backend as configured, for logs.
        backend: String,
    },
}

/// A checked 101: a [`BackendUpgrade`] but for its lease.
struct Accepted {
    io: TokioIo<Upgraded>,
    backend: String,
    protocol: Option<String>,
    extensions: Option<HeaderValue>,
    deflate: bool,
    headers: HeaderMap,
}

impl Answer {
    /// The final outcome: the upgrade holds the lease; either answer gets
    /// the sticky cookie.
    fn settle(self, lease: Lease, cookie: Option<HeaderValue>) -> DialOutcome {
        match self {
            Answer::Upgraded(accepted) => {
                let mut headers = accepted.headers;
                headers.extend(cookie.map(|c| (header::SET_COOKIE, c)));
                DialOutcome::Upgraded(BackendUpgrade {
                    io: accepted.io,
                    backend: accepted.backend,
                    protocol: accepted.protocol,
                    extensions: accepted.extensions,
                    deflate: accepted.deflate,
                    headers,
                    lease,
                })
            }
            Answer::Declined {
                mut response,
                backend,
            } => {
                if let Some(cookie) = cookie {
                    response.headers_mut().append(header::SET_COOKIE, cookie);
                }
                DialOutcome::Declined { response, backend }
            }
        }
    }
}

/// How one backend's attempt failed.
enum Failed {
    /// Before any answer: the next backend may be tried.
    Skip(ProxyError),
    /// The backend answered badly, or not in time: the client's answer.
    Final(ProxyError),
}

/// The upgrade with one connected backend: request, answer, the 101's checks.
async fn exchange(
    stream: BackendStream,
    backend: String,
    route: &Route,
    client_req: &request::Parts,
    checked: &CheckedUpgrade,
    client: &ClientInfo,
) -> Result<Answer, Failed> {
    let key = new_key();
    let mut request = backend_request(client_req, checked, client, &key);
    if let Some(vouched) = &checked.vouched {
        crate::auth::apply(request.headers_mut(), route.edge.auth.as_ref(), vouched);
    }
    let exchange = send(stream, request, &backend);
    let response = tokio::time::timeout(route.response_timeout, exchange)
        .await
        .map_err(|_| {
            Failed::Final(ProxyError::BackendResponseTimeout {
                backend: backend.clone(),
                timeout: route.response_timeout,
            })
        })??;
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        return Ok(Answer::Declined { response, backend });
    }
    accept(response, route, checked, &key, backend)
        .await
        .map_err(Failed::Final)
}

/// Checks the backend's 101 and takes its connection over.
async fn accept(
    response: Response<Incoming>,
    route: &Route,
    checked: &CheckedUpgrade,
    key: &str,
    backend: String,
) -> Result<Answer, ProxyError> {
    let bad = |reason: String| ProxyError::BackendProtocol {
        backend: backend.clone(),
        reason,
    };
    let (protocol, deflate) = check_answer(&response, route, checked, key).map_err(bad)?;
    let extensions = response
        .headers()
        .get(header::SEC_WEBSOCKET_EXTENSIONS)
        .cloned();
    let headers = passthrough_headers(response.headers());
    let upgraded = hyper::upgrade::on(response)
        .await
        .map_err(|e| bad(format!("upgrade failed: {e}")))?;
    Ok(Answer::Upgraded(Accepted {
        io: TokioIo::new(upgraded),
        backend,
        protocol,
        extensions,
        deflate,
        headers,
    }))
}

/// The backend's upgrade request: the client's path, query and end-to-end
/// headers (cookies, `Authorization`, Host), forwarding headers, a fresh key
/// and the filtered subprotocol and extension offers.
fn backend_request(
    client_req: &request::Parts,
    checked: &CheckedUpgrade,
    client: &ClientInfo,
    key: &str,
) -> Request<crate::http::body::Body> {
    let mut headers = client_req.headers.clone();
    strip_hop_by_hop(&mut headers);
    for name in [
        header::SEC_WEBSOCKET_KEY,
        header::SEC_WEBSOCKET_PROTOCOL,
        header::SEC_WEBSOCKET_EXTENSIONS,
        header::SEC_WEBSOCKET_VERSION,
    ] {
        headers.remove(name);
    }
    add_forwarding(&mut headers, client);
    let mut set = |name, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    };
    set(header::CONNECTION, "Upgrade");
    set(header::UPGRADE, "websocket");
    set(header::SEC_WEBSOCKET_VERSION, "13");
    set(header::SEC_WEBSOCKET_KEY, key);
    if !checked.protocols.is_empty() {
        set(
            header::SEC_WEBSOCKET_PROTOCOL,
            &checked.protocols.join(", "),
        );
    }
    if let Some(extensions) = &checked.extensions {
        set(header::SEC_WEBSOCKET_EXTENSIONS, extensions);
    }
    let path = client_req
        .uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str());
    let mut request = Request::new(empty());
    *request.uri_mut() = path.parse().unwrap_or_default();
    *request.headers_mut() = headers;
    request
}

/// Sends the request on a fresh HTTP/1.1 connection and waits for the head.
/// A connection that fails or closes before any answer is worth retrying
/// elsewhere; anything the backend did say is final.
async fn send(
    stream: BackendStream,
    request: Request<crate::http::body::Body>,
    backend: &str,
) -> Result<Response<Incoming>, Failed> {
    let mut sender = http1_sender(stream, backend).await.map_err(Failed::Final)?;
    sender.send_request(request).await.map_err(|e| {
        let error = ProxyError::backend_protocol(backend, &e);
        if hung_up_before_answering(&e) {
            Failed::Skip(error)
        } else {
            Failed::Final(error)
        }
    })
}

/// The connection closed or failed before a response head arrived (hyper's
/// "connection closed before message completed", a reset, a TLS alert).
fn hung_up_before_answering(error: &hyper::Error) -> bool {
    use std::error::Error as _;
    let io = error
        .source()
        .is_some_and(|cause| cause.downcast_ref::<std::io::Error>().is_some());
    error.is_incomplete_message() || error.is_canceled() || error.is_closed() || io
}

/// Validates a 101: upgrade headers, accept key, subprotocol and extensions.
fn check_answer(
    response: &Response<Incoming>,
    route: &Route,
    checked: &CheckedUpgrade,
    key: &str,
) -> Result<(Option<String>, bool), String> {
    let headers = response.headers();
    let upgrade = headers
        .get(header::UPGRADE)
        .map(|v| v.as_bytes().to_ascii_lowercase());
    if upgrade.as_deref() != Some(b"websocket") {
        return Err("101 without Upgrade: websocket".into());
    }
    let accept = headers
        .get(header::SEC_WEBSOCKET_ACCEPT)
        .and_then(|v| v.to_str().ok());
    if accept != Some(accept_key(key).as_str()) {
        return Err("wrong Sec-WebSocket-Accept".into());
    }
    let choice = headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .map(|v| {
            v.to_str()
                .map(str::trim)
                .map_err(|_| "unreadable subprotocol".to_string())
        })
        .transpose()?;
    let protocol = choose_protocol(route, &checked.protocols, choice)?;
    let deflate = check_extension_answer(headers, checked.extensions.is_some())?;
    Ok((protocol, deflate))
}

/// Headers of the backend's 101 that the client should see too, i.e. all
/// but hop-by-hop and the handshake's own.
fn passthrough_headers(headers: &HeaderMap) -> HeaderMap {
    let mut headers = headers.clone();
    strip_hop_by_hop(&mut headers);
    for name in [
        header::SEC_WEBSOCKET_ACCEPT,
        header::SEC_WEBSOCKET_PROTOCOL,
        header::SEC_WEBSOCKET_EXTENSIONS,
        header::CONTENT_LENGTH,
    ] {
        headers.remove(name);
    }
    headers
}
