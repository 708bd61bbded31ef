//! `wsgate proxy --from ADDR --to URL`: a gateway without a config file,
//! driven through the real binary. The flags build config text that goes
//! through the file's own validation, so `--print-config` prints what runs.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::support::backend::{Answer, Behaviour, WsBackend};
use crate::support::client::{connect, ws_request, WAIT};
use crate::support::ops::{eventually, free_port};

fn wsgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wsgate"))
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn print_config_prints_a_file_that_checks_and_means_the_flags() {
    let out = wsgate(&[
        "proxy",
        "--from",
        "127.0.0.1:8090",
        "--to",
        ":9000",
        "--to",
        "wss://10.0.0.6:9443",
        "--fallback",
        "--origin",
        "https://app.example",
        "--origin",
        "https://*.example.org",
        "--tls",
        "self-signed",
        "--print-config",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    let first = printed.lines().next().unwrap();
    assert!(
        first.starts_with("# Built by: wsgate proxy --from 127.0.0.1:8090"),
        "{first}"
    );
    assert!(first.ends_with("--tls self-signed"), "{first}");
    let config = wsgate::config::Config::parse(&printed, Path::new(".")).unwrap();
    assert_eq!(config.listeners.len(), 1);
    assert_eq!(config.listeners[0].bind, "127.0.0.1:8090".parse().unwrap());
    assert!(config.listeners[0].tls.as_ref().unwrap().self_signed);
    let route = &config.routes[0];
    assert_eq!(route.path, "/");
    assert!(route.fallback);
    let backends: Vec<String> = route
        .backends
        .iter()
        .map(wsgate::upstream::backend_label)
        .collect();
    assert_eq!(backends, ["ws://127.0.0.1:9000", "wss://10.0.0.6:9443"]);
    assert!(matches!(&route.origins, wsgate::config::OriginPolicy::List(l) if l.len() == 2));
    // Saved as a file, it passes `check` as is.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wsgate.toml");
    std::fs::write(&file, &printed).unwrap();
    let checked = wsgate(&["check", "--config", file.to_str().unwrap()]);
    assert!(checked.status.success(), "{}", text(&checked.stderr));
}

#[test]
fn bad_flags_are_reported_in_the_flags_words() {
    let cases: &[(&[&str], &str)] = &[
        (&["--from", ":8080", "--to", "ftp://x"], "--to #1: "),
        (
            &["--from", "nowhere", "--to", ":9000"],
            "--from: invalid socket address",
        ),
        (
            &[
                "--from",
                ":8080",
                "--to",
                ":9000",
                "--origin",
                "app.example",
            ],
            "--origin #1: ",
        ),
        (
            &["--from", ":8080", "--to", ":9000", "--tls", "acme:"],
            "needs a domain",
        ),
        (
            &[
                "--from",
                ":8080",
                "--to",
                ":9000",
                "--tls",
                "acme:not a name",
            ],
            "--tls",
        ),
        (
            &["--from", ":8080", "--to", ":9000", "--tls", "yes"],
            "expected \"self-signed\"",
        ),
    ];
    for (args, want) in cases {
        let mut all = vec!["proxy"];
        all.extend_from_slice(args);
        all.push("--print-config");
        let out = wsgate(&all);
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        assert!(text(&out.stdout).is_empty(), "{args:?} printed a config");
        let stderr = text(&out.stderr);
        assert!(stderr.contains(want), "{args:?}: want {want:?} in {stderr}");
    }
    let out = wsgate(&["--config", "x.toml", "proxy", "--from", ":1", "--to", ":2"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(text(&out.stderr).contains("drop --config"));
}

#[test]
fn tls_acme_asks_lets_encrypt_for_the_domains_with_a_writable_cache() {
    let home = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wsgate"))
        .args(["proxy", "--from", ":8443", "--to", ":9000"])
        .args([
            "--tls",
            "acme:chat.example.com,www.example.com",
            "--print-config",
        ])
        .env("HOME", home.path())
        .env_remove("XDG_DATA_HOME")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let config: toml::Value = text(&out.stdout).parse().unwrap();
    let acme = &config["listeners"][0]["tls"]["acme"];
    assert_eq!(
        acme["domains"],
        toml::Value::Array(vec!["chat.example.com".into(), "www.example.com".into()])
    );
    // Root keeps the packaged service's cache; anyone else their own.
    let cache = acme["cache"].as_str().unwrap();
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    match root {
        true => assert_eq!(cache, "/var/lib/wsgate/acme"),
        false => assert!(cache.starts_with(home.path().to_str().unwrap()), "{cache}"),
    }
}

/// The binary running `wsgate proxy`, killed on drop.
struct Proxy(std::process::Child);

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_relays_to_several_backends_in_turn() {
    let a = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let b = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port().await));
    let child = Command::new(env!("CARGO_BIN_EXE_wsgate"))
        .args(["proxy", "--from", &addr.to_string()])
        .args(["--to", &a.url(), "--to", &b.url()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _proxy = Proxy(child);
    eventually("wsgate proxy to listen", || async {
        tokio::net::TcpStream::connect(addr).await.is_ok()
    })
    .await;
    // No Origin: a non-browser client, allowed by default.
    for i in 0..2 {
        let url = format!("ws://{addr}/room");
        let (mut ws, _) = connect(ws_request(&url, &[])).await.unwrap();
        let message = Message::Text(format!("hello {i}"));
        ws.send(message.clone()).await.unwrap();
        let echoed = tokio::time::timeout(WAIT, ws.next()).await.unwrap();
        assert_eq!(echoed.unwrap().unwrap(), message);
    }
    assert_eq!((a.connection_count(), b.connection_count()), (1, 1));
}

/// `--tls self-signed --fallback --origin`, run for real: the listener
/// speaks TLS with a certificate made at start, the origin list admits one
/// page and refuses another, and the fallback answers its open over TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_with_self_signed_tls_fallback_and_origins_serves_them() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let backend = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port().await));
    let child = Command::new(env!("CARGO_BIN_EXE_wsgate"))
        .args(["proxy", "--from", &addr.to_string(), "--to", &backend.url()])
        .args(["--tls", "self-signed", "--fallback"])
        .args(["--origin", "https://app.example"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _proxy = Proxy(child);
    let any = crate::acme::any_certificate();
    let tls = || crate::support::tls::tls_connect(addr, "localhost", any.clone());
    eventually("wsgate proxy to serve TLS", || async {
        tls().await.is_ok()
    })
    .await;

    let url = format!("wss://{addr}/room");
    let page = [("origin", "https://app.example")];
    let stream = tls().await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(ws_request(&url, &page), stream)
        .await
        .unwrap();
    let message = Message::Text("over self-signed TLS".into());
    ws.send(message.clone()).await.unwrap();
    let echoed = tokio::time::timeout(WAIT, ws.next()).await.unwrap();
    assert_eq!(echoed.unwrap().unwrap(), message);

    let other = [("origin", "https://evil.example")];
    let stream = tls().await.unwrap();
    let refused = tokio_tungstenite::client_async(ws_request(&url, &other), stream).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403)
        }
        other => panic!("an origin not listed is refused: {other:?}"),
    }

    let mut stream = tls().await.unwrap();
    let open = "POST /_wsgate/open?path=/room HTTP/1.1\r\nHost: localhost\r\n\
                Origin: https://app.example\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    stream.write_all(open.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(WAIT, stream.read_to_string(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains("\"session\""),
        "the open names its session: {answer}"
    );
}
