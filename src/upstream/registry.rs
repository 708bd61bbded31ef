//! Every backend's state, by identity (route name and backend URL), for as
//! long as the process runs.
//!
//! The gateway owns one registry and builds each route table's balancers
//! from it, so a backend that stays across a reload keeps its state: its
//! connection count and its health. The registry holds states weakly: the
//! current balancers and every open connection's lease hold them strongly,
//! so a backend a reload removed is dropped once its last connection closed
//! — and still found, with its count, if a later reload brings it back
//! before that.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use serde_json::{json, Value};
use tokio::time::Instant;

use super::balance::Balancer;
use super::state::{BackendState, StateView};
use super::{backend_label, sticky};
use crate::config::Route;
use crate::telemetry::backends::BackendSample;

/// The registry; cheap to clone, every clone is the same registry.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    inner: Arc<Mutex<Inner>>,
}

/// What the registry knows.
#[derive(Debug, Default)]
struct Inner {
    /// Every state still alive somewhere, by (route name, backend label).
    known: HashMap<(String, String), Weak<BackendState>>,
    /// The routes of the current table, in file order.
    current: Vec<RouteView>,
}

/// A route of the current table, as `/backends` shows it.
#[derive(Debug)]
struct RouteView {
    /// The route's name.
    name: String,
    /// Its `balance`.
    balance: &'static str,
    /// Whether it has `[routes.health]`.
    checked: bool,
    /// Its backends' states, each once.
    backends: Vec<Arc<BackendState>>,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The balancers of a new route table, one per route in order; each
    /// backend that was known keeps its state. The new routes become what
    /// `/backends` shows.
    pub fn balancers(&self, routes: &[Arc<Route>]) -> Vec<Balancer> {
        let mut inner = self.lock();
        inner.known.retain(|_, state| state.strong_count() > 0);
        let mut current = Vec::new();
        let balancers = routes
            .iter()
            .map(|route| {
                let states: Vec<_> = route
                    .backends
                    .iter()
                    .map(|backend| inner.state(route, backend))
                    .collect();
                let mut distinct: Vec<Arc<BackendState>> = Vec::new();
                for state in &states {
                    state.set_checked(route.health.is_some());
                    if !distinct.iter().any(|d| Arc::ptr_eq(d, state)) {
                        distinct.push(state.clone());
                    }
                }
                current.push(RouteView {
                    name: route.name.clone(),
                    balance: route.balance.name(),
                    checked: route.health.is_some(),
                    backends: distinct,
                });
                Balancer::new(route, states)
            })
            .collect();
        inner.current = current;
        balancers
    }

    /// Every live backend (retired ones too, until their last connection
    /// closed), for the metrics.
    pub fn samples(&self) -> Vec<BackendSample> {
        let now = Instant::now();
        self.lock()
            .live()
            .map(|state| {
                let view = state.view(now);
                BackendSample {
                    route: state.route.clone(),
                    backend: state.label.clone(),
                    up: view.available,
                    active: view.active as u64,
                }
            })
            .collect()
    }

    /// The `/backends` document: each route of the current table with its
    /// backends, and the backends a reload removed that still hold
    /// connections.
    pub fn snapshot(&self) -> Value {
        let now = Instant::now();
        let inner = self.lock();
        let routes: Vec<Value> = inner
            .current
            .iter()
            .map(|route| {
                let backends: Vec<Value> =
                    route.backends.iter().map(|b| describe(b, now)).collect();
                json!({
                    "route": route.name,
                    "balance": route.balance,
                    "health_checks": route.checked,
                    "backends": backends,
                })
            })
            .collect();
        let retired: Vec<Value> = inner
            .live()
            .filter(|state| !inner.is_current(state))
            .map(|state| {
                let mut value = describe(&state, now);
                value["route"] = json!(state.route);
                value
            })
            .collect();
        json!({ "routes": routes, "retired": retired })
    }
}

impl Inner {
    /// The state of `backend` on `route`: the known one, else a new one.
    fn state(&mut self, route: &Route, backend: &crate::config::Backend) -> Arc<BackendState> {
        let label = backend_label(backend);
        let key = (route.name.clone(), label.clone());
        if let Some(state) = self.known.get(&key).and_then(Weak::upgrade) {
            return state;
        }
        let token = sticky::token(&route.name, &label);
        let state = Arc::new(BackendState::new(
            &route.name,
            backend.clone(),
            label,
            token,
        ));
        self.known.insert(key, Arc::downgrade(&state));
        state
    }

    /// Every state still alive.
    fn live(&self) -> impl Iterator<Item = Arc<BackendState>> + '_ {
        self.known.values().filter_map(Weak::upgrade)
    }

    /// Whether a route of the current table has `state`.
    fn is_current(&self, state: &Arc<BackendState>) -> bool {
        self.current
            .iter()
            .any(|r| r.backends.iter().any(|b| Arc::ptr_eq(b, state)))
    }
}

/// One backend on `/backends`.
fn describe(state: &BackendState, now: Instant) -> Value {
    let StateView {
        available,
        health,
        active,
        unreachable_for,
        last_check,
    } = state.view(now);
    let last_check = last_check.map(|check| {
        json!({
            "outcome": check.outcome,
            "status": check.status,
            "took_ms": check.took.as_millis() as u64,
            "ago_ms": now.saturating_duration_since(check.at).as_millis() as u64,
        })
    });
    json!({
        "backend": state.label,
        "state": if available { "up" } else { "down" },
        "health": health.name(),
        "connections": active,
        "unreachable_for_ms": unreachable_for.map(|d| d.as_millis() as u64),
        "last_check": last_check,
    })
}
