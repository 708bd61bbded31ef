//! Forwarding a client's session request to the instance that owns the
//! session, and streaming the owner's answer back.
//!
//! The body is read first (it is small: a batch of messages, bounded by
//! the largest `max_post` of any route) so it can be signed. The owner's
//! answer head must come within the longest poll hold plus
//! [`ANSWER_MARGIN`]; its body is streamed ([`super::stream`]). A
//! connection that breaks before the answer is retried once on a new one:
//! every session request is safe to repeat (acknowledgements and sequence
//! numbers make a repeated poll or send harmless). When the owner cannot
//! be reached the client is told at once: a poll or event stream gets the
//! close event 1012 ("reconnect"), a send or close a 502/504.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{request, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;

use super::auth::{self, body_hash, unix_ms, Signing};
use super::pool::SendError;
use super::stream::Bounded;
use super::Cluster;
use crate::config::{FallbackSettings, Route};
use crate::fallback::exchange::{json, read_body};
use crate::fallback::protocol::{encode_poll, SessionId};
use crate::fallback::{lost, post, Action};
use crate::http::body::{boxed, Body};
use crate::http::client::ClientInfo;
use crate::http::error::{OwnerFailure, ProxyError};

/// How much longer than the longest poll hold the owner may take to start
/// its answer.
pub const ANSWER_MARGIN: Duration = Duration::from_secs(10);

/// `max_message_size` by default (1 MiB): with the default fallback
/// settings, the POST bound of a session whose route a reload removed.
const DEFAULT_MAX_MESSAGE: u64 = 1 << 20;

/// What bounds a forwarded request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Longest wait for the owner's answer head.
    pub answer_within: Duration,
    /// Largest body forwarded (413 above it).
    pub max_body: u64,
}

impl Bounds {
    /// The bounds that fit every route (and the defaults, for sessions of
    /// routes a reload removed): the longest poll hold, the largest POST.
    pub fn for_routes(routes: &[Arc<Route>]) -> Bounds {
        let defaults = FallbackSettings::default();
        let default_post = post::post_limit(&defaults, DEFAULT_MAX_MESSAGE);
        let hold = routes.iter().map(|r| r.fallback_settings.poll_hold);
        let posts = routes
            .iter()
            .map(|r| post::post_limit(&r.fallback_settings, r.ws.max_message_size));
        Bounds {
            answer_within: hold.fold(defaults.poll_hold, Duration::max) + ANSWER_MARGIN,
            max_body: posts.fold(default_post, u64::max),
        }
    }
}

/// A request on its way to the owner of its session.
#[derive(Debug, Clone, Copy)]
pub struct Forward<'a> {
    /// The owner's advertised address.
    pub owner: &'a str,
    /// The session.
    pub session: SessionId,
    /// What the request does.
    pub action: Action,
    /// Who asked.
    pub client: ClientInfo,
    /// Its bounds.
    pub bounds: Bounds,
}

impl Cluster {
    /// Forwards `req` to the owner of its session and answers with the
    /// owner's answer, or, when the owner cannot be reached, with what the
    /// client needs to know (see the module doc). Logged and counted by
    /// owner and result.
    pub async fn forward(
        &self,
        to: Forward<'_>,
        req: Request<Incoming>,
    ) -> Result<Response<Body>, ProxyError> {
        let (parts, body) = req.into_parts();
        let body = read_body(boxed(body), &parts.headers, to.bounds.max_body).await?;
        let started = Instant::now();
        let exchanged = tokio::select! {
            exchanged = self.exchange(&to, &parts, &body) => exchanged,
            // Draining: a held poll answers now (nothing is lost, the
            // events stay with the owner until acknowledged).
            _ = self.closing.cancelled(), if to.action == Action::Poll => {
                let origin = parts.headers.get(http::header::ORIGIN);
                return Ok(json(encode_poll(&[], false), origin));
            }
        };
        let took_ms = started.elapsed().as_millis() as u64;
        let failure = match exchanged {
            Ok(response) if response.status() == StatusCode::UNAUTHORIZED => {
                tracing::warn!(owner = to.owner, "the session's owner refused our forwarded request: the instances disagree on the cluster secret or the time (see the owner's log)");
                OwnerFailure::Refused
            }
            Ok(response) => return Ok(self.answered(&to, response, took_ms)),
            Err(failure) => failure,
        };
        self.metrics.cluster_forwarded(to.owner, failure.label());
        tracing::warn!(owner = to.owner, session = %to.session, action = ?to.action, client = %to.client.addr, took_ms, failure = failure.label(), "fallback request not forwarded: its owner failed");
        lost::answer(
            to.action,
            &parts,
            lost_reason(failure),
            ProxyError::Owner(failure),
        )
    }

    /// Logs and counts the owner's answer and bounds its body.
    fn answered(
        &self,
        to: &Forward<'_>,
        response: Response<Incoming>,
        took_ms: u64,
    ) -> Response<Body> {
        let status = response.status().as_u16();
        self.metrics
            .cluster_forwarded(to.owner, &format!("{}xx", status / 100));
        tracing::info!(owner = to.owner, session = %to.session, action = ?to.action, client = %to.client.addr, status, took_ms, "fallback request forwarded to its owner");
        response.map(|body| Body::new(Bounded::new(body, self.closing.clone())))
    }

