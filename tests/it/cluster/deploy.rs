//! `examples/cluster/`: its wsgate config passes `wsgate check` (with the
//! secret file and advertised address a deployment provides), its HAProxy
//! config is valid and balances every request round-robin with no
//! stickiness, and the compose file runs three instances behind it. The
//! Kubernetes `[cluster]` table of docs/deploy.md passes `wsgate check`
//! too, with the Secret and `POD_IP` its Deployment provides.

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

/// Where the Deployment of docs/deploy.md mounts the cluster Secret, and
/// the key the Secret was created with.
const K8S_SECRET_FILE: &str = "/run/secrets/wsgate-cluster/secret";

#[test]
fn the_kubernetes_cluster_table_checks_clean_in_its_deployment() {
    let deploy = repo_file("docs/deploy.md");
    let table = deploy
        .split("```toml\n")
        .skip(1)
        .filter_map(|rest| rest.split("```").next())
        .find(|block| block.contains("[cluster]"))
        .expect("docs/deploy.md shows a [cluster] table");
    // The table reads the secret where the Deployment mounts the Secret
    // created beside it, and advertises the variable the downward API sets.
    for needle in [
        "--from-literal=secret=",
        "mountPath: /run/secrets/wsgate-cluster,",
        "name: POD_IP",
        "fieldPath: status.podIP",
        "containerPort: 8443",
        "containerPort: 9090",
    ] {
        assert!(deploy.contains(needle), "docs/deploy.md lacks {needle:?}");
    }
    assert!(
        table.contains(&format!("secret_file = \"{K8S_SECRET_FILE}\"")),
        "{table}"
    );
    // The table goes into a file with the pod's listener, admin and a
    // fallback route; the secret file is a temporary one here.
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    let config = format!(
        "[[listeners]]\nbind = \"0.0.0.0:8443\"\n\n[admin]\nbind = \"0.0.0.0:9090\"\n\n\
         [[routes]]\npath = \"/chat\"\nbackends = [\"builtin:echo\"]\nfallback = true\n\n{}",
        table.replace(K8S_SECRET_FILE, secret.to_str().unwrap())
    );
    let path = dir.path().join("wsgate.toml");
    std::fs::write(&path, config).unwrap();
    let check = |pod_ip: Option<&str>| {
        let mut check = Command::new(env!("CARGO_BIN_EXE_wsgate"));
        check.arg("check").arg("--config").arg(&path);
        match pod_ip {
            Some(ip) => check.env("POD_IP", ip),
            None => check.env_remove("POD_IP"),
        };
        check.output().unwrap()
    };
    let out = check(Some("10.244.1.7"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = check(None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64));
    assert!(
        stderr.contains("environment variable POD_IP is not set"),
        "{stderr}"
    );
}
