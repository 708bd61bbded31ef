//! The one admission path to a backend WebSocket, shared by every way in:
//! the HTTP/1.1 upgrade, the HTTP/2 extended CONNECT (RFC 8441) and the
//! fallback's session open.
//!
//! Admission runs, in order: the drain check (503), the request's own checks
//! (an upgrade's shape, version and key), the route's policy (Origin 403,
//! subprotocol 400), the edge policy ([`Admission::edge`]: the client's
//! WebSocket cap, 429, and forward auth, its 401/403 or 502/504), a
//! handshake slot (`limits.max_handshakes`, 503), and the gateway's own
//! handshake with a backend. It ends with either the backend's
//! accepted upgrade or the backend's refusal to relay; every other outcome
//! is a [`ProxyError`], answered in the one place that turns errors into
//! responses. Nothing here knows how the client's side continues (a 101 and
//! a relay, or a fallback session).

use http::Response;
use http::{request, HeaderMap};
use hyper::body::Incoming;

use crate::auth::authorize;
use crate::config::Route;
use crate::http::body::{boxed, Body};
use crate::http::client::ClientInfo;
use crate::http::error::ProxyError;
use crate::http::headers::strip_hop_by_hop;
use crate::limits::websockets::WebSocketSlot;
use crate::limits::Limits;
use crate::shutdown::Shutdown;
use crate::upstream::{Balancer, Connector};
use crate::ws::dial::{self, BackendUpgrade, DialOutcome};
use crate::ws::handshake::{self, check_policy, CheckedUpgrade};

/// What admission needs from the gateway, and nothing more.
#[derive(Debug, Clone, Copy)]
pub struct Admission<'a> {
    /// Dials backends.
    pub connector: &'a Connector,
    /// Hands out handshake slots.
    pub limits: &'a Limits,
    /// Tells whether the drain has begun.
    pub shutdown: &'a Shutdown,
}

/// What asks for a backend WebSocket.
#[derive(Debug, Clone, Copy)]
pub enum Opening<'a> {
    /// An HTTP/1.1 `Upgrade: websocket` request.
    Upgrade(&'a request::Parts),
    /// An HTTP/2 extended CONNECT with `:protocol` (RFC 8441). Its client
    /// answer is a 200, so a backend's 2xx that is not a 101 cannot be
    /// passed on as a refusal: it is a 502.
    ExtendedConnect(&'a request::Parts),
    /// A fallback session open: `request` is what the backend's upgrade is
    /// built from (a GET of the target path with the client's headers),
    /// `offered` the subprotocols the open's query lists.
    Fallback {
        /// The request the backend's upgrade is built from.
        request: &'a request::Parts,
        /// The subprotocols the client offers.
        offered: &'a [String],
    },
}

/// How admission ended, short of an error.
#[derive(Debug)]
pub enum Admitted {
    /// The backend accepted: what was checked, and the backend's upgrade.
    Upgraded {
        /// What survived the checks (the client's key, the subprotocols).
        checked: CheckedUpgrade,
        /// The backend connection, ready for frames (boxed: it is large,
        /// and most admissions that fail never build it).
        backend: Box<BackendUpgrade>,
        /// Its place under the route's `websockets_per_client`, for the
        /// relay to hold (`None` without a cap, and for the fallback).
        slot: Option<Box<WebSocketSlot>>,
    },
    /// The backend refused the upgrade: its answer, for the client as is.
    Declined(Response<Body>),
}

impl Admission<'_> {
    /// Admits `opening` on `route`, trying its backends in `balancer` order.
    pub async fn admit(
        &self,
        route: &Route,
        balancer: &Balancer,
        opening: Opening<'_>,
        client: &ClientInfo,
    ) -> Result<Admitted, ProxyError> {
        if self.shutdown.is_draining() {
            return Err(ProxyError::ShuttingDown);
        }
        // Every way into a relayed WebSocket is capped; the fallback's
        // sessions have their own cap.
        let relayed = !matches!(opening, Opening::Fallback { .. });
        let (request, mut checked) = check(route, opening, client)?;
        let slot = match relayed {
            true => self.websocket_slot(route, client)?,
            false => None,
        };
        checked.vouched = self.edge(route, request, client).await?.map(Box::new);
        // Held until the answer goes out: upgrades in progress are bounded.
        let _slot = self
            .limits
            .begin_handshake()
            .map_err(ProxyError::OverLimit)?;
        let plan = balancer.plan(&request.headers, client);
        let outcome = dial::open(self.connector, route, &plan, request, &checked, client);
        Ok(match outcome.await? {
            DialOutcome::Upgraded(backend) => Admitted::Upgraded {
                checked,
                backend: Box::new(backend),
                slot,
            },
            DialOutcome::Declined { response, backend } => {
                if let Opening::ExtendedConnect(_) = opening {
                    refuse_success(&response, &backend)?;
                }
                Admitted::Declined(declined(response, route, client, &backend))
            }
        })
    }
}

