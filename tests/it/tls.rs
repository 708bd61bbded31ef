//! TLS end to end with real rustls clients: SNI selection, hot reload,
//! client certificates, backend TLS, redirects, and clients that never
//! finish (or never start) a proper handshake.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rustls::ClientConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::support::backend::{Answer, Behaviour, WsBackend};
use crate::support::client::{raw_request, upgrade_request, ws_request, WAIT};
use crate::support::tls::{served_leaf, tls_connect, wss_echo_backend, Issued, Pki};
use crate::support::TestGateway;

type Wss = WebSocketStream<TlsStream<TcpStream>>;

/// A TLS listener serving `certs`, with extra `[listeners.tls]` keys.
fn tls_listener(certs: &[&Issued], extra: &str) -> String {
    let pairs: Vec<String> = certs
        .iter()
        .map(|c| format!("{{ cert = {:?}, key = {:?} }}", c.cert, c.key))
        .collect();
    format!(
        "[[listeners]]\nbind = \"127.0.0.1:0\"\n[listeners.tls]\ncerts = [{}]\n{extra}\n",
        pairs.join(", ")
    )
}

/// A whole config: the given listeners and one catch-all route.
fn config(listeners: &str, backend: &str, route_extra: &str) -> String {
    format!(
        "[server]\nshutdown_grace = \"5s\"\n\n{listeners}\n[[routes]]\npath = \"/\"\nbackends = [{backend:?}]\n{route_extra}\n"
    )
}

/// Opens `wss://{name}{path}` on `addr` with SNI `name`.
async fn wss(
    addr: std::net::SocketAddr,
    name: &str,
    client: Arc<ClientConfig>,
    headers: &[(&str, &str)],
) -> Result<Wss, String> {
    let tls = tls_connect(addr, name, client)
        .await
        .map_err(|e| e.to_string())?;
    let request = ws_request(&format!("wss://{name}/echo"), headers);
    let handshake = tokio_tungstenite::client_async(request, tls);
    match tokio::time::timeout(WAIT, handshake).await {
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer within the wait bound".into()),
    }
}

/// Sends a text message and expects it back.
async fn assert_echo(ws: &mut Wss, text: &str) {
    ws.send(Message::text(text)).await.unwrap();
    let reply = tokio::time::timeout(WAIT, ws.next())
        .await
        .expect("echo in time");
    assert_eq!(reply.unwrap().unwrap(), Message::text(text));
}

#[tokio::test]
async fn sni_picks_the_certificate_covering_the_name_else_the_first() {
    let pki = Pki::new("sni");
    let a = pki.server("a", &["a.example.test"]);
    let b = pki.server("b", &["*.b.example.test"]);
    let backend = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let gw = TestGateway::start(&config(&tls_listener(&[&a, &b], ""), &backend.url(), "")).await;
    let client = pki.client_config(None);
    let cases = [
        ("a.example.test", &a),
        ("x.b.example.test", &b),
        ("X.B.Example.Test", &b),
        ("deep.x.b.example.test", &a), // a wildcard covers one label only
        ("b.example.test", &a),
        ("unknown.example.test", &a),
    ];
    for (name, expected) in cases {
        let stream = tokio_rustls::TlsConnector::from(insecure(&client))
            .connect(
                rustls::pki_types::ServerName::try_from(name.to_string()).unwrap(),
                TcpStream::connect(gw.addr()).await.unwrap(),
            )
            .await
            .unwrap();
        assert!(
            served_leaf(&stream) == expected.der,
            "{name}: wrong certificate"
        );
    }
    let mut ws = wss(gw.addr(), "x.b.example.test", client, &[])
        .await
        .unwrap();
    assert_echo(&mut ws, "over tls").await;
    let (_, headers) = backend.request(0);
    assert_eq!(headers["x-forwarded-proto"], "https");
    drop(ws); // closing first keeps stop() from waiting on a close reply
    gw.stop().await;
}

