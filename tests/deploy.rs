//! The deployment files: the compose example's and the container image's
//! configs pass `wsgate check`, the Dockerfile builds exactly as CI does,
//! and `wsgate health` (the image's HEALTHCHECK) reports what the admin
//! listener says.

mod support;

use std::process::{Command, Output};

use support::backend::refused_addr;
use support::TestGateway;

fn wsgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wsgate"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

#[test]
fn compose_and_container_configs_check_clean() {
    for file in ["examples/compose/wsgate.toml", "config/container.toml"] {
        let out = wsgate(&["check", "--config", file]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{file}: {stderr}");
    }
}

#[test]
fn dockerfile_builds_like_ci_and_runs_unprivileged_with_a_healthcheck() {
    let dockerfile =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile")).unwrap();
    for needle in [
        "RUN cargo build --release --locked",
        "USER wsgate",
        "STOPSIGNAL SIGTERM",
        "HEALTHCHECK",
        "\"health\", \"--url\", \"http://127.0.0.1:9090/healthz\"",
        "COPY config/container.toml /etc/wsgate/wsgate.toml",
    ] {
        assert!(dockerfile.contains(needle), "Dockerfile lacks {needle:?}");
    }
}

#[tokio::test]
async fn health_probe_follows_the_admin_answer() {
    let gw = TestGateway::start(&support::one_route(&["ws://127.0.0.1:1".into()], "")).await;
    let url = format!("http://{}/healthz", gw.admin);
    let out = tokio::task::spawn_blocking(move || wsgate(&["health", "--url", &url]))
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let missing = format!("http://{}/nope", gw.admin);
    let out = tokio::task::spawn_blocking(move || wsgate(&["health", "--url", &missing]))
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    gw.stop().await;
    let down = format!("http://{}/healthz", refused_addr().await);
    let out = tokio::task::spawn_blocking(move || wsgate(&["health", "--url", &down]))
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}
