//! Requests on a fallback session. Without `[cluster]` the session is this
//! instance's or unknown. In a cluster its id says who owns it: this
//! instance serves it, forwards it to the owner, answers for an owner
//! that restarted, or refuses a forged id (404, no connection made). The
//! peer listener's requests, forwarded here by other instances, are
//! authenticated and then served by the same local code.

use std::net::SocketAddr;
use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;

use super::Gateway;
use crate::cluster::forward::{Bounds, Forward};
use crate::cluster::ids::Located;
use crate::fallback::protocol::SessionId;
use crate::fallback::{self, lost, Action, Endpoint};
use crate::http::body::{boxed, Body};
use crate::http::client::ClientInfo;
use crate::http::error::ProxyError;

/// The close reason a client gets for a session its owner lost in a restart.
const OWNER_RESTARTED: &str = "session owner restarted; reconnect";

/// What became of a request on the peer listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerOutcome {
    /// It was authentic and got its answer.
    Served,
    /// Its authentication failed: the connection should close.
    Refused,
}

/// Answers a client's request on session `id`.
pub(super) async fn serve(
    gateway: &Gateway,
    id: &str,
    action: Action,
    req: Request<Incoming>,
    client: ClientInfo,
) -> Result<Response<Body>, ProxyError> {
    let Some(cluster) = &gateway.cluster else {
        let id = SessionId::parse(id).ok_or(ProxyError::SessionUnknown)?;
        return gateway.fallback.serve(id, action, req.map(boxed)).await;
    };
    match cluster.locate(id) {
        Located::Owner { owner, session } => {
            let table = gateway.table();
            let to = Forward {
                owner: &owner,
                session,
                action,
                client,
                bounds: Bounds::for_routes(table.router.routes()),
            };
            cluster.forward(to, req).await
        }
        located => serve_located(gateway, located, action, req.map(boxed)).await,
    }
}

/// A session that is not another instance's: this run's, lost in a
/// restart of this instance, or no session at all.
async fn serve_located(
    gateway: &Gateway,
    located: Located,
    action: Action,
    req: Request<Body>,
) -> Result<Response<Body>, ProxyError> {
    match located {
        Located::Here(id) => gateway.fallback.serve(id, action, req).await,
        Located::Restarted(_) => {
            let (parts, _) = req.into_parts();
            lost::answer(action, &parts, OWNER_RESTARTED, ProxyError::SessionUnknown)
        }
        Located::Forged(_) => Err(ProxyError::SessionUnknown),
        Located::Owner { .. } => Err(ProxyError::NotSessionOwner),
    }
}

/// Answers a request that arrived on the peer listener from `remote`:
/// authenticated, then served as this instance's own (a session owned
/// elsewhere is 421: forwarding takes one hop, never two).
pub async fn serve_peer(
    gateway: Arc<Gateway>,
    req: Request<Incoming>,
    remote: SocketAddr,
) -> (Response<Body>, PeerOutcome) {
    let Some(cluster) = gateway.cluster.clone() else {
        return (
            ProxyError::FallbackEndpoint.to_response(),
            PeerOutcome::Refused,
        );
    };
    let max_body = Bounds::for_routes(gateway.table().router.routes()).max_body;
    let (claim, req) = match cluster.authenticate(req, remote, max_body).await {
        Ok(authentic) => authentic,
        Err(refused) => return (refused.to_response(), PeerOutcome::Refused),
    };
    let path = req.uri().path().to_owned();
    let result = match fallback::endpoint(req.method(), &path) {
        Ok(Endpoint::Session(id, action)) => {
            serve_located(&gateway, cluster.locate(id), action, req).await
        }
        Ok(_) => Err(ProxyError::FallbackEndpoint),
        Err(e) => Err(e),
    };
    if let Err(ProxyError::NotSessionOwner) = &result {
        cluster.count_refusal("not_owner");
        tracing::warn!(peer = %claim.from, path, "a peer forwarded a request on a session this instance does not own: do two instances advertise the same address?");
    }
    let response = result.unwrap_or_else(|e| e.to_response());
    cluster.served(&claim, &path, response.status());
    (response, PeerOutcome::Served)
}