#[tokio::test]
async fn reload_serves_new_certificate_and_keeps_open_connections() {
    let pki = Pki::new("reload");
    let old = pki.server("site", &["site.test"]);
    let backend = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let listener = tls_listener(&[&old], "watch_interval = \"50ms\"");
    let gw = TestGateway::start(&config(&listener, &backend.url(), "")).await;
    let client = pki.client_config(None);
    let mut open = wss(gw.addr(), "site.test", client.clone(), &[])
        .await
        .unwrap();
    assert_echo(&mut open, "before").await;

    let new = pki.server("next", &["site.test"]);
    // A half-done renewal (new certificate, old key) must not be served...
    std::fs::copy(&new.cert, &old.cert).unwrap();
    // ...and once the key follows, new handshakes get the new certificate.
    std::fs::copy(&new.key, &old.key).unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let stream = tls_connect(gw.addr(), "site.test", client.clone())
            .await
            .unwrap();
        let leaf = served_leaf(&stream);
        if leaf == new.der {
            break;
        }
        assert!(
            leaf == old.der,
            "served neither the old nor the new certificate"
        );
        assert!(
            Instant::now() < deadline,
            "new certificate not served in time"
        );
        tokio::time::sleep(Duration::from_millis(20)).await; // poll interval, bounded above
    }
    assert_echo(&mut open, "after reload, same connection").await;
    let mut fresh = wss(gw.addr(), "site.test", client, &[]).await.unwrap();
    assert_echo(&mut fresh, "new connection").await;
    drop((open, fresh)); // closing first keeps stop() from waiting on a close reply
    gw.stop().await;
}

#[tokio::test]
async fn mtls_listener_refuses_anonymous_clients_and_forwards_the_subject() {
    let pki = Pki::new("mtls");
    let site = pki.server("site", &["site.test"]);
    let alice = pki.client("alice", "alice");
    let other = Pki::new("other");
    let stranger = other.client("mallory", "mallory");
    let backend = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let extra = format!(
        "client_ca = {:?}\nclient_subject_header = \"X-Client-Subject\"",
        pki.ca_path
    );
    let gw = TestGateway::start(&config(&tls_listener(&[&site], &extra), &backend.url(), "")).await;

    let anonymous = wss(gw.addr(), "site.test", pki.client_config(None), &[]).await;
    assert!(anonymous.is_err(), "no client certificate must be refused");
    let untrusted = wss(
        gw.addr(),
        "site.test",
        pki.client_config(Some(&stranger)),
        &[],
    )
    .await;
    assert!(
        untrusted.is_err(),
        "a certificate from another CA must be refused"
    );
    assert_eq!(backend.connection_count(), 0);

    let forged = [("X-Client-Subject", "CN=admin")];
    let mut ws = wss(
        gw.addr(),
        "site.test",
        pki.client_config(Some(&alice)),
        &forged,
    )
    .await
    .unwrap();
    assert_echo(&mut ws, "hello").await;
    let (_, headers) = backend.request(0);
    let subjects: Vec<_> = headers.get_all("x-client-subject").iter().collect();
    assert_eq!(
        subjects,
        ["CN=alice"],
        "the verified subject replaces the client's copy"
    );
    drop(ws); // closing first keeps stop() from waiting on a close reply
    gw.stop().await;
}

#[tokio::test]
async fn wss_backend_verified_against_route_ca_with_sni_override() {
    let pki = Pki::new("backend");
    let by_ip = pki.server("by-ip", &["127.0.0.1"]);
    let by_name = pki.server("by-name", &["backend.internal"]);
    for (cert, sni) in [
        (&by_ip, ""),
        (&by_name, "backend_sni = \"backend.internal\""),
    ] {
        let addr = wss_echo_backend(cert).await;
        let route = format!("backend_ca = {:?}\n{sni}", pki.ca_path);
        let listener = "[[listeners]]\nbind = \"127.0.0.1:0\"\n";
        let gw = TestGateway::start(&config(listener, &format!("wss://{addr}"), &route)).await;
        let (mut ws, _) = crate::support::client::connect(ws_request(&gw.ws_url("/"), &[]))
            .await
            .unwrap();
        ws.send(Message::text("through tls")).await.unwrap();
        let reply = tokio::time::timeout(WAIT, ws.next()).await.unwrap();
        assert_eq!(
            reply.unwrap().unwrap(),
            Message::text("through tls"),
            "{sni}"
        );
        drop(ws); // closing first keeps stop() from waiting on a close reply
        gw.stop().await;
    }
}

