//! The order in which a request tries a route's backends.
//!
//! Only backends in rotation are candidates: not unhealthy, not out after a
//! failed dial. When none is, every backend is (Envoy's "panic mode"): a
//! health check that is wrong, or a network blip that took every backend
//! out at once, must not turn into a total outage. The route's `balance`
//! then orders the candidates; the dial tries them in that order, skipping
//! those that refuse.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use http::header::{HeaderMap, HeaderValue};
use tokio::time::Instant;

use super::state::{BackendState, Lease};
use super::sticky;
use crate::config::{Balance, Route};
use crate::http::client::ClientInfo;

/// One route's balancer: its policy, its backends' states, and the
/// round-robin position.
#[derive(Debug)]
pub struct Balancer {
    /// The route's `balance`.
    policy: Balance,
    /// The route's name, for logs.
    route: String,
    /// The sticky cookie's name and path, with `balance = "cookie"`.
    cookie: Option<(String, String)>,
    /// The backends, in config order.
    backends: Vec<Arc<BackendState>>,
    /// Where the next rotation starts (round robin, and ties of least_conn).
    next: AtomicUsize,
    /// Whether every backend is out (panic mode), to log the change once.
    panicking: AtomicBool,
}

/// The backends one request tries, in order, and what the sticky cookie
/// should say afterwards.
#[derive(Debug)]
pub struct Plan {
    /// The order to try.
    order: Vec<Arc<BackendState>>,
    /// With `balance = "cookie"`: what the client sent and how to answer.
    cookie: Option<CookiePlan>,
}

/// The sticky cookie of one request.
#[derive(Debug)]
struct CookiePlan {
    /// The cookie's name.
    name: String,
    /// The route's path, the cookie's `Path`.
    path: String,
    /// Whether the client came over TLS (`Secure`).
    secure: bool,
    /// The token the client sent that names a backend of the route, if any.
    sent: Option<String>,
}

impl Balancer {
    /// A balancer for `route` over `backends` (its states, in config order).
    pub fn new(route: &Route, backends: Vec<Arc<BackendState>>) -> Self {
        let cookie = (route.balance == Balance::Cookie)
            .then(|| (route.sticky_cookie.clone(), route.path.clone()));
        Balancer {
            policy: route.balance,
            route: route.name.clone(),
            cookie,
            backends,
            next: AtomicUsize::new(0),
            panicking: AtomicBool::new(false),
        }
    }

    /// The backends' states, in config order.
    pub fn backends(&self) -> &[Arc<BackendState>] {
        &self.backends
    }

    /// The order in which this request (its headers, its client) tries the
    /// backends.
    pub fn plan(&self, headers: &HeaderMap, client: &ClientInfo) -> Plan {
        let candidates = self.candidates();
        let cookie = self.cookie.as_ref().map(|(name, path)| CookiePlan {
            sent: sticky::sent(headers, name)
                .find(|value| candidates.iter().any(|b| b.token == *value))
                .map(str::to_string),
            name: name.clone(),
            path: path.clone(),
            secure: client.tls,
        });
        let order = match self.policy {
            Balance::RoundRobin => self.rotated(candidates),
            Balance::LeastConn => self.least_conn(candidates),
            Balance::IpHash => by_score(candidates, client),
            Balance::Cookie => {
                let mut order = self.least_conn(candidates);
                let sent = cookie.as_ref().and_then(|c| c.sent.as_deref());
                if let Some(i) = order.iter().position(|b| Some(b.token.as_str()) == sent) {
                    order[..=i].rotate_right(1);
                }
                order
            }
        };
        Plan { order, cookie }
    }

    /// The backends in rotation, or all of them when none is.
    fn candidates(&self) -> Vec<Arc<BackendState>> {
        let now = Instant::now();
        let up: Vec<_> = self
            .backends
            .iter()
            .filter(|b| b.available(now))
            .cloned()
            .collect();
        let panic = up.is_empty() && !self.backends.is_empty();
        let changed = self.panicking.load(Ordering::Relaxed) != panic
            && self.panicking.swap(panic, Ordering::Relaxed) != panic;
        if changed {
            match panic {
                true => {
                    tracing::warn!(route = %self.route, "every backend is out of rotation: trying all of them (panic mode)")
                }
                false => {
                    tracing::info!(route = %self.route, "a backend is back in rotation: panic mode over")
                }
            }
        }
        if panic {
            self.backends.clone()
        } else {
            up
        }
    }

    /// `candidates`, starting one further than the previous request.
    fn rotated(&self, mut candidates: Vec<Arc<BackendState>>) -> Vec<Arc<BackendState>> {
        let n = candidates.len().max(1);
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        candidates.rotate_left(start);
        candidates
    }

    /// Fewest connections first; ties in round-robin order.
    fn least_conn(&self, candidates: Vec<Arc<BackendState>>) -> Vec<Arc<BackendState>> {
        let mut order = self.rotated(candidates);
        order.sort_by_cached_key(|b| b.active());
        order
    }
}

/// Highest rendezvous score for this client first.
fn by_score(mut candidates: Vec<Arc<BackendState>>, client: &ClientInfo) -> Vec<Arc<BackendState>> {
    let address = client.addr.ip();
    candidates.sort_by_cached_key(|b| std::cmp::Reverse(sticky::score(address, &b.label)));
    candidates
}

impl Plan {
    /// How many backends the plan tries at most.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether the plan has no backend to try.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The backends to try, in order, each leased (counted) as it is tried.
    pub fn attempts(&self) -> impl Iterator<Item = Lease> + '_ {
        self.order.iter().map(|b| Lease::new(b.clone()))
    }

    /// The `Set-Cookie` for a response served by `lease`'s backend: with
    /// `balance = "cookie"`, when the client did not already name it.
    pub fn set_cookie(&self, lease: &Lease) -> Option<HeaderValue> {
        let cookie = self.cookie.as_ref()?;
        let token = &lease.state().token;
        if cookie.sent.as_ref() == Some(token) {
            return None;
        }
        sticky::set_cookie(&cookie.name, token, &cookie.path, cookie.secure)
    }
}

#[cfg(test)]
mod tests;
