//! Active health checks, `[routes.health]`: one task per backend of a
//! route, asking it every `interval` with a GET (or a real WebSocket
//! handshake) and recording the verdict in its state.
//!
//! Reads are bounded: a check has `timeout` for everything (dial, TLS,
//! request, response head), the head is read by hyper with its size limit,
//! and the body is never read, so a slow or huge answer costs a check, not
//! the gateway. Checks dial like requests do (backend TLS included) but are
//! not counted as connections, and their failures leave the passive
//! "unreachable" mark to requests: the checks' own verdict takes the
//! backend out. The tasks stop when their route table is replaced and when
//! the drain begins (the stop token the gateway hands in).

use std::future::Future;
use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Request, StatusCode};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::handshake::{client::generate_key, derive_accept_key};
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

use super::state::{BackendState, CheckRecord, Thresholds};
use super::{http1_sender, Connector};
use crate::config::{Backend, HealthCheck, Probe, Route};
use crate::http::body::{empty, Body};
use crate::http::error::ProxyError;
use crate::telemetry::metrics::Metrics;

/// The `User-Agent` of every check, so backends can tell checks apart.
const USER_AGENT: &str = "wsgate-health-check";

/// How one check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The expected answer, with its status.
    Passed(u16),
    /// An answer with another status.
    BadStatus(u16),
    /// No verdict within `timeout`.
    Timeout,
    /// The dial was refused (or failed otherwise before TLS).
    Refused,
    /// The TLS handshake failed.
    Tls,
    /// The backend broke HTTP or the WebSocket handshake.
    Protocol,
}

impl Outcome {
    /// The `outcome` label on `/metrics` and `/backends`.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Passed(_) => "ok",
            Outcome::BadStatus(_) => "bad_status",
            Outcome::Timeout => "timeout",
            Outcome::Refused => "refused",
            Outcome::Tls => "tls",
            Outcome::Protocol => "protocol",
        }
    }

    /// The status the backend answered, if it did.
    fn status(self) -> Option<u16> {
        match self {
            Outcome::Passed(status) | Outcome::BadStatus(status) => Some(status),
            _ => None,
        }
    }
}

/// What checking one backend needs.
#[derive(Debug, Clone)]
pub struct Checker {
    /// Dials the backend as requests do.
    pub connector: Connector,
    /// The route, for its `[routes.health]`, timeouts and backend TLS.
    pub route: Arc<Route>,
    /// The backend's state, where verdicts go.
    pub state: Arc<BackendState>,
    /// Where check outcomes are counted.
    pub metrics: Arc<Metrics>,
}

impl Checker {
    /// Starts checking until `stop` fires; does nothing for a route
    /// without `[routes.health]`.
    pub fn spawn(self, stop: CancellationToken) {
        let Some(check) = self.route.health.clone() else {
            return;
        };
        tokio::spawn(async move {
            let report = |outcome: Outcome| {
                let (route, backend) = (&self.state.route, &self.state.label);
                self.metrics.health_check(route, backend, outcome.label());
            };
            run(|| self.probe(&check), &self.state, &check, report, &stop).await;
        });
    }

    /// One check, unbounded in time (the loop bounds it).
    async fn probe(&self, check: &HealthCheck) -> Outcome {
        let stream = match self.connector.dial(&self.state.backend, &self.route).await {
            Ok(stream) => stream,
            Err(ProxyError::BackendConnectTimeout { .. }) => return Outcome::Timeout,
            Err(ProxyError::BackendTls { .. }) => return Outcome::Tls,
            Err(_) => return Outcome::Refused,
        };
        let Ok(mut sender) = http1_sender::<Body, _>(stream, &self.state.label).await else {
            return Outcome::Protocol;
        };
        let websocket = check.probe == Probe::WebSocket;
        let key = websocket.then(generate_key);
        let request = request(&check.path, &self.state.backend, key.as_deref());
        let Ok(response) = sender.send_request(request).await else {
            return Outcome::Protocol;
        };
        let status = response.status();
        match (check.probe, key) {
            (Probe::Http { expect }, _) => judge(status, expect),
            (Probe::WebSocket, Some(key)) if status == StatusCode::SWITCHING_PROTOCOLS => {
                websocket_answer(response, &key).await
            }
            (Probe::WebSocket, _) => Outcome::BadStatus(status.as_u16()),
        }
    }
}