#[tokio::test]
async fn backend_failing_verification_is_502_before_any_101() {
    let pki = Pki::new("backend");
    let wrong_ca = Pki::new("unrelated");
    let cert = pki.server("b", &["127.0.0.1"]);
    let addr = wss_echo_backend(&cert).await;
    let listener = "[[listeners]]\nbind = \"127.0.0.1:0\"\n";
    for route in [
        format!("backend_ca = {:?}", wrong_ca.ca_path), // untrusted issuer
        format!(
            "backend_ca = {:?}\nbackend_sni = \"elsewhere.test\"",
            pki.ca_path
        ), // wrong name
        String::new(),                                  // public roots only
    ] {
        let gw = TestGateway::start(&config(listener, &format!("wss://{addr}"), &route)).await;
        let res = raw_request(gw.addr(), &upgrade_request("/", &[])).await;
        assert_eq!(res.status, 502, "{route}");
        gw.stop().await;
    }
}

#[tokio::test]
async fn plain_listener_redirects_to_https() {
    let listener = "[[listeners]]\nbind = \"127.0.0.1:0\"\nredirect_https = 8443\n";
    let gw = TestGateway::start(&config(listener, "builtin:echo", "")).await;
    let get = raw_request(
        gw.addr(),
        "GET /a/b?x=1 HTTP/1.1\r\nHost: chat.example.com:8080\r\n\r\n",
    )
    .await;
    assert_eq!(get.status, 301);
    assert_eq!(
        get.header("location").unwrap(),
        "https://chat.example.com:8443/a/b?x=1"
    );
    let head = raw_request(
        gw.addr(),
        "HEAD /a?b HTTP/1.1\r\nHost: chat.example.com\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(head.status, 301, "HEAD keeps its method, so 301 like GET");
    assert_eq!(
        head.header("location").unwrap(),
        "https://chat.example.com:8443/a?b"
    );
    let post = raw_request(
        gw.addr(),
        "POST /form HTTP/1.1\r\nHost: chat.example.com\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    assert_eq!(post.status, 308);
    assert_eq!(
        post.header("location").unwrap(),
        "https://chat.example.com:8443/form"
    );
    gw.stop().await;
}

/// Reads until the gateway closes the connection; returns what arrived.
async fn until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut seen = Vec::new();
    let read = tokio::time::timeout(WAIT, async {
        let mut chunk = [0u8; 1024];
        while let Ok(n) = stream.read(&mut chunk).await {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&chunk[..n]);
        }
    });
    read.await
        .expect("the gateway closes the connection within the bound");
    seen
}

#[tokio::test]
async fn broken_handshakes_are_closed_within_bounds() {
    let pki = Pki::new("bad");
    let site = pki.server("site", &["site.test"]);
    let backend = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let listener = tls_listener(&[&site], "handshake_timeout = \"300ms\"");
    let gw = TestGateway::start(&config(&listener, &backend.url(), "")).await;

    let started = Instant::now();
    let mut silent = TcpStream::connect(gw.addr()).await.unwrap();
    assert!(until_closed(&mut silent).await.is_empty());
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(300), "cut before the timeout");
    assert!(
        took < Duration::from_secs(3),
        "not cut by the 300 ms setting"
    );
    gw.wait_quiet().await;

    let mut garbage = TcpStream::connect(gw.addr()).await.unwrap();
    garbage
        .write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5])
        .await
        .unwrap();
    let answer = until_closed(&mut garbage).await;
    assert!(
        answer.is_empty() || answer[0] == 0x15,
        "an alert or nothing: {answer:?}"
    );
    gw.wait_quiet().await;

    let mut plain = TcpStream::connect(gw.addr()).await.unwrap();
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: site.test\r\n\r\n")
        .await
        .unwrap();
    // Plain HTTP gets a plain 400 naming https:// (issue 15), then the close.
    let answer = String::from_utf8_lossy(&until_closed(&mut plain).await).into_owned();
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{answer}"
    );
    assert!(answer.ends_with("use https://site.test/\n"), "{answer}");
    gw.wait_quiet().await;

    assert_eq!(backend.connection_count(), 0);
    // The connections above left nothing behind: the gateway still serves.
    let mut ws = wss(gw.addr(), "site.test", pki.client_config(None), &[])
        .await
        .unwrap();
    assert_echo(&mut ws, "still fine").await;
    drop(ws); // closing first keeps stop() from waiting on a close reply
    gw.stop().await;
}

