//! The admin listener: `GET /metrics` (Prometheus), `/healthz` (the process
//! answers), `/readyz` (200 only while serving; 503 before the listeners
//! are bound and while draining, so a load balancer stops sending first)
//! and `/backends` (every backend's state, connections and last check, as
//! JSON).
//! Also the client side of `/healthz`, used by `wsgate health` in a
//! container HEALTHCHECK, where no curl is installed.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::{header, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::http::body::{full, Body};
use crate::shutdown::{Phase, Shutdown};
use crate::telemetry::metrics::Metrics;
use crate::upstream::Registry;

/// Content type of the exposition `prometheus-client` writes.
const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// How long an admin client may take to send its request head.
const ADMIN_HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// How long `wsgate health` waits for the whole exchange.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// What the admin endpoints read.
#[derive(Debug, Clone)]
pub struct AdminState {
    /// The registry `/metrics` encodes.
    pub metrics: Arc<Metrics>,
    /// The phase `/readyz` reports.
    pub shutdown: Shutdown,
    /// The backends `/backends` shows.
    pub backends: Registry,
}

/// Serves the admin endpoints on `listener` until `stop` fires.
pub async fn serve(listener: TcpListener, state: AdminState, stop: CancellationToken) {
    let connections = TaskTracker::new();
    loop {
        let stream = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    continue;
                }
            },
        };
        let state = state.clone();
        connections.spawn(async move {
            let service = service_fn(move |req| {
                let response = answer(&state, &req);
                async move { Ok::<_, Infallible>(response) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(ADMIN_HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
    connections.close();
}

/// The response to one admin request.
fn answer(state: &AdminState, req: &Request<Incoming>) -> Response<Body> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n");
    }
    match req.uri().path() {
        "/metrics" => {
            let mut response = text(StatusCode::OK, state.metrics.encode());
            let value = header::HeaderValue::from_static(METRICS_CONTENT_TYPE);
            response.headers_mut().insert(header::CONTENT_TYPE, value);
            response
        }
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/backends" => {
            let mut response = text(StatusCode::OK, state.backends.snapshot().to_string());
            let value = header::HeaderValue::from_static("application/json");
            response.headers_mut().insert(header::CONTENT_TYPE, value);
            response
        }
        "/readyz" => match state.shutdown.phase() {
            Phase::Ready => text(StatusCode::OK, "ready\n"),
            Phase::Starting => text(StatusCode::SERVICE_UNAVAILABLE, "starting\n"),
            Phase::Draining => text(StatusCode::SERVICE_UNAVAILABLE, "draining\n"),
        },
        _ => text(
            StatusCode::NOT_FOUND,
            "try /metrics, /healthz, /readyz or /backends\n",
        ),
    }
}

/// A plain-text response.
fn text(status: StatusCode, body: impl Into<String>) -> Response<Body> {
    let mut response = Response::new(full(body.into()));
    *response.status_mut() = status;
    let value = header::HeaderValue::from_static("text/plain; charset=utf-8");
    response.headers_mut().insert(header::CONTENT_TYPE, value);
    response
}

/// `GET url` (plain `http://host:port/path`); `Ok` only for a 2xx answer
/// within [`PROBE_TIMEOUT`]. Used by `wsgate health`.
pub async fn probe(url: &str) -> Result<String, String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("bad URL {url:?}: {e}"))?;
    let authority = match (uri.scheme_str(), uri.authority()) {
        (Some("http"), Some(authority)) => authority.clone(),
        _ => return Err(format!("{url:?}: only http://host:port/path is supported")),
    };
    let exchange = async {
        let stream = TcpStream::connect(authority.as_str())
            .await
            .map_err(|e| format!("cannot connect to {authority}: {e}"))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let request = Request::get(path)
            .header(header::HOST, authority.as_str())
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?;
        let body = String::from_utf8_lossy(&body.to_bytes()).trim().to_owned();
        match status.is_success() {
            true => Ok(format!("{status} {body}")),
            false => Err(format!("{status} {body}")),
        }
    };
    tokio::time::timeout(PROBE_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {PROBE_TIMEOUT:?}")))
}
