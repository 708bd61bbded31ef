//! The gateway's own WebSocket handshake with a backend.
//!
//! The client gets its 101 only after this succeeds, so a backend that is
//! down, slow or misbehaving becomes a plain HTTP error (502, 504 or the
//! backend's own status) instead of a 101 followed by a close.
//!
//! ```text
//! wire       the request written, the answer's head read and parsed
//! declined   a refusal handed to hyper's client for its body
//! ```

mod declined;
mod wire;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{request, Response, StatusCode};
use hyper::body::Incoming;

use crate::config::Route;
use crate::http::client::ClientInfo;
use crate::http::error::ProxyError;
use crate::http::headers::{add_forwarding, strip_hop_by_hop};
use crate::upstream::{backend_skipped, BackendStream, Connector, Lease, Plan};
use crate::ws::handshake::{
    accept_key, check_extension_answer, choose_protocol, new_key, CheckedUpgrade,
};
use crate::ws::relay::Leg;
use wire::{Head, HeadError, Scratch};

/// An upgraded backend connection: the stream, after any bytes the backend
/// sent right behind its 101.
pub type BackendIo = Leg<BackendStream>;

/// A backend that accepted the upgrade.
#[derive(Debug)]
pub struct BackendUpgrade {
    /// The upgraded backend connection, ready for frames.
    pub io: BackendIo,
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
        response: Response<Incoming>,
        backend: String,
    },
}

/// A checked 101: a [`BackendUpgrade`] but for its lease.
struct Accepted {
    io: BackendIo,
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
    mut stream: BackendStream,
    backend: String,
    route: &Route,
    client_req: &request::Parts,
    checked: &CheckedUpgrade,
    client: &ClientInfo,
) -> Result<Answer, Failed> {
    let key = new_key();
    let mut headers = backend_headers(client_req, checked, client, &key);
    if let Some(vouched) = &checked.vouched {
        crate::auth::apply(&mut headers, route.edge.auth.as_ref(), vouched);
    }
    let path = client_req
        .uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str());
    let mut buf = Scratch::take();
    let exchange = async {
        wire::send_request(&mut stream, &mut buf, path, &headers)
            .await
            .map_err(|e| Failed::Skip(ProxyError::backend_io(&backend, &e)))?;
        let head = wire::read_head(&mut stream, &mut buf).await;
        head.map_err(|e| match e {
            HeadError::Hangup(e) => Failed::Skip(ProxyError::backend_io(&backend, &e)),
            HeadError::Invalid(reason) => Failed::Final(ProxyError::BackendProtocol {
                backend: backend.clone(),
                reason,
            }),
        })
    };
    let head = tokio::time::timeout(route.response_timeout, exchange)
        .await
        .map_err(|_| {
            Failed::Final(ProxyError::BackendResponseTimeout {
                backend: backend.clone(),
                timeout: route.response_timeout,
            })
        })??;
    if head.status != StatusCode::SWITCHING_PROTOCOLS {
        let read = Bytes::copy_from_slice(head.all(&buf));
        drop(buf);
        let answer = declined::answer(stream, read, path, &backend).await;
        let response = answer.map_err(Failed::Final)?;
        return Ok(Answer::Declined { response, backend });
    }
    let early = Bytes::copy_from_slice(head.rest(&buf));
    drop(buf);
    accept(
        head,
        Leg::prefaced(early, stream),
        route,
        checked,
        &key,
        backend,
    )
    .map_err(Failed::Final)
}

/// Checks the backend's 101; the connection is the relay's from here on.
fn accept(
    head: Head,
    io: BackendIo,
    route: &Route,
    checked: &CheckedUpgrade,
    key: &str,
    backend: String,
) -> Result<Answer, ProxyError> {
    let bad = |reason: String| ProxyError::BackendProtocol {
        backend: backend.clone(),
        reason,
    };
    let (protocol, deflate) = check_answer(&head.headers, route, checked, key).map_err(bad)?;
    let extensions = head.headers.get(header::SEC_WEBSOCKET_EXTENSIONS).cloned();
    let headers = passthrough_headers(head.headers);
    Ok(Answer::Upgraded(Accepted {
        io,
        backend,
        protocol,
        extensions,
        deflate,
        headers,
    }))
}

/// The backend's upgrade request headers: the client's end-to-end headers
/// (cookies, `Authorization`, Host), forwarding headers, a fresh key and
/// the filtered subprotocol and extension offers. The path and query are
/// the client's.
fn backend_headers(
    client_req: &request::Parts,
    checked: &CheckedUpgrade,
    client: &ClientInfo,
    key: &str,
) -> HeaderMap {
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
    headers
}

/// Validates a 101: upgrade headers, accept key, subprotocol and extensions.
fn check_answer(
    headers: &HeaderMap,
    route: &Route,
    checked: &CheckedUpgrade,
    key: &str,
) -> Result<(Option<String>, bool), String> {
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
fn passthrough_headers(mut headers: HeaderMap) -> HeaderMap {
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
