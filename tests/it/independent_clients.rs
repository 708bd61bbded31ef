//! The relay checked by client implementations nobody here wrote: Python
//! `websockets` and Node `ws` (installed by `scripts/test.sh`), through the
//! gateway to a tokio-tungstenite backend.
//!
//! Python runs through `tests/clients/python`, the one place that names the
//! interpreter (a venv, since Debian's system Python refuses `pip install`).

use std::process::Command;

use crate::support::backend::{Answer, Behaviour, WsBackend};
use crate::support::TestGateway;

/// The venv wrapper every Python test client runs through.
const PYTHON: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/python");

async fn gateway() -> (TestGateway, WsBackend) {
    let backend = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let config = format!(
        "[[listeners]]\nbind = \"127.0.0.1:0\"\n\n\
         [[routes]]\npath = \"/\"\nbackends = [\"{url}\"]\nmax_message_size = \"4MiB\"\n\n\
         [[routes]]\npath = \"/limited\"\nbackends = [\"{url}\"]\nmax_message_size = \"64KiB\"\n",
        url = backend.url()
    );
    (TestGateway::start(&config).await, backend)
}

/// Runs a client script to completion off the async runtime and asserts it
/// passed; a missing interpreter or package is a failure, not a skip.
async fn run_client(program: &str, script: &str, gw: &TestGateway) {
    let (full, limited) = (gw.ws_url("/echo"), gw.ws_url("/limited"));
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients");
    let (program, script) = (program.to_string(), format!("{dir}/{script}"));
    let output = tokio::task::spawn_blocking(move || {
        Command::new(&program)
            .arg(&script)
            .arg(full)
            .arg(limited)
            .current_dir(dir)
            .output()
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("cannot run {e}: install it with scripts/test.sh"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("all checks passed"),
        "client failed (run scripts/test.sh to install its packages)\nstdout: {stdout}\nstderr: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_websockets_client() {
    let (gw, _backend) = gateway().await;
    run_client(PYTHON, "ws_client.py", &gw).await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_ws_client() {
    let (gw, _backend) = gateway().await;
    run_client("node", "ws_client.mjs", &gw).await;
    gw.stop().await;
}