/// A copy of `config` that accepts any server certificate: the SNI test
/// compares the served leaf itself, including names the leaf does not cover.
fn insecure(config: &Arc<ClientConfig>) -> Arc<ClientConfig> {
    let mut config = (**config).clone();
    config
        .dangerous()
        .set_certificate_verifier(Arc::new(crate::support::tls::AcceptAny));
    Arc::new(config)
}

/// Asserts that new handshakes are served `leaf`.
async fn assert_serves(gw: &TestGateway, client: &Arc<ClientConfig>, leaf: &Issued, why: &str) {
    let stream = tls_connect(gw.addr(), "site.test", client.clone())
        .await
        .unwrap();
    assert!(served_leaf(&stream) == leaf.der, "{why}");
}

#[tokio::test]
async fn broken_reload_keeps_the_old_certificate_until_the_key_is_fixed() {
    let logs = crate::support::logs::capture();
    let pki = Pki::new("broken-reload");
    let old = pki.server("site", &["site.test"]);
    let stranger = pki.server("stranger", &["site.test"]);
    let backend = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let listener = tls_listener(&[&old], "watch_interval = \"50ms\"");
    let gw = TestGateway::start(&config(&listener, &backend.url(), "")).await;
    let client = pki.client_config(None);
    let mut open = wss(gw.addr(), "site.test", client.clone(), &[])
        .await
        .unwrap();
    assert_echo(&mut open, "before").await;

    let key = old.key.display().to_string();
    let broken: [(&[u8], &str); 2] = [
        (&std::fs::read(&stranger.key).unwrap(), "does not belong"),
        (b"garbage, not PEM", "no PEM private key"),
    ];
    for (contents, reason) in broken {
        std::fs::write(&old.key, contents).unwrap();
        // The watcher has looked at the broken key once it said why not.
        let refused = ["certificate reload failed", key.as_str(), reason];
        logs.wait_for_line(&refused).await;
        assert_serves(&gw, &client, &old, reason).await;
        assert_echo(&mut open, reason).await;
    }

    let new = pki.server("next", &["site.test"]);
    std::fs::copy(&new.cert, &old.cert).unwrap();
    std::fs::copy(&new.key, &old.key).unwrap();
    crate::support::ops::eventually("the fixed key to be served", || async {
        let stream = tls_connect(gw.addr(), "site.test", client.clone()).await;
        served_leaf(&stream.unwrap()) == new.der
    })
    .await;
    assert_echo(&mut open, "after the fix, same connection").await;
    drop(open); // closing first keeps stop() from waiting on a close reply
    gw.stop().await;
}

