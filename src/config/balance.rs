//! How a route spreads connections over its backends (`balance`,
//! `sticky_cookie`) and how it checks them (`[routes.health]`): the
//! validated runtime types. Behaviour is in docs/balancing.md.

use std::time::Duration;

/// `balance`: which backend a new connection goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    /// Each new connection starts one backend further.
    RoundRobin,
    /// The backend with the fewest open WebSockets, fallback sessions and
    /// in-flight requests; ties in round-robin order. The default.
    LeastConn,
    /// The client address picks the backend by consistent (rendezvous)
    /// hashing, so adding a backend moves only its share of clients.
    IpHash,
    /// The gateway's cookie (`sticky_cookie`) names the backend; without a
    /// valid one, as `LeastConn`, and the cookie is set.
    Cookie,
}

impl Balance {
    /// Every value, as written in the file.
    pub const NAMES: [&'static str; 4] = ["round_robin", "least_conn", "ip_hash", "cookie"];

    /// The value as written in the file (and shown on `/backends`).
    pub fn name(self) -> &'static str {
        match self {
            Balance::RoundRobin => "round_robin",
            Balance::LeastConn => "least_conn",
            Balance::IpHash => "ip_hash",
            Balance::Cookie => "cookie",
        }
    }

    /// The policy a file value names.
    pub fn from_name(name: &str) -> Option<Balance> {
        [
            Balance::RoundRobin,
            Balance::LeastConn,
            Balance::IpHash,
            Balance::Cookie,
        ]
        .into_iter()
        .find(|b| b.name() == name)
    }
}

/// `[routes.health]`: one checker per backend asks it every `interval`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// The request target checked (origin form, query allowed).
    pub path: String,
    /// Time between the starts of two checks of one backend.
    pub interval: Duration,
    /// A check with no verdict after this long failed; never above `interval`.
    pub timeout: Duration,
    /// Failed checks in a row that take a backend out of rotation.
    pub unhealthy_after: u32,
    /// Passed checks in a row that bring it back.
    pub healthy_after: u32,
    /// What a check sends and what passes.
    pub probe: Probe,
}

/// What a health check sends, and what answer passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// A GET; passes on `expect_status`, or any 2xx or 3xx without it.
    Http {
        /// `expect_status`, when set.
        expect: Option<u16>,
    },
    /// `websocket = true`: a real WebSocket handshake; passes on a valid 101.
    WebSocket,
}
