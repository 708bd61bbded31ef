//! The deployment files: the compose example's and the container image's
//! configs pass `wsgate check`, the Dockerfile builds exactly as CI does in
//! two stages and runs unprivileged with a stop signal and a healthcheck,
//! `wsgate health` (the image's HEALTHCHECK) reports what the admin
//! listener says, and the compose example's page loads the fallback client
//! and, in Chromium, connects over each transport its switch names. No Docker engine runs here:
//! `scripts/docker-context-build.sh` runs the build stage itself.

use std::process::{Command, Output};

use crate::support::backend::{refused_addr, Answer, Behaviour, WsBackend};
use crate::support::client::raw_request;
use crate::support::fallback::{open, text, texts, Session};
use crate::support::TestGateway;

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

/// The Dockerfile's stages: each `FROM` line and the instructions under
/// it (continuation lines joined, comments dropped).
fn dockerfile_stages() -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile")).unwrap();
    let joined = text.replace("\\\n", " ");
    let mut stages: Vec<Vec<String>> = Vec::new();
    for line in joined.lines().map(str::trim) {
        if line.starts_with("FROM ") {
            stages.push(Vec::new());
        }
        match stages.last_mut() {
            Some(stage) if !line.is_empty() && !line.starts_with('#') => stage.push(line.into()),
            _ => {}
        }
    }
    stages
}

/// The arguments of every `instruction` line of a stage.
fn args<'a>(stage: &'a [String], instruction: &str) -> Vec<&'a str> {
    let prefix = format!("{instruction} ");
    stage
        .iter()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .collect()
}

#[test]
fn dockerfile_is_multi_stage_unprivileged_with_stop_signal_and_healthcheck() {
    let stages = dockerfile_stages();
    assert_eq!(
        stages.len(),
        2,
        "a build stage and a runtime stage: {stages:?}"
    );
    let (build, runtime) = (&stages[0], &stages[1]);
    assert!(build[0].ends_with(" AS build"), "{}", build[0]);
    assert_eq!(args(build, "RUN"), ["cargo build --release --locked"]);
    assert!(
        !runtime[0].contains("rust"),
        "a slim runtime: {}",
        runtime[0]
    );
    let from_build: Vec<_> = args(runtime, "COPY")
        .into_iter()
        .filter(|a| a.starts_with("--from=build "))
        .collect();
    assert_eq!(
        from_build,
        ["--from=build /src/target/release/wsgate /usr/local/bin/wsgate"]
    );
    let users = args(runtime, "USER");
    assert_eq!(users, ["wsgate"], "the last USER is who runs");
    assert!(runtime
        .iter()
        .any(|l| l.starts_with("RUN useradd --system --uid 10001 ")));
    assert_eq!(args(runtime, "STOPSIGNAL"), ["SIGTERM"]);
    let healthcheck = args(runtime, "HEALTHCHECK");
    assert_eq!(healthcheck.len(), 1);
    assert!(
        healthcheck[0]
            .ends_with(r#"CMD ["wsgate", "health", "--url", "http://127.0.0.1:9090/healthz"]"#),
        "{}",
        healthcheck[0]
    );
    // The probe's port is the container config's admin listener.
    let container = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/container.toml"
    ))
    .unwrap();
    assert!(
        container.contains("bind = \"127.0.0.1:9090\""),
        "{container}"
    );
}

#[tokio::test]
async fn health_probe_follows_the_admin_answer() {
    let gw = TestGateway::start(&crate::support::one_route(&["ws://127.0.0.1:1".into()], "")).await;
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

/// A file of the repository.
fn repo_file(path: &str) -> String {
    let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Serves `examples/compose/site/` as the compose file's `site` service
/// does (`/` is `index.html`).
async fn site_service() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = hyper::service::service_fn(|req: hyper::Request<_>| async move {
                let name = match req.uri().path() {
                    "/" => "index.html",
                    other => other.trim_start_matches('/'),
                };
                let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("examples/compose/site")
                    .join(name);
                let (status, body) = match std::fs::read(file) {
                    Ok(body) => (200, body),
                    Err(_) => (404, Vec::new()),
                };
                let response = hyper::Response::builder()
                    .status(status)
                    .body(http_body_util::Full::new(bytes::Bytes::from(body)));
                Ok::<_, std::convert::Infallible>(response.unwrap())
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let serve = hyper::server::conn::http1::Builder::new().serve_connection(io, service);
            tokio::spawn(serve);
        }
    });
    addr
}

/// `examples/compose/wsgate.toml` with the compose service names pointed
/// at test services and every bind on a loopback port 0. Its TLS table is
/// dropped so plain clients can speak to it (TLS has its own tests).
fn compose_config(echo: [&str; 2], site: std::net::SocketAddr) -> String {
    compose_config_on(echo, site, "127.0.0.1:0")
}

