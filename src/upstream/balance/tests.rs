//! Each policy's order, the candidates (health, failed dials, panic mode)
//! and the sticky cookie's rewrite rules.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use http::header::{self, HeaderMap, HeaderValue};
use tokio::time::Instant;

use super::{Balancer, Plan};
use crate::config::{Backend, Balance, RemoteBackend, Route, TrustedProxies};
use crate::http::client::{ClientInfo, Connection, HttpVersion};
use crate::upstream::state::{BackendState, CheckRecord, Lease, Thresholds};
use crate::upstream::Registry;

fn backend(i: u8) -> Backend {
    Backend::Remote(RemoteBackend {
        tls: false,
        host: format!("10.0.0.{i}"),
        port: 9000,
        url: format!("ws://10.0.0.{i}:9000"),
    })
}

/// A balancer for a route of `n` backends with `balance`.
fn balancer(balance: Balance, n: u8) -> Balancer {
    let route = Route {
        balance,
        backends: (1..=n).map(backend).collect(),
        ..Route::with_defaults()
    };
    Registry::default().balancers(&[Arc::new(route)]).remove(0)
}

fn client(last: u8) -> ClientInfo {
    ClientInfo::direct(
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, last)), 40000),
        false,
    )
}

/// The labels of a plan's order (taking and dropping a lease for each).
fn order(plan: &Plan) -> Vec<String> {
    plan.attempts().map(|l| l.state().label.clone()).collect()
}

fn first(balancer: &Balancer, headers: &HeaderMap, client: &ClientInfo) -> String {
    order(&balancer.plan(headers, client)).remove(0)
}

fn url(i: u8) -> String {
    format!("ws://10.0.0.{i}:9000")
}

/// Fails `state`'s checks until it is unhealthy.
fn make_unhealthy(state: &BackendState) {
    state.set_checked(true);
    let limits = Thresholds {
        unhealthy_after: 1,
        healthy_after: 1,
    };
    let record = CheckRecord {
        at: Instant::now(),
        outcome: "bad_status",
        status: Some(503),
        took: std::time::Duration::ZERO,
    };
    state.checked(record, false, limits);
}

#[test]
fn round_robin_starts_one_further_each_time_and_keeps_the_rest_as_fallbacks() {
    let b = balancer(Balance::RoundRobin, 3);
    let none = HeaderMap::new();
    let orders: Vec<_> = (0..4).map(|_| order(&b.plan(&none, &client(1)))).collect();
    assert_eq!(orders[0], [url(1), url(2), url(3)]);
    assert_eq!(orders[1], [url(2), url(3), url(1)]);
    assert_eq!(orders[2], [url(3), url(1), url(2)]);
    assert_eq!(orders[3], orders[0]);
}

#[test]
fn least_conn_picks_the_emptiest_and_breaks_ties_in_turn() {
    let b = balancer(Balance::LeastConn, 3);
    let none = HeaderMap::new();
    let held: Vec<Lease> = [0, 0, 1]
        .iter()
        .map(|&i| Lease::new(b.backends()[i].clone()))
        .collect();
    let plan = b.plan(&none, &client(1));
    assert_eq!(order(&plan), [url(3), url(2), url(1)], "0, 1 and 2 open");
    drop(held);
    let picks: Vec<_> = (0..3).map(|_| first(&b, &none, &client(1))).collect();
    let mut sorted = picks.clone();
    sorted.sort();
    assert_eq!(sorted, [url(1), url(2), url(3)], "ties rotate: {picks:?}");
}

#[test]
fn unavailable_backends_are_left_out_until_all_are_then_all_are_tried() {
    let b = balancer(Balance::RoundRobin, 3);
    let none = HeaderMap::new();
    make_unhealthy(&b.backends()[0]);
    b.backends()[1].unreachable(Instant::now());
    for _ in 0..3 {
        assert_eq!(order(&b.plan(&none, &client(1))), [url(3)]);
    }
    make_unhealthy(&b.backends()[2]);
    let all = order(&b.plan(&none, &client(1)));
    assert_eq!(all.len(), 3, "panic mode: every backend, {all:?}");
}

#[test]
fn ip_hash_is_stable_per_client_and_spreads_clients() {
    let b = balancer(Balance::IpHash, 3);
    let none = HeaderMap::new();
    let mut seen = std::collections::HashSet::new();
    for last in 1..=60 {
        let pick = first(&b, &none, &client(last));
        for _ in 0..3 {
            assert_eq!(first(&b, &none, &client(last)), pick, "stable");
        }
        seen.insert(pick);
    }
    assert_eq!(seen.len(), 3, "60 clients reach every backend");
}