/// Kills the binary if the test fails before it is done with it.
struct Reaper(std::process::Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the `wsgate` binary on `config` (logging to `log`) and returns it
/// with the address its first listener bound, read from its "listening"
/// line: the config binds `127.0.0.1:0`, so no port is guessed.
async fn start_binary(config: &std::path::Path, log: &std::path::Path) -> (Reaper, SocketAddr) {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_wsgate"))
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let mut addr = None;
    crate::support::ops::eventually("the binary to listen", || {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        addr = text.lines().find_map(|l| {
            let rest = l.split_once("listening addr=")?.1;
            rest.split_whitespace().next()?.parse().ok()
        });
        std::future::ready(addr.is_some())
    })
    .await;
    (Reaper(child), addr.unwrap())
}

#[tokio::test]
async fn sighup_reloads_certificates_when_file_watching_is_off() {
    let pki = Pki::new("sighup");
    let old = pki.server("site", &["site.test"]);
    let backend = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let toml = config(
        &tls_listener(&[&old], "watch_interval = \"0s\""),
        &backend.url(),
        "",
    );
    let path = pki.dir.path().join("wsgate.toml");
    std::fs::write(&path, toml).unwrap();
    let (child, addr) = start_binary(&path, &pki.dir.path().join("stderr.log")).await;
    let client = pki.client_config(None);
    let mut open = wss(addr, "site.test", client.clone(), &[]).await.unwrap();
    assert_echo(&mut open, "before").await;

    let new = pki.server("next", &["site.test"]);
    std::fs::copy(&new.cert, &old.cert).unwrap();
    std::fs::copy(&new.key, &old.key).unwrap();
    let stream = tls_connect(addr, "site.test", client.clone())
        .await
        .unwrap();
    assert!(served_leaf(&stream) == old.der, "no reload without SIGHUP");
    let pid = child.0.id().to_string();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status();
    assert!(hup.unwrap().success());
    crate::support::ops::eventually("the new certificate after SIGHUP", || async {
        let stream = tls_connect(addr, "site.test", client.clone()).await;
        served_leaf(&stream.unwrap()) == new.der
    })
    .await;
    assert_echo(&mut open, "after SIGHUP, same connection").await;
    let mut fresh = wss(addr, "site.test", client, &[]).await.unwrap();
    assert_echo(&mut fresh, "new connection").await;
}

#[tokio::test]
async fn backend_requiring_mtls_gets_the_route_client_certificate() {
    let logs = crate::support::logs::capture();
    let pki = Pki::new("backend-mtls");
    let server = pki.server("b", &["127.0.0.1"]);
    let gateway_id = pki.client("gw", "wsgate");
    let addr = crate::support::tls::wss_echo_backend_requiring_client(&server, &pki.ca_path).await;
    let backend = format!("wss://{addr}");
    let listener = "[[listeners]]\nbind = \"127.0.0.1:0\"\n";
    let ca = format!("backend_ca = {:?}", pki.ca_path);

    let gw = TestGateway::start(&config(listener, &backend, &ca)).await;
    let res = raw_request(gw.addr(), &upgrade_request("/", &[])).await;
    assert_eq!(res.status, 502, "no client certificate: never a 101");
    // TLS 1.3: the backend's verdict on our (missing) certificate comes
    // after the handshake, as an alert the gateway logs with its reason.
    let why = [
        backend.as_str(),
        "reason=\"backend_tls\"",
        "CertificateRequired",
    ];
    logs.wait_for_line(&why).await;
    let rejected = ["websocket handshake rejected", "reason=\"backend_tls\""];
    logs.wait_for_line(&rejected).await;
    gw.stop().await;

    let with_cert = format!(
        "{ca}\nbackend_client_cert = {{ cert = {:?}, key = {:?} }}",
        gateway_id.cert, gateway_id.key
    );
    let gw = TestGateway::start(&config(listener, &backend, &with_cert)).await;
    let (mut ws, _) = crate::support::client::connect(ws_request(&gw.ws_url("/"), &[]))
        .await
        .unwrap();
    ws.send(Message::text("mutual")).await.unwrap();
    let reply = tokio::time::timeout(WAIT, ws.next()).await.unwrap();
    assert_eq!(reply.unwrap().unwrap(), Message::text("mutual"));
    drop(ws); // closing first keeps stop() from waiting on a close reply
    gw.stop().await;
}

#[tokio::test]
async fn https_backend_answers_plain_http_requests() {
    let pki = Pki::new("https-backend");
    let server = pki.server("b", &["127.0.0.1"]);
    let addr = crate::support::tls::https_echo_backend(&server).await;
    let route = format!("backend_ca = {:?}", pki.ca_path);
    let listener = "[[listeners]]\nbind = \"127.0.0.1:0\"\n";
    let gw = TestGateway::start(&config(listener, &format!("https://{addr}"), &route)).await;
    let res = raw_request(
        gw.addr(),
        "GET /items?x=1 HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.head);
    assert_eq!(res.header("x-backend").as_deref(), Some("http-echo"));
    assert!(res.body.starts_with("GET /items?x=1\n"), "{}", res.body);
    assert!(
        res.body.contains("x-forwarded-proto: http\n"),
        "{}",
        res.body
    );
    gw.stop().await;
}

/// A TLS listener for `site.test` in front of an echo backend.
async fn site_gateway(pki: &Pki) -> (TestGateway, Issued) {
    let site = pki.server("site", &["site.test"]);
    let backend = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let gw = TestGateway::start(&config(&tls_listener(&[&site], ""), &backend.url(), "")).await;
    (gw, site)
}

#[tokio::test]
async fn tls12_and_tls13_clients_get_their_version_and_http11_alpn() {
    use rustls::version::{TLS12, TLS13};
    use rustls::ProtocolVersion;
    let pki = Pki::new("versions");
    let (gw, _) = site_gateway(&pki).await;
    let cases = [
        (vec![&TLS12], ProtocolVersion::TLSv1_2),
        (vec![&TLS13], ProtocolVersion::TLSv1_3),
        (vec![&TLS13, &TLS12], ProtocolVersion::TLSv1_3),
    ];
    for (versions, expected) in cases {
        let client = pki.client_config_versions(&versions);
        let mut stream = tls_connect(gw.addr(), "site.test", client).await.unwrap();
        let session = stream.get_ref().1;
        assert_eq!(session.protocol_version(), Some(expected));
        assert_eq!(session.alpn_protocol(), Some(&b"http/1.1"[..]));
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut answer)).await;
        assert!(answer.starts_with(b"HTTP/1.1 "), "{expected:?}: served");
    }
    gw.stop().await;
}

