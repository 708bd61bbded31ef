//! Reading the admin endpoints and waiting on observable events.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use super::client::{raw_request, RawResponse, WAIT};

/// How often [`eventually`] re-checks its condition.
const POLL: Duration = Duration::from_millis(20);

/// `GET path` on the admin listener.
pub async fn admin_get(admin: SocketAddr, path: &str) -> RawResponse {
    let request = format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n");
    raw_request(admin, &request).await
}

/// The current exposition of `/metrics`.
pub async fn scrape(admin: SocketAddr) -> String {
    let response = admin_get(admin, "/metrics").await;
    assert_eq!(response.status, 200, "{}", response.head);
    response.body
}

/// The value of the sample `name` whose labels include every `labels` pair;
/// 0 when there is none (a counter that never moved is not exported).
pub fn value(exposition: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .filter(|(series, _)| {
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            metric == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
        })
        .map(|(_, v)| v.parse::<f64>().unwrap())
        .sum()
}

/// The value of a metric right now (see [`value`]).
pub async fn metric(admin: SocketAddr, name: &str, labels: &[(&str, &str)]) -> f64 {
    value(&scrape(admin).await, name, labels)
}

/// Waits until `check` returns true, re-checking every [`POLL`]; panics
/// with `what` after [`WAIT`].
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until the metric reaches `want`.
pub async fn metric_reaches(admin: SocketAddr, name: &str, labels: &[(&str, &str)], want: f64) {
    let what = format!("{name}{labels:?} == {want}");
    eventually(&what, || async {
        metric(admin, name, labels).await == want
    })
    .await;
}
