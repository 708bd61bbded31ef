use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;

fn limits(total: usize, per_ip: usize, handshakes: usize) -> Limits {
    Limits::new(LimitSettings {
        max_connections: total,
        max_connections_per_ip: per_ip,
        max_handshakes: handshakes,
        max_header_size: 64 * 1024,
        http2_max_streams: 128,
    })
}

fn v4(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
}

fn admitted(admission: Admission) -> ConnectionPermit {
    match admission {
        Admission::Admit(permit) => permit,
        other => panic!("expected admission, got {other:?}"),
    }
}

fn refused(admission: Admission) -> Refusal {
    match admission {
        Admission::Refuse(refusal, _) => refusal,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn per_ip_limit_is_429_and_frees_on_drop() {
    let limits = limits(10, 2, 0);
    let a = admitted(limits.admit(v4(1)));
    let _b = admitted(limits.admit(v4(1)));
    assert_eq!(refused(limits.admit(v4(1))), Refusal::PerIp);
    let _other = admitted(limits.admit(v4(2)));
    drop(a);
    let _c = admitted(limits.admit(v4(1)));
    assert_eq!(Refusal::PerIp.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[test]
fn total_limit_is_503_and_everything_is_given_back() {
    let limits = limits(2, 0, 0);
    let a = admitted(limits.admit(v4(1)));
    let b = admitted(limits.admit(v4(2)));
    assert_eq!(refused(limits.admit(v4(3))), Refusal::Connections);
    assert_eq!(limits.open_connections(), 2);
    drop((a, b));
    assert_eq!(limits.open_connections(), 0);
    assert_eq!(limits.tracked_addresses(), 0);
    assert_eq!(
        Refusal::Connections.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[test]
fn refusals_beyond_their_slots_are_dropped() {
    let limits = limits(1, 0, 0);
    let _held = admitted(limits.admit(v4(1)));
    let mut refusals = Vec::new();
    for _ in 0..REFUSAL_SLOTS {
        match limits.admit(v4(2)) {
            Admission::Refuse(_, permit) => refusals.push(permit),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    assert!(matches!(
        limits.admit(v4(2)),
        Admission::Drop(Refusal::Connections)
    ));
    refusals.pop();
    assert!(matches!(limits.admit(v4(2)), Admission::Refuse(..)));
}

#[test]
fn handshake_slots() {
    let limits = limits(0, 0, 1);
    let permit = limits.begin_handshake().unwrap();
    assert_eq!(limits.begin_handshake().unwrap_err(), Refusal::Handshakes);
    drop(permit);
    let _again = limits.begin_handshake().unwrap();
    assert_eq!(limits.open_handshakes(), 1);
}

#[test]
fn zero_means_unlimited() {
    let limits = limits(0, 0, 0);
    let permits: Vec<_> = (0..1000).map(|_| admitted(limits.admit(v4(1)))).collect();
    assert_eq!(limits.open_connections(), permits.len());
}

#[test]
fn ipv6_is_keyed_by_its_64_prefix_and_mapped_v4_as_v4() {
    let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
    let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
    let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
    assert_eq!(ip_key(a), ip_key(b));
    assert_ne!(ip_key(a), ip_key(c));
    let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped());
    assert_eq!(ip_key(mapped), v4(1));
    assert_eq!(
        ip_key(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        "::".parse::<IpAddr>().unwrap()
    );
}

#[test]
fn every_limit_has_its_own_label_and_is_documented() {
    let metrics_doc = include_str!("../../docs/metrics.md");
    let security_doc = include_str!("../../docs/security.md");
    let mut labels: Vec<_> = Limit::ALL.iter().map(|l| l.label()).collect();
    for label in &labels {
        let quoted = format!("limit=\"{label}\"");
        assert!(
            metrics_doc.contains(&quoted),
            "docs/metrics.md lacks {label}"
        );
        assert!(
            security_doc.contains(&quoted),
            "docs/security.md lacks {label}"
        );
    }
    labels.sort_unstable();
    labels.dedup();
    assert_eq!(labels.len(), Limit::ALL.len());
    for refusal in [Refusal::Connections, Refusal::PerIp, Refusal::Handshakes] {
        assert_eq!(refusal.reason(), refusal.limit().label());
    }
}