#[tokio::test]
async fn tls10_and_tls11_client_hellos_get_an_alert_and_no_handshake() {
    let pki = Pki::new("legacy");
    let (gw, _) = site_gateway(&pki).await;
    for minor in [1, 2] {
        let mut tcp = TcpStream::connect(gw.addr()).await.unwrap();
        let hello = crate::support::tls::legacy_client_hello(minor, "site.test");
        tcp.write_all(&hello).await.unwrap();
        let answer = until_closed(&mut tcp).await;
        // One alert record (content type 21), fatal, protocol_version (70)
        // or handshake_failure (40); never a ServerHello (type 22).
        assert!(answer.len() >= 7, "TLS 1.{}: {answer:?}", minor - 1);
        assert_eq!(answer[0], 0x15, "TLS 1.{}: {answer:?}", minor - 1);
        assert_eq!(answer[5], 2, "fatal");
        assert!(matches!(answer[6], 70 | 40), "alert {}", answer[6]);
        assert!(!answer.contains(&0x16), "no handshake record: {answer:?}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn a_client_sending_no_sni_gets_the_first_certificate() {
    let pki = Pki::new("nosni");
    let first = pki.server("first", &["first.test"]);
    let second = pki.server("second", &["second.test"]);
    let backend = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let listener = tls_listener(&[&first, &second], "");
    let gw = TestGateway::start(&config(&listener, &backend.url(), "")).await;
    // rustls sends no server_name extension for an IP address.
    let ip = rustls::pki_types::ServerName::IpAddress(gw.addr().ip().into());
    let tcp = TcpStream::connect(gw.addr()).await.unwrap();
    let connect =
        tokio_rustls::TlsConnector::from(insecure(&pki.client_config(None))).connect(ip, tcp);
    let stream = tokio::time::timeout(WAIT, connect).await.unwrap().unwrap();
    assert!(served_leaf(&stream) == first.der, "the first certificate");
    drop(stream);
    gw.stop().await;
}
