//! Connection limits: the resource-exhaustion defences in front of hyper.
//!
//! Three counters bound what one process holds: all client connections,
//! connections per client address, and WebSocket upgrades in progress
//! (a handshake holds a backend dial and a pending request, the expensive
//! part). Each admission hands out a permit that gives its slot back on drop,
//! so no exit path can leak a slot.
//!
//! A connection over a limit is not dropped silently: it gets one short HTTP
//! answer (503, or 429 for the per-address limit) with `Retry-After`, served
//! by the server layer with a tight read deadline ([`REFUSAL_READ_TIMEOUT`]).
//! Beyond [`REFUSAL_SLOTS`] such answers in flight, further excess
//! connections are closed at once, so a flood cannot turn the refusals
//! themselves into the exhaustion.
//!
//! Every bound a client can run into is a [`Limit`], whose label is the one
//! name it has on `/metrics` (`wsgate_limit_refusals_total{limit}`). This
//! module only decides; whoever acts on a decision counts it there (the
//! accept loop, the request service, the connection's end), so the counts
//! live in the metrics registry and nowhere else.

pub mod rate;
pub mod websockets;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::StatusCode;
use tokio::sync::Notify;

pub use crate::config::LimitSettings;

/// How long a refused client may take to send its request head before the
/// connection is cut: an over-limit client gets no generosity.
pub const REFUSAL_READ_TIMEOUT: Duration = Duration::from_secs(2);

/// Refusal answers that may be in flight at once; excess connections beyond
/// this are closed without an answer.
pub const REFUSAL_SLOTS: usize = 256;

/// The `Retry-After` seconds sent with every refusal: long enough to spread a
/// reconnect storm, short enough that a browser retrying is not stalled.
pub const RETRY_AFTER_SECS: u64 = 1;

/// Every bound a client can run into, as counted on `/metrics`.
///
/// The label is the config key that sets the bound, so a refusal count
/// names the knob to look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `limits.max_connections` → 503.
    Connections,
    /// `limits.max_connections_per_ip` → 429.
    PerIp,
    /// `limits.max_handshakes` → 503.
    Handshakes,
    /// A route's `fallback_sessions_per_client` → 429.
    FallbackSessions,
    /// `limits.max_header_size` → 431 (hyper answers it).
    HeaderSize,
    /// `server.header_read_timeout` → closed: no first request head in time.
    HeaderReadTimeout,
    /// A TLS listener's `handshake_timeout` → closed.
    TlsHandshakeTimeout,
    /// A route's `websockets_per_client` → 429.
    WebSocketsPerClient,
}

impl Limit {
    /// Every limit, in the order of `docs/security.md`.
    pub const ALL: [Limit; 8] = [
        Limit::Connections,
        Limit::PerIp,
        Limit::Handshakes,
        Limit::FallbackSessions,
        Limit::HeaderSize,
        Limit::HeaderReadTimeout,
        Limit::TlsHandshakeTimeout,
        Limit::WebSocketsPerClient,
    ];

    /// The one name of this limit in logs and metric labels.
    pub fn label(self) -> &'static str {
        match self {
            Limit::Connections => "max_connections",
            Limit::PerIp => "max_connections_per_ip",
            Limit::Handshakes => "max_handshakes",
            Limit::FallbackSessions => "fallback_sessions_per_client",
            Limit::HeaderSize => "max_header_size",
            Limit::HeaderReadTimeout => "header_read_timeout",
            Limit::TlsHandshakeTimeout => "tls_handshake_timeout",
            Limit::WebSocketsPerClient => "websockets_per_client",
        }
    }
}

/// What a client over a limit got, the `answer` label of a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// An HTTP answer with the limit's status (503, 429 or 431).
    Answered,
    /// The connection was closed without an answer: a timeout, or an
    /// over-limit connection beyond the [`REFUSAL_SLOTS`].
    Closed,
}

impl Answer {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Answer::Answered => "answered",
            Answer::Closed => "closed",
        }
    }
}

/// Why a connection or upgrade was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `max_connections` reached → 503.
    Connections,
    /// `max_connections_per_ip` reached for this address → 429.
    PerIp,
    /// `max_handshakes` reached → 503.
    Handshakes,
}

impl Refusal {
    /// The status the client gets.
    pub fn status(self) -> StatusCode {
        match self {
            Refusal::PerIp => StatusCode::TOO_MANY_REQUESTS,
            Refusal::Connections | Refusal::Handshakes => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The limit that was reached.
    pub fn limit(self) -> Limit {
        match self {
            Refusal::Connections => Limit::Connections,
            Refusal::PerIp => Limit::PerIp,
            Refusal::Handshakes => Limit::Handshakes,
        }
    }

    /// A label for logs and metrics: the limit's.
    pub fn reason(self) -> &'static str {
        self.limit().label()
    }
}

/// The live counts behind the limits; shared by every connection.
#[derive(Debug)]
pub struct Limits {
    /// The configured bounds.
    pub settings: LimitSettings,
    state: Arc<State>,
    /// Routes' `websockets_per_client`, with their live counts.
    pub websockets: websockets::WebSocketCaps,
}

/// Slots in use; permits hold an `Arc` so they outlive nothing they need.
#[derive(Debug, Default)]
struct State {
    connections: AtomicUsize,
    handshakes: AtomicUsize,
    refusals: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    /// Woken whenever a connection slot is given back.
    released: Notify,
}

/// What the accept loop does with a new connection.
#[derive(Debug)]
pub enum Admission {
    /// Serve it; the permit is its slot.
    Admit(ConnectionPermit),
    /// Answer it with this refusal; the permit is its refusal slot.
    Refuse(Refusal, RefusalPermit),
    /// Close it at once: over this limit, and even the refusal slots are full.
    Drop(Refusal),
}

impl Limits {
    /// Limits with nothing in use.
    pub fn new(settings: LimitSettings) -> Self {
        Limits {
            settings,
            state: Arc::default(),
            websockets: Default::default(),
        }
    }