impl Admission<'_> {
    /// A place under the route's `websockets_per_client` for a relayed
    /// WebSocket (the fallback's sessions have their own cap), 429 when the
    /// client holds them all.
    fn websocket_slot(
        &self,
        route: &Route,
        client: &ClientInfo,
    ) -> Result<Option<Box<WebSocketSlot>>, ProxyError> {
        let Some(limit) = route.edge.websockets_per_client else {
            return Ok(None);
        };
        let caps = &self.limits.websockets;
        match caps.take(route.index, client.addr.ip(), limit) {
            Some(slot) => Ok(Some(Box::new(slot))),
            None => Err(ProxyError::TooManyWebSockets { limit }),
        }
    }

    /// The route's edge policy, before anything is dialled: forward auth.
    /// Returns the headers the auth service vouched for.
    async fn edge(
        &self,
        route: &Route,
        request: &request::Parts,
        client: &ClientInfo,
    ) -> Result<Option<HeaderMap>, ProxyError> {
        match &route.edge.auth {
            // Boxed: only routes with forward auth carry its future's size.
            Some(auth) => Ok(Some(
                Box::pin(authorize(self.connector, route, auth, request, client)).await?,
            )),
            None => Ok(None),
        }
    }
}

/// The request's own checks and the route's policy; returns the request the
/// backend's upgrade is built from and what survived the checks.
fn check<'a>(
    route: &Route,
    opening: Opening<'a>,
    client: &ClientInfo,
) -> Result<(&'a request::Parts, CheckedUpgrade), ProxyError> {
    match opening {
        Opening::Upgrade(parts) => Ok((parts, handshake::check(parts, route, client)?)),
        Opening::ExtendedConnect(parts) => {
            Ok((parts, handshake::check_extended(parts, route, client)?))
        }
        Opening::Fallback { request, offered } => {
            let protocols = check_policy(&request.headers, offered, route, client)?;
            let checked = CheckedUpgrade {
                key: String::new(),
                protocols,
                extensions: None,
                vouched: None,
            };
            Ok((request, checked))
        }
    }
}

/// A backend's 2xx to an upgrade is no refusal a client over HTTP/2 could
/// tell from success: its 200 would open the stream as a tunnel to nothing.
fn refuse_success(response: &Response<Incoming>, backend: &str) -> Result<(), ProxyError> {
    if !response.status().is_success() {
        return Ok(());
    }
    Err(ProxyError::BackendProtocol {
        backend: backend.to_string(),
        reason: format!(
            "answered the WebSocket upgrade with {} instead of 101",
            response.status()
        ),
    })
}

/// The backend refused the upgrade: its status, headers and body go back.
fn declined(
    response: Response<Incoming>,
    route: &Route,
    client: &ClientInfo,
    backend: &str,
) -> Response<Body> {
    tracing::info!(route = %route.name, client = %client.addr, backend, status = response.status().as_u16(), reason = "backend_status", "backend declined WebSocket upgrade");
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    Response::from_parts(parts, boxed(body))
}
