//! Owner forwarding: with `[cluster]`, a fallback session is served by any
//! instance. The instance that opens a session owns it (its backend
//! WebSocket, buffers and sequence numbers stay there), and the session's
//! id names that owner under a MAC. A poll, event stream, send or close
//! that reaches another instance is forwarded to the owner's peer listener
//! over a pooled HTTP/2 connection, signed, bounded in time and streamed
//! back, so a balancer needs no sticky routing. Nothing else is shared.
//! The protocol between instances is in docs/cluster.md.
//!
//! ```text
//! key       the secret as MAC keys, and its public key id
//! ids       session ids that name their owner, checked by MAC
//! auth      signing and checking requests between instances
//! pool      one HTTP/2 connection per peer
//! forward   a client's request to its session's owner, and back
//! stream    the owner's answer, streamed with a silence bound
//! ```
//!
//! The gateway asks [`Cluster::locate`] who owns a session and either
//! serves it or calls [`Cluster::forward`]; the server's peer listener
//! hands what [`Cluster::authenticate`] accepts to the same local code.

pub mod auth;
pub mod forward;
pub mod ids;
pub mod key;
pub mod pool;
pub mod stream;

use std::net::SocketAddr;
use std::sync::Arc;

use http::{Request, StatusCode};
use hyper::body::Incoming;
use tokio_util::sync::CancellationToken;

use crate::config::cluster::ClusterSettings;
use crate::fallback::exchange::read_body;
use crate::fallback::IdSpelling;
use crate::http::body::{boxed, full, Body};
use crate::http::error::ProxyError;
use crate::telemetry::metrics::Metrics;
use auth::{AuthError, Claim};
use ids::{Forgery, IdCodec, Located};
use key::ClusterKey;
use pool::Pool;

/// This instance's part in the cluster.
#[derive(Debug)]
pub struct Cluster {
    /// Writes and reads session ids.
    ids: Arc<IdCodec>,
    /// Signs and checks peer requests.
    key: ClusterKey,
    /// How peers reach this instance.
    advertise: String,
    /// Connections to peers.
    pool: Pool,
    /// Where forwards, refusals and connect errors are counted.
    metrics: Arc<Metrics>,
    /// Cancelled when this instance closes its connections (the drain's
    /// third stage): forwarded answers still streaming end then.
    closing: CancellationToken,
}

impl Cluster {
    /// This instance's cluster state; `closing` is the drain's stage that
    /// closes connections.
    pub fn new(
        settings: &ClusterSettings,
        metrics: Arc<Metrics>,
        closing: CancellationToken,
    ) -> Self {
        let key = ClusterKey::new(&settings.secret);
        let ids = IdCodec::new(key.clone(), &settings.advertise, rand::random());
        Cluster {
            ids: Arc::new(ids),
            key,
            advertise: settings.advertise.clone(),
            pool: Pool::default(),
            metrics,
            closing,
        }
    }

    /// How this instance spells the ids of the sessions it opens.
    pub fn spelling(&self) -> Arc<dyn IdSpelling> {
        self.ids.clone()
    }

    /// How peers reach this instance.
    pub fn advertise(&self) -> &str {
        &self.advertise
    }

    /// Who owns the session `id` names. A forged id is logged and counted
    /// here; no connection is made for it.
    pub fn locate(&self, id: &str) -> Located {
        let located = self.ids.locate(id);
        match &located {
            Located::Forged(forgery) => {
                self.metrics.cluster_refused(forgery.label());
                match forgery {
                    Forgery::ForeignKey { owner } => {
                        tracing::warn!(peer = %owner, "session id signed under another cluster secret: the instance it names disagrees on the secret (or the id is forged)")
                    }
                    _ => tracing::warn!(
                        reason = forgery.label(),
                        "forged, altered or truncated session id refused"
                    ),
                }
            }
            Located::Restarted(session) => {
                tracing::info!(%session, "session id of this instance's earlier run: the session was lost in a restart (or another instance advertises the same address)")
            }
            Located::Here(_) | Located::Owner { .. } => {}
        }
        located
    }

    /// Checks a request from the peer listener: its MAC and timestamp
    /// first, then its body (at most `max_body` bytes) against the signed
    /// hash. What passes comes back as the request the owner serves, with
    /// only the forwarded client headers. A refusal is logged with the
    /// peer's address and counted.
    pub async fn authenticate(
        &self,
        req: Request<Incoming>,
        remote: SocketAddr,
        max_body: u64,
    ) -> Result<(Claim, Request<Body>), ProxyError> {
        let (parts, body) = req.into_parts();
        let checked = auth::verify(&self.key, &parts, auth::unix_ms());
        let claim = checked.map_err(|e| self.refuse_peer(&e, remote))?;
        let bytes = read_body(boxed(body), &parts.headers, max_body).await?;
        claim
            .check_body(&bytes)
            .map_err(|e| self.refuse_peer(&e, remote))?;
        let mut served = Request::new(full(bytes));
        *served.method_mut() = parts.method;
        *served.uri_mut() = parts.uri;
        for name in auth::FORWARDED_HEADERS {
            if let Some(value) = parts.headers.get(name) {
                served.headers_mut().insert(name, value.clone());
            }
        }
        Ok((claim, served))
    }

    /// Logs and counts a refused peer request.
    fn refuse_peer(&self, error: &AuthError, remote: SocketAddr) -> ProxyError {
        self.metrics.cluster_refused(error.label());
        match error {
            AuthError::ForeignKey { from } => {
                tracing::warn!(peer = %from, %remote, "peer request signed under another cluster secret: this peer disagrees on the secret")
            }
            AuthError::Stale { from, skew_ms } => {
                tracing::warn!(peer = %from, %remote, skew_ms, "peer request with a stale timestamp refused: a replay, or clocks out of step")
            }
            AuthError::BadMac { from } | AuthError::BodyMismatch { from } => {
                tracing::warn!(peer = %from, %remote, reason = error.label(), "peer request with a bad MAC refused")
            }
            AuthError::Malformed(header) => {
                tracing::warn!(%remote, header, "peer request without valid peer headers refused")
            }
        }
        ProxyError::PeerRefused(error.label())
    }

    /// Logs and counts a request a peer forwarded here, once answered.
    pub fn served(&self, claim: &Claim, path: &str, status: StatusCode) {
        let class = format!("{}xx", status.as_u16() / 100);
        self.metrics.cluster_served(&claim.from, &class);
        tracing::info!(peer = %claim.from, client = %claim.client, path, status = status.as_u16(), "forwarded fallback request served");
    }

    /// Counts a refused peer connection or misrouted request, by `reason`.
    pub fn count_refusal(&self, reason: &'static str) {
        self.metrics.cluster_refused(reason);
    }
}
