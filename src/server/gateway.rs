//! The state every connection shares: routes, the backend connector, and
//! the handles shutdown uses to find upgraded connections.

use std::sync::{Arc, RwLock};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Route, ServerSettings};
use crate::fallback::Fallback;
use crate::limits::Limits;
use crate::ops::drain::Lifecycle;
use crate::ops::metrics::Metrics;
use crate::routing::Router;
use crate::upstream::{Balancer, Connector};

/// Shared gateway state.
#[derive(Debug)]
pub struct Gateway {
    /// The routing table; replaced whole on reload, never mutated.
    table: RwLock<Arc<RouteTable>>,
    /// Dials backends.
    pub connector: Connector,
    /// Relays of upgraded WebSockets: hyper lets go of a connection at its
    /// 101, so drain waits on these separately.
    pub relays: TaskTracker,
    /// Cancelled when the gateway drains: HTTP connections shut down
    /// gracefully and every relay sends close 1001 to both sides.
    pub shutdown: CancellationToken,
    /// Process-wide settings.
    pub settings: ServerSettings,
    /// Long-poll / SSE sessions and their counters.
    pub fallback: Fallback,
    /// Prometheus metrics; one set per process, kept across reloads.
    pub metrics: Arc<Metrics>,
    /// Readiness phase, staggered drain and the fallback sessions' tracker.
    pub lifecycle: Arc<Lifecycle>,
    /// Connection and handshake limits, with their live counts.
    pub limits: Limits,
}

/// Routes together with their round-robin positions.
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
}

impl Gateway {
    /// Gateway state for the given routes and settings.
    pub fn new(routes: Vec<Route>, settings: ServerSettings, connector: Connector) -> Self {
        Gateway {
            table: RwLock::new(Arc::new(RouteTable::new(routes))),
            metrics: connector.metrics().clone(),
            connector,
            relays: TaskTracker::new(),
            shutdown: CancellationToken::new(),
            lifecycle: Arc::default(),
            limits: Limits::new(settings.limits.clone()),
            settings,
            fallback: Fallback::default(),
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
}