    /// Sends the signed request, retrying once on a new connection when
    /// the pooled one breaks under it.
    async fn exchange(
        &self,
        to: &Forward<'_>,
        parts: &request::Parts,
        body: &Bytes,
    ) -> Result<Response<Incoming>, OwnerFailure> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let req = self.signed(to, parts, body)?;
            let sent = tokio::time::timeout(to.bounds.answer_within, self.pool.send(to.owner, req));
            match sent.await {
                Ok(Ok(response)) => return Ok(response),
                Err(_) => return Err(OwnerFailure::Timeout),
                Ok(Err(SendError::Connect(e))) => {
                    self.metrics.cluster_connect_error(to.owner);
                    tracing::warn!(peer = to.owner, error = %e, "cannot connect to the session's owner");
                    return Err(OwnerFailure::Unreachable);
                }
                Ok(Err(SendError::Request(e))) => {
                    self.pool.evict(to.owner);
                    tracing::debug!(peer = to.owner, error = %e, attempts, "peer connection failed under a forwarded request");
                    if attempts == 2 {
                        return Err(OwnerFailure::Broken);
                    }
                }
            }
        }
    }

    /// The request for the owner: the client's method, path and query,
    /// the forwarded client headers, and the peer headers with the MAC.
    fn signed(
        &self,
        to: &Forward<'_>,
        parts: &request::Parts,
        body: &Bytes,
    ) -> Result<Request<Full<Bytes>>, OwnerFailure> {
        let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let hash = body_hash(body);
        let signing = Signing {
            method: &parts.method,
            target,
            from: &self.advertise,
            time: unix_ms(),
            client: to.client.addr.socket(),
            body: &hash,
        };
        let headers = auth::sign(&self.key, &signing, &parts.headers);
        let mut req = Request::builder()
            .method(parts.method.clone())
            .uri(format!("http://{}{target}", to.owner))
            .body(Full::new(body.clone()))
            .map_err(|_| OwnerFailure::Unreachable)?;
        *req.headers_mut() = headers;
        Ok(req)
    }
}

/// The reason of the close event a client gets when the owner failed.
fn lost_reason(failure: OwnerFailure) -> &'static str {
    match failure {
        OwnerFailure::Unreachable | OwnerFailure::Broken => "session owner unreachable; reconnect",
        OwnerFailure::Timeout => "session owner did not answer; reconnect",
        OwnerFailure::Refused => "session owner refused the request; reconnect",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::cluster::{ClusterSettings, Secret};
    use crate::telemetry::metrics::Metrics;
    use tokio_util::sync::CancellationToken;

    fn cluster(metrics: &Arc<Metrics>) -> Cluster {
        let settings = ClusterSettings {
            secret: Secret::new(&[3; 32]),
            bind: "127.0.0.1:1".parse().unwrap(),
            advertise: "127.0.0.1:1".into(),
        };
        Cluster::new(&settings, metrics.clone(), CancellationToken::new())
    }

    fn poll(owner: &str, answer_within: Duration) -> (Forward<'_>, request::Parts) {
        let to = Forward {
            owner,
            session: SessionId::random(),
            action: Action::Poll,
            client: ClientInfo::direct("192.0.2.1:1000".parse().unwrap(), false),
            bounds: Bounds {
                answer_within,
                max_body: 1024,
            },
        };
        let parts = Request::get("/_wsgate/s/x/poll?ack=0")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        (to, parts)
    }

    #[tokio::test]
    async fn an_owner_that_does_not_answer_in_time_is_a_timeout() {
        let metrics = Arc::new(Metrics::default());
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let owner = silent.local_addr().unwrap().to_string();
        let (to, parts) = poll(&owner, Duration::from_millis(200));
        let started = Instant::now();
        let failed = cluster(&metrics).exchange(&to, &parts, &Bytes::new()).await;
        assert_eq!(failed.unwrap_err(), OwnerFailure::Timeout);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn an_owner_that_refuses_connections_is_unreachable_and_counted() {
        let metrics = Arc::new(Metrics::default());
        let gone = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let owner = gone.local_addr().unwrap().to_string();
        drop(gone);
        let (to, parts) = poll(&owner, Duration::from_secs(5));
        let failed = cluster(&metrics).exchange(&to, &parts, &Bytes::new()).await;
        assert_eq!(failed.unwrap_err(), OwnerFailure::Unreachable);
        let sample = format!("wsgate_cluster_peer_connect_errors_total{{peer=\"{owner}\"}} 1");
        assert!(metrics.encode().contains(&sample), "{}", metrics.encode());
    }

    #[test]
    fn bounds_fit_the_longest_hold_and_the_largest_post() {
        let mut long = Route::with_defaults();
        long.fallback_settings.poll_hold = Duration::from_secs(50);
        let mut big = Route::with_defaults();
        big.fallback_settings.buffer = 64 << 20;
        let bounds = Bounds::for_routes(&[Arc::new(long), Arc::new(big)]);
        assert_eq!(
            bounds.answer_within,
            Duration::from_secs(50) + ANSWER_MARGIN
        );
        assert_eq!(bounds.max_body, 64 << 20);
        let none = Bounds::for_routes(&[]);
        assert_eq!(
            none.answer_within,
            FallbackSettings::default().poll_hold + ANSWER_MARGIN
        );
    }
}