/// Checks every `interval` (the first at once) until `stop` fires, each
/// bounded by `timeout`, recording each verdict in `state` and handing
/// each outcome to `report`.
pub async fn run<P, F>(
    mut probe: P,
    state: &BackendState,
    check: &HealthCheck,
    report: impl Fn(Outcome),
    stop: &CancellationToken,
) where
    P: FnMut() -> F,
    F: Future<Output = Outcome>,
{
    let limits = Thresholds {
        unhealthy_after: check.unhealthy_after,
        healthy_after: check.healthy_after,
    };
    loop {
        let started = Instant::now();
        let outcome = tokio::select! {
            () = stop.cancelled() => return,
            outcome = tokio::time::timeout(check.timeout, probe()) => outcome.unwrap_or(Outcome::Timeout),
        };
        let record = CheckRecord {
            at: Instant::now(),
            outcome: outcome.label(),
            status: outcome.status(),
            took: started.elapsed(),
        };
        if !matches!(outcome, Outcome::Passed(_)) {
            tracing::debug!(route = %state.route, backend = %state.label, outcome = outcome.label(), status = outcome.status(), "health check failed");
        }
        state.checked(record, matches!(outcome, Outcome::Passed(_)), limits);
        report(outcome);
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep_until(started + check.interval) => {}
        }
    }
}

/// An HTTP check passes on `expect`, or on any 2xx or 3xx without it.
fn judge(status: StatusCode, expect: Option<u16>) -> Outcome {
    let passed = match expect {
        Some(code) => status.as_u16() == code,
        None => status.is_success() || status.is_redirection(),
    };
    match passed {
        true => Outcome::Passed(status.as_u16()),
        false => Outcome::BadStatus(status.as_u16()),
    }
}

/// A WebSocket check's 101: valid upgrade headers and accept key, then a
/// close frame (1001) so the backend sees an orderly goodbye.
async fn websocket_answer(response: http::Response<hyper::body::Incoming>, key: &str) -> Outcome {
    let headers = response.headers();
    let upgrade = headers.get(header::UPGRADE).map(HeaderValue::as_bytes);
    let accept = headers
        .get(header::SEC_WEBSOCKET_ACCEPT)
        .map(HeaderValue::as_bytes);
    let expected = derive_accept_key(key.as_bytes());
    let valid = upgrade.is_some_and(|u| u.eq_ignore_ascii_case(b"websocket"))
        && accept == Some(expected.as_bytes());
    if !valid {
        return Outcome::Protocol;
    }
    let Ok(upgraded) = hyper::upgrade::on(response).await else {
        return Outcome::Protocol;
    };
    let io = hyper_util::rt::TokioIo::new(upgraded);
    let mut ws = WebSocketStream::from_raw_socket(io, Role::Client, None).await;
    let _ = ws.close(None).await;
    Outcome::Passed(101)
}

/// The check's request: a GET of `path`, with the upgrade headers when
/// `key` is given.
fn request(path: &str, backend: &Backend, key: Option<&str>) -> Request<Body> {
    let mut request = Request::new(empty());
    *request.uri_mut() = path.parse().unwrap_or_default();
    let headers = request.headers_mut();
    let mut set = |name, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    };
    set(header::HOST, &authority(backend));
    set(header::USER_AGENT, USER_AGENT);
    match key {
        None => set(header::CONNECTION, "close"),
        Some(key) => {
            set(header::CONNECTION, "Upgrade");
            set(header::UPGRADE, "websocket");
            set(header::SEC_WEBSOCKET_VERSION, "13");
            set(header::SEC_WEBSOCKET_KEY, key);
        }
    }
    request
}

/// `host[:port]` of a backend, as its Host header.
fn authority(backend: &Backend) -> String {
    match backend {
        Backend::BuiltinEcho => "localhost".to_string(),
        Backend::Remote(remote) if remote.host.contains(':') => {
            format!("[{}]:{}", remote.host, remote.port)
        }
        Backend::Remote(remote) => format!("{}:{}", remote.host, remote.port),
    }
}

#[cfg(test)]
mod tests;
