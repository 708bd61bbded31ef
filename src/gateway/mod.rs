//! Per-request dispatch and the state it draws on.
//!
//! [`Gateway`] holds what every connection shares: the routing table,
//! the backend connector, limits, metrics, the drain's handle and the
//! fallback's sessions. [`dispatch`] hands each path only the part it uses
//! (an upgrade gets the admission and the relays' context, a plain request
//! the connector and its route's balancer), so no lower layer sees the
//! whole gateway.

pub mod dispatch;
pub mod session;

use std::sync::{Arc, RwLock};

use tokio_util::sync::CancellationToken;

use crate::acme::challenge::Challenges;
use crate::cluster::Cluster;
use crate::config::{Route, ServerSettings};
use crate::fallback::open::Opener;
use crate::fallback::Fallback;
use crate::limits::Limits;
use crate::routing::Router;
use crate::shutdown::Shutdown;
use crate::telemetry::metrics::Metrics;
use crate::upstream::health::Checker;
use crate::upstream::state::BackendState;
use crate::upstream::{Balancer, Connector, Registry};
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
    /// Every backend's state (counts, health), kept across reloads.
    pub backends: Registry,
    /// `[cluster]`: who owns which session, and forwarding to the owner;
    /// `None` when every session stays with the instance that opened it.
    pub cluster: Option<Arc<Cluster>>,
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
    /// Stops this table's health checks (when it is replaced, or drained).
    checks: CancellationToken,
}

impl RouteTable {
    /// Builds the table for a validated list of routes; the balancers take
    /// each backend's state from `backends`, so surviving ones keep theirs.
    pub fn new(routes: Vec<Route>, backends: &Registry) -> Self {
        let router = Router::new(routes);
        RouteTable {
            balancers: backends.balancers(router.routes()),
            router,
            checks: CancellationToken::new(),
        }
    }

    /// Starts one health-check task per distinct backend of every route
    /// with `[routes.health]`; they stop when this table is replaced or
    /// the drain begins.
    fn start_checks(&mut self, connector: &Connector, metrics: &Arc<Metrics>, shutdown: &Shutdown) {
        self.checks = shutdown.draining().child_token();
        for (route, balancer) in self.router.routes().iter().zip(&self.balancers) {
            let mut started: Vec<&Arc<BackendState>> = Vec::new();
            for state in balancer.backends() {
                if started.iter().any(|s| Arc::ptr_eq(s, state)) {
                    continue;
                }
                started.push(state);
                let checker = Checker {
                    connector: connector.clone(),
                    route: route.clone(),
                    state: state.clone(),
                    metrics: metrics.clone(),
                };
                checker.spawn(self.checks.clone());
            }
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
    /// Gateway state for the given routes and settings; the routes' health
    /// checks start at once (so this runs inside the runtime).
    pub fn new(
        routes: Vec<Route>,
        settings: ServerSettings,
        connector: Connector,
        shutdown: Shutdown,
    ) -> Self {
        let backends = Registry::default();
        let metrics = connector.metrics().clone();
        let samples = backends.clone();
        metrics.watch_backends(move || samples.samples());
        let mut table = RouteTable::new(routes, &backends);
        table.start_checks(&connector, &metrics, &shutdown);
        Gateway {
            table: RwLock::new(Arc::new(table)),
            metrics,
            connector,
            shutdown,
            limits: Limits::new(settings.limits.clone()),
            settings,
            fallback: Fallback::default(),
            backends,
            cluster: None,
            acme_challenges: Arc::default(),
        }
    }

    /// This gateway as a member of a cluster: sessions it opens get ids
    /// that name it, and other instances' sessions are forwarded.
    pub fn with_cluster(mut self, cluster: Cluster) -> Self {
        self.fallback.spelling = cluster.spelling();
        self.cluster = Some(Arc::new(cluster));
        self
    }

    /// The current routing table; a request keeps the one it started with.
    pub fn table(&self) -> Arc<RouteTable> {
        self.table.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the routes (config reload): backends that stay keep their
    /// state, the new table's health checks start and the old one's stop.
    /// Open WebSockets and sessions keep the route they started with.
    pub fn replace_routes(&self, routes: Vec<Route>) {
        let mut table = RouteTable::new(routes, &self.backends);
        table.start_checks(&self.connector, &self.metrics, &self.shutdown);
        let old = std::mem::replace(
            &mut *self.table.write().unwrap_or_else(|e| e.into_inner()),
            Arc::new(table),
        );
        old.checks.cancel();
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
