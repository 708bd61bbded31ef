//! `examples/cluster/`: its wsgate config passes `wsgate check` (with the
//! secret file and advertised address a deployment provides), its HAProxy
//! config is valid and balances every request round-robin with no
//! stickiness, and the compose file runs three instances behind it.

use std::process::Command;

use super::SECRET;

fn repo_file(path: &str) -> String {
    let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `wsgate check` on the example config, next to a secret file, with
/// `advertise` set (or not) in the environment.
fn check_example(advertise: Option<&str>) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("wsgate.toml"),
        repo_file("examples/cluster/wsgate.toml"),
    )
    .unwrap();
    std::fs::write(dir.path().join("cluster.secret"), format!("{SECRET}\n")).unwrap();
    let mut check = Command::new(env!("CARGO_BIN_EXE_wsgate"));
    check
        .arg("check")
        .arg("--config")
        .arg(dir.path().join("wsgate.toml"));
    match advertise {
        Some(value) => check.env("WSGATE_ADVERTISE", value),
        None => check.env_remove("WSGATE_ADVERTISE"),
    };
    check.output().unwrap()
}

#[test]
fn the_example_config_checks_clean_where_it_is_deployed() {
    let out = check_example(Some("wsgate-1:9443"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = check_example(None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64));
    assert!(
        stderr.contains("environment variable WSGATE_ADVERTISE is not set"),
        "{stderr}"
    );
}

#[test]
fn the_example_balancer_spreads_every_request_with_no_stickiness() {
    let config = repo_file("examples/cluster/haproxy.cfg");
    for needle in [
        "mode http",
        "option http-server-close",
        "balance roundrobin",
        "retry-on conn-failure empty-response",
    ] {
        assert!(config.contains(needle), "haproxy.cfg lacks {needle:?}");
    }
    let directives: Vec<&str> = config
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    for sticky in [
        "stick",
        "cookie",
        "balance source",
        "balance uri",
        "hash-type",
    ] {
        let routed = directives.iter().any(|l| l.starts_with(sticky));
        assert!(!routed, "haproxy.cfg routes by {sticky:?}");
    }
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/cluster/haproxy.cfg");
    let out = Command::new("haproxy")
        .args(["-c", "-f", path])
        .output()
        .unwrap_or_else(|e| panic!("cannot run haproxy: {e}; install it with scripts/test.sh"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let compose = repo_file("examples/cluster/docker-compose.yml");
    for n in 1..=3 {
        assert!(
            compose.contains(&format!("WSGATE_ADVERTISE: \"wsgate-{n}:9443\"")),
            "wsgate-{n}"
        );
        assert!(
            config.contains(&format!("server wsgate-{n} wsgate-{n}:8080")),
            "wsgate-{n}"
        );
    }
    assert!(compose.contains("./cluster.secret:/etc/wsgate/cluster.secret:ro"));
    assert!(compose.contains("./haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro"));
}
