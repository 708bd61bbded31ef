//! The metric families of a cluster: requests forwarded to the owners of
//! their sessions and what came of them, requests served for peers, failed
//! connects to peers, and the bad input refused (forged ids, peer requests
//! that fail authentication, a flooded peer listener). Registered with the
//! rest in [`Metrics`]; documented in docs/metrics.md.
//!
//! `peer` labels name an instance by its advertised address and only ever
//! come from an id or a request whose MAC checked out, so they stay as
//! few as the cluster's instances.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::labels::{PeerLabel, PeerResultLabels, ReasonLabel};
use super::metrics::Metrics;

/// The cluster families.
#[derive(Debug, Default)]
pub(crate) struct ClusterFamilies {
    forwarded: Family<PeerResultLabels, Counter>,
    served: Family<PeerResultLabels, Counter>,
    connect_errors: Family<PeerLabel, Counter>,
    refusals: Family<ReasonLabel, Counter>,
}

impl ClusterFamilies {
    /// Puts the families in the registry under their documented names.
    pub(crate) fn register(&self, registry: &mut Registry) {
        registry.register(
            "cluster_forwarded_requests",
            "Fallback requests forwarded to the instance owning their session, by owner and result",
            self.forwarded.clone(),
        );
        registry.register(
            "cluster_peer_requests",
            "Forwarded fallback requests served for peers, by sending peer and result",
            self.served.clone(),
        );
        registry.register(
            "cluster_peer_connect_errors",
            "Failed connects to peers, by peer",
            self.connect_errors.clone(),
        );
        registry.register(
            "cluster_refusals",
            "Session ids and peer requests refused, and peer connections refused, by reason",
            self.refusals.clone(),
        );
    }
}

impl Metrics {
    /// Counts a request forwarded to `peer`, the owner of its session, by
    /// `result` (`2xx` … `5xx` for the owner's answer, or the failure).
    pub fn cluster_forwarded(&self, peer: &str, result: &str) {
        let labels = peer_result(peer, result);
        self.cluster.forwarded.get_or_create(&labels).inc();
    }

    /// Counts a request `peer` forwarded here and the class of our answer.
    pub fn cluster_served(&self, peer: &str, result: &str) {
        let labels = peer_result(peer, result);
        self.cluster.served.get_or_create(&labels).inc();
    }

    /// Counts a failed connect to `peer`.
    pub fn cluster_connect_error(&self, peer: &str) {
        let labels = PeerLabel {
            peer: peer.to_owned(),
        };
        self.cluster.connect_errors.get_or_create(&labels).inc();
    }

    /// Counts a refused id, peer request or peer connection, by `reason`.
    pub fn cluster_refused(&self, reason: &'static str) {
        let labels = ReasonLabel { reason };
        self.cluster.refusals.get_or_create(&labels).inc();
    }
}

/// `{peer, result}`.
fn peer_result(peer: &str, result: &str) -> PeerResultLabels {
    PeerResultLabels {
        peer: peer.to_owned(),
        result: result.to_owned(),
    }
}
