//! Where sessions live between requests.
//!
//! Behind a trait because fallback sessions are the one piece of state that
//! ties a client to an instance: a later shared-state or owner-forwarding
//! implementation can replace [`LocalStore`] without touching the endpoints.

use std::collections::HashMap;
use std::fmt::Debug;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use super::protocol::SessionId;
use super::session::Session;
use crate::http::error::ProxyError;

/// The set of open sessions, with the per-client cap.
pub trait SessionStore: Send + Sync + Debug {
    /// How many sessions `client` holds on route `route`.
    fn count(&self, route: usize, client: IpAddr) -> u64;
    /// Adds a session unless its client already holds `cap` on its route.
    fn insert(&self, session: Arc<Session>, cap: u64) -> Result<(), ProxyError>;
    /// The session with this id, if open.
    fn get(&self, id: &SessionId) -> Option<Arc<Session>>;
    /// Forgets a session (idempotent).
    fn remove(&self, id: &SessionId);
    /// Number of open sessions.
    fn len(&self) -> usize;
    /// Whether no session is open.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An in-process store: one map and one counter per (route, client IP).
#[derive(Debug, Default)]
pub struct LocalStore {
    /// Both maps under one lock so the cap cannot be raced past.
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    sessions: HashMap<SessionId, Arc<Session>>,
    per_client: HashMap<(usize, IpAddr), u64>,
}

impl LocalStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl SessionStore for LocalStore {
    fn count(&self, route: usize, client: IpAddr) -> u64 {
        self.lock()
            .per_client
            .get(&(route, client))
            .copied()
            .unwrap_or(0)
    }

    fn insert(&self, session: Arc<Session>, cap: u64) -> Result<(), ProxyError> {
        let mut inner = self.lock();
        let count = inner
            .per_client
            .entry((session.route_index, session.client_ip))
            .or_insert(0);
        if *count >= cap {
            return Err(ProxyError::TooManySessions { limit: cap });
        }
        *count += 1;
        inner.sessions.insert(session.id, session);
        Ok(())
    }

    fn get(&self, id: &SessionId) -> Option<Arc<Session>> {
        self.lock().sessions.get(id).cloned()
    }

    fn remove(&self, id: &SessionId) {
        let mut inner = self.lock();
        let Some(session) = inner.sessions.remove(id) else {
            return;
        };
        let key = (session.route_index, session.client_ip);
        if let Some(count) = inner.per_client.get_mut(&key) {
            *count -= 1;
            if *count == 0 {
                inner.per_client.remove(&key);
            }
        }
    }

    fn len(&self) -> usize {
        self.lock().sessions.len()
    }
}
