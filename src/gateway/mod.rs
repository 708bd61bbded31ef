//! Per-request dispatch and the state it draws on.
//!
//! [`Gateway`] holds what every connection shares: the routing table,
//! the backend connector, limits, metrics, the drain's handle and the
//! fallback's sessions. [`dispatch`] hands each path only the part it uses
//! (an upgrade gets the admission and the relays' context, a plain request
//! the connector and its route's balancer), so no lower layer sees the
//! whole gateway.

pub mod dispatch;

use std::sync::{Arc, RwLock};

use crate::acme::challenge::Challenges;
use crate::config::{Route, ServerSettings};
use crate::fallback::open::Opener;
use crate::fallback::Fallback;
use crate::limits::Limits;
use crate::routing::Router;
use crate::shutdown::Shutdown;
use crate::telemetry::metrics::Metrics;
use crate::upstream::{Balancer, Connector};
use crate::ws::admit::Admission;
use crate::ws::upgrade::Relays;

/// Shared gateway state.
#[derive(Debug)]
pub struct Gateway {
    /// The routing table; replaced whole on reload, never mutated.
    table: RwLock<Arc<RouteTable>>,
    /// Dials backends.
    pub connector: Connector,
    /// Process-wide settings.
    pub settings: ServerSettings,
    /// Long-poll / SSE sessions and their counters.
    pub fallback: Fallback,
    /// Prometheus metrics; one set per process, kept across reloads.
    pub metrics: Arc<Metrics>,
    /// The drain: phase, stage signals, and what it waits for.
    pub shutdown: Shutdown,
    /// Connection and handshake limits, with their live counts.
    pub limits: Limits,
    /// Pending ACME challenges, answered on every listener.
    pub acme_challenges: Arc<Challenges>,
}

/// Routes together with their balancers.
#[derive(Debug)]
pub struct RouteTable {
    /// Picks a route for a request.
    pub router: Router,
    /// One balancer per route, indexed by `Route::index`.
    balancers: Vec<Balancer>,
}

impl RouteTable {
    /// Builds the table for a validated list of routes.
    pub fn new(routes: Vec<Route>) -> Self {
        let balancers = routes.iter().map(|_| Balancer::default()).collect();
        RouteTable {
            router: Router::new(routes),
            balancers,
        }
    }

    /// The balancer of a route of this table.
    pub fn balancer(&self, route: &Route) -> &Balancer {
        &self.balancers[route.index]
    }

    /// Whether some route offers the fallback.
    pub fn offers_fallback(&self) -> bool {
        self.router.routes().iter().any(|r| r.fallback)
    }
}

impl Gateway {
    /// Gateway state for the given routes and settings.
    pub fn new(
        routes: Vec<Route>,
        settings: ServerSettings,
        connector: Connector,
        shutdown: Shutdown,
    ) -> Self {
        Gateway {
            table: RwLock::new(Arc::new(RouteTable::new(routes))),
            metrics: connector.metrics().clone(),
            connector,
            shutdown,
            limits: Limits::new(settings.limits.clone()),
            settings,
            fallback: Fallback::default(),
            acme_challenges: Arc::default(),
        }
    }

    /// The current routing table; a request keeps the one it started with.
    pub fn table(&self) -> Arc<RouteTable> {
        self.table.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the routing table (config reload); open sessions keep theirs.
    pub fn replace_table(&self, table: RouteTable) {
        *self.table.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(table);
    }

    /// What the WebSocket's admission needs.
    fn admission(&self) -> Admission<'_> {
        Admission {
            connector: &self.connector,
            limits: &self.limits,
            shutdown: &self.shutdown,
        }
    }

    /// What starting a relay needs.
    fn relays(&self) -> Relays<'_> {
        Relays {
            shutdown: &self.shutdown,
            metrics: &self.metrics,
        }
    }

    /// What opening a fallback session needs.
    fn opener(&self) -> Opener<'_> {
        Opener {
            admission: self.admission(),
            fallback: &self.fallback,
            metrics: &self.metrics,
            shutdown: &self.shutdown,
        }
    }
}
