//! The order in which a request tries a route's backends.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::config::{Backend, Route};

/// A route's round-robin position, kept beside the immutable route.
#[derive(Debug, Default)]
pub struct Balancer {
    /// Index of the backend the next request starts with.
    next: AtomicUsize,
}

impl Balancer {
    /// Backends of `route` in the order this request should try them: each
    /// request starts one further along, the rest follow as fallbacks.
    pub fn order<'r>(&self, route: &'r Route) -> impl Iterator<Item = &'r Backend> {
        let n = route.backends.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n.max(1);
        (0..n).map(move |i| &route.backends[(start + i) % n])
    }
}