    /// Admits a connection from `ip`, or says how to refuse it.
    pub fn admit(&self, ip: IpAddr) -> Admission {
        self.admit_keyed(Some(ip))
    }

    /// Admits a connection from a trusted proxy: it counts towards
    /// `max_connections` but not towards any address's share, since it
    /// carries many clients (their addresses are known per request).
    pub fn admit_proxy(&self) -> Admission {
        self.admit_keyed(None)
    }

    fn admit_keyed(&self, ip: Option<IpAddr>) -> Admission {
        let refusal = match self.take_connection(ip) {
            Ok(permit) => return Admission::Admit(permit),
            Err(refusal) => refusal,
        };
        match take_slot(&self.state.refusals, REFUSAL_SLOTS) {
            true => Admission::Refuse(
                refusal,
                RefusalPermit {
                    state: self.state.clone(),
                },
            ),
            false => Admission::Drop(refusal),
        }
    }

    fn take_connection(&self, ip: Option<IpAddr>) -> Result<ConnectionPermit, Refusal> {
        let Some(key) = ip.map(ip_key) else {
            if !take_slot(&self.state.connections, self.settings.max_connections) {
                return Err(Refusal::Connections);
            }
            return Ok(ConnectionPermit {
                state: self.state.clone(),
                key: None,
            });
        };
        let mut per_ip = self.state.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        let held = per_ip.get(&key).copied().unwrap_or(0);
        if under(held, self.settings.max_connections_per_ip).is_none() {
            return Err(Refusal::PerIp);
        }
        if !take_slot(&self.state.connections, self.settings.max_connections) {
            return Err(Refusal::Connections);
        }
        per_ip.insert(key, held + 1);
        Ok(ConnectionPermit {
            state: self.state.clone(),
            key: Some(key),
        })
    }

    /// Takes a handshake slot for an upgrade, or refuses it (503).
    pub fn begin_handshake(&self) -> Result<HandshakePermit, Refusal> {
        if take_slot(&self.state.handshakes, self.settings.max_handshakes) {
            return Ok(HandshakePermit {
                state: self.state.clone(),
            });
        }
        Err(Refusal::Handshakes)
    }

    /// Client connections held now (admitted, not refused).
    pub fn open_connections(&self) -> usize {
        self.state.connections.load(Ordering::Acquire)
    }

    /// Resolves once no client connection is held (relays included, since
    /// a relay keeps its connection's slot): lets tests and drain tooling
    /// wait for an event instead of polling.
    pub async fn until_no_connections(&self) {
        loop {
            let released = self.state.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if self.open_connections() == 0 {
                return;
            }
            released.await;
        }
    }

    /// Upgrades in progress now.
    pub fn open_handshakes(&self) -> usize {
        self.state.handshakes.load(Ordering::Acquire)
    }

    /// Distinct client addresses holding connections now.
    pub fn tracked_addresses(&self) -> usize {
        self.state
            .per_ip
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }
}

/// `Some(())` while `held` is below `max` (zero = unlimited).
fn under(held: usize, max: usize) -> Option<()> {
    (max == 0 || held < max).then_some(())
}

/// Increments `slots` unless that would pass `max` (zero = unlimited).
fn take_slot(slots: &AtomicUsize, max: usize) -> bool {
    slots
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
            under(held, max).map(|()| held + 1)
        })
        .is_ok()
}

/// The per-address key: IPv4 as is, IPv6 by its /64 (one subscriber's
/// prefix), IPv4-mapped IPv6 as the IPv4 address.
pub fn ip_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(prefix.into())
            }
        },
    }
}

/// One admitted connection's slot, given back on drop.
#[derive(Debug)]
pub struct ConnectionPermit {
    state: Arc<State>,
    /// The address share it holds; `None` for a trusted proxy's connection.
    key: Option<IpAddr>,
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.state.connections.fetch_sub(1, Ordering::AcqRel);
        if let Some(key) = self.key {
            let mut per_ip = self.state.per_ip.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(held) = per_ip.get_mut(&key) {
                *held -= 1;
                if *held == 0 {
                    per_ip.remove(&key);
                }
            }
        }
        self.state.released.notify_waiters();
    }
}

/// One upgrade-in-progress slot, given back on drop (after the 101 or the error).
#[derive(Debug)]
pub struct HandshakePermit {
    state: Arc<State>,
}

impl Drop for HandshakePermit {
    fn drop(&mut self) {
        self.state.handshakes.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One refusal answer's slot, given back on drop.
#[derive(Debug)]
pub struct RefusalPermit {
    state: Arc<State>,
}

impl Drop for RefusalPermit {
    fn drop(&mut self) {
        self.state.refusals.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests;