/// [`compose_config`] with the public listener on `public`.
fn compose_config_on(echo: [&str; 2], site: std::net::SocketAddr, public: &str) -> String {
    let config = repo_file("examples/compose/wsgate.toml");
    assert!(config.contains("[listeners.tls]\nself_signed = true\n"));
    let mut config = config
        .replace("[listeners.tls]\nself_signed = true\n", "")
        .replace("echo-1:9000", echo[0])
        .replace("echo-2:9000", echo[1])
        .replace("site:8000", &site.to_string());
    // Distinct loopback addresses: the config may not bind one twice.
    config = config.replace("0.0.0.0:8443", public);
    for (port, ip) in [("8080", "127.0.0.2"), ("9090", "127.0.0.3")] {
        config = config.replace(&format!("0.0.0.0:{port}"), &format!("{ip}:0"));
    }
    config
}

#[tokio::test]
async fn compose_page_loads_the_client_and_chat_falls_back() {
    let compose = repo_file("docker-compose.yml");
    assert!(
        compose.contains("- ./examples/compose/site:/srv:ro"),
        "{compose}"
    );
    let replicas = [
        WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await,
        WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await,
    ];
    let echo = [replicas[0].addr.to_string(), replicas[1].addr.to_string()];
    let config = compose_config([&echo[0], &echo[1]], site_service().await);
    let gw = TestGateway::start(&config).await;

    // The page, through the gateway from the HTTP service, as written.
    let page = raw_request(
        gw.addr(),
        "GET /?transports=longpoll HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.head);
    assert_eq!(page.body, repo_file("examples/compose/site/index.html"));
    for needle in [
        r#"<script src="/_wsgate/client.js"></script>"#,
        r#"location.host + "/chat""#,
        r#"new URLSearchParams(location.search).get("transports")"#,
        "new WsgateSocket(url, [], options)",
        "?transports=sse",
        "?transports=longpoll",
    ] {
        assert!(page.body.contains(needle), "the page lacks {needle:?}");
    }
    // The client it loads, served by wsgate on the same origin.
    let client = raw_request(
        gw.addr(),
        "GET /_wsgate/client.js HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(client.status, 200, "{}", client.head);
    assert!(client.body.contains("WsgateSocket"));

    // What the page does with ?transports=longpoll: a fallback session on
    // /chat from the page's origin, one per replica in turn.
    let origin = Some("https://localhost:8443");
    for (n, replica) in replicas.iter().enumerate() {
        let session = Session::open(gw.addr(), "/chat", origin).await;
        assert_eq!(
            session.send(1, &[text("hello, replicas")]).await.status,
            200
        );
        assert_eq!(texts(&session.collect(0, 1).await), ["hello, replicas"]);
        assert_eq!(replica.connection_count(), 1, "session {n}");
    }
    let evil = open(gw.addr(), "/chat", Some("https://evil.example"), &[]).await;
    assert_eq!(evil.status, 403, "the Origin rule applies to the fallback");
    gw.stop().await;
}

/// Drives headless Chromium (installed by `scripts/test.sh`, driven by
/// playwright-core from tests/clients) over the compose page: for each
/// query it waits for the page to show its transport, sends one message
/// with the page's form and waits for the echo in the page's log. Prints
/// one JSON array of `{query, transport}`.
const PAGE_SCRIPT: &str = r##"
import { chromium } from "playwright-core";
const base = process.argv[1];
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const results = [];
for (const query of ["", "?transports=sse", "?transports=longpoll"]) {
  const page = await browser.newPage();
  await page.goto(base + "/" + query);
  const shown = await page.waitForFunction(() => {
    const t = document.getElementById("transport").textContent;
    return t !== "\u2013" ? t : null;
  }, null, { timeout: 20000 });
  const transport = await shown.jsonValue();
  await page.fill("#text", "hi over " + transport);
  await page.click("button");
  await page.waitForFunction((t) => document.getElementById("log").textContent
    .includes("\u2190 hi over " + t), transport, { timeout: 20000 });
  results.push({ query, transport });
  await page.close();
}
await browser.close();
console.log(JSON.stringify(results));
"##;

/// Runs [`PAGE_SCRIPT`] against `base`; a missing Chromium or package is
/// a failure, not a skip.
async fn run_page_script(base: String) -> Vec<(String, String)> {
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .args(["--input-type=module", "-e", PAGE_SCRIPT, &base])
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients"))
            .output()
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("cannot run node: {e}; install with scripts/test.sh"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    let results: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let field = |r: &serde_json::Value, k: &str| r[k].as_str().unwrap().to_owned();
    results
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (field(r, "query"), field(r, "transport")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_page_in_chromium_follows_its_transports_switch() {
    let replicas = [
        WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await,
        WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await,
    ];
    let echo = [replicas[0].addr.to_string(), replicas[1].addr.to_string()];
    // The page's origin must pass the route's Origin rule, so the port is
    // chosen first and added to the allowed origins.
    let public = format!("127.0.0.1:{}", crate::support::ops::free_port().await);
    let config = compose_config_on([&echo[0], &echo[1]], site_service().await, &public)
        .replace("origins = [", &format!("origins = [\"http://{public}\", "));
    let gw = TestGateway::start(&config).await;
    let results = run_page_script(format!("http://{}", gw.addr())).await;
    let want = [
        ("", "websocket"),
        ("?transports=sse", "sse"),
        ("?transports=longpoll", "longpoll"),
    ]
    .map(|(q, t)| (q.to_owned(), t.to_owned()));
    assert_eq!(results, want);
    gw.stop().await;
}