/// The client as the edge established it: behind a trusted proxy (named
/// by `X-Forwarded-For`) or a balancer's PROXY header.
fn behind(peer_last: u8, proxied: Option<u8>, forwarded_for: Option<&str>) -> ClientInfo {
    let at = |last| SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, last)), 40000);
    let connection = Connection {
        peer: at(peer_last),
        proxied: proxied.map(at),
        tls: false,
        http: HttpVersion::Http1,
    };
    let mut headers = HeaderMap::new();
    if let Some(chain) = forwarded_for {
        headers.insert("x-forwarded-for", HeaderValue::from_str(chain).unwrap());
    }
    let trusted = TrustedProxies(vec!["192.0.2.200/32".parse().unwrap()]);
    ClientInfo::resolve(&connection, &headers, &trusted)
}

#[test]
fn ip_hash_follows_the_client_the_edge_established_not_the_proxy() {
    let b = balancer(Balance::IpHash, 3);
    let none = HeaderMap::new();
    let clients: Vec<u8> = (1..=60).collect();
    let homes: Vec<String> = clients
        .iter()
        .map(|&c| first(&b, &none, &client(c)))
        .collect();
    for (&c, home) in clients.iter().zip(&homes) {
        let chain = format!("192.0.2.{c}");
        let via_proxy = behind(200, None, Some(&chain));
        assert_eq!(
            &first(&b, &none, &via_proxy),
            home,
            "X-Forwarded-For from a trusted proxy"
        );
        let via_proxy_header = behind(200, Some(c), None);
        assert_eq!(&first(&b, &none, &via_proxy_header), home, "a PROXY header");
    }
    let forged: std::collections::HashSet<String> = clients
        .iter()
        .map(|c| first(&b, &none, &behind(99, None, Some(&format!("192.0.2.{c}")))))
        .collect();
    assert_eq!(
        forged.len(),
        1,
        "an untrusted peer's X-Forwarded-For moves nothing"
    );
}

#[test]
fn ip_hash_moves_a_client_of_an_unhealthy_backend_and_brings_it_back() {
    let b = balancer(Balance::IpHash, 3);
    let none = HeaderMap::new();
    let home = first(&b, &none, &client(7));
    let i = b.backends().iter().position(|s| s.label == home).unwrap();
    b.backends()[i].unreachable(Instant::now());
    let elsewhere = first(&b, &none, &client(7));
    assert_ne!(elsewhere, home);
    assert_eq!(
        first(&b, &none, &client(7)),
        elsewhere,
        "its second choice, stably"
    );
    let passed = CheckRecord {
        at: Instant::now(),
        outcome: "ok",
        status: Some(200),
        took: std::time::Duration::ZERO,
    };
    let limits = Thresholds {
        unhealthy_after: 1,
        healthy_after: 1,
    };
    b.backends()[i].checked(passed, true, limits);
    assert_eq!(
        first(&b, &none, &client(7)),
        home,
        "back home once it answers"
    );
}

fn cookie(name: &str, value: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let value = HeaderValue::from_str(&format!("other=1; {name}={value}")).unwrap();
    headers.insert(header::COOKIE, value);
    headers
}

#[test]
fn a_cookie_names_its_backend_and_is_not_set_again() {
    let b = balancer(Balance::Cookie, 3);
    let token = b.backends()[2].token.clone();
    let headers = cookie("wsgate_backend", &token);
    for _ in 0..5 {
        let plan = b.plan(&headers, &client(1));
        let lease = plan.attempts().next().unwrap();
        assert_eq!(lease.state().label, url(3));
        assert_eq!(plan.set_cookie(&lease), None);
    }
}

#[test]
fn no_cookie_a_forged_one_or_one_for_a_down_backend_is_balanced_and_rewritten() {
    let b = balancer(Balance::Cookie, 3);
    let down = b.backends()[0].token.clone();
    b.backends()[0].unreachable(Instant::now());
    for headers in [
        HeaderMap::new(),
        cookie("wsgate_backend", "forged-value-xyz"),
        cookie("wsgate_backend", &down),
    ] {
        let plan = b.plan(&headers, &client(1));
        let lease = plan.attempts().next().unwrap();
        assert_ne!(
            lease.state().label,
            url(1),
            "the down backend is not picked"
        );
        let set = plan.set_cookie(&lease).expect("the cookie is (re)written");
        let set = set.to_str().unwrap();
        assert_eq!(
            set,
            format!("wsgate_backend={}; Path=/; HttpOnly", lease.state().token)
        );
        assert!(!set.contains("10.0.0"), "never the address in clear");
    }
}

#[test]
fn a_cookie_is_secure_over_tls_and_unused_by_other_policies() {
    let b = balancer(Balance::Cookie, 2);
    let tls = ClientInfo {
        tls: true,
        ..client(1)
    };
    let plan = b.plan(&HeaderMap::new(), &tls);
    let lease = plan.attempts().next().unwrap();
    assert!(plan
        .set_cookie(&lease)
        .unwrap()
        .to_str()
        .unwrap()
        .ends_with("; Secure"));
    let plain = balancer(Balance::LeastConn, 2);
    let plan = plain.plan(&HeaderMap::new(), &client(1));
    let lease = plan.attempts().next().unwrap();
    assert_eq!(plan.set_cookie(&lease), None);
}
