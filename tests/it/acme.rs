//! Automatic certificates against a real CA (issue 16): Pebble, with
//! pebble-challtestsrv as its DNS, validating on the gateway's own ports.
//! TLS-ALPN-01 and HTTP-01 issuance, a failing challenge reported with the
//! CA's detail and retried, a restart served from the cache with no new
//! order, a forced renewal swapped in under an open WebSocket, a CA that
//! cannot be reached, and the expiry metric of every certificate.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures_util::{SinkExt, StreamExt};
use rustls::ClientConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::Message;

use crate::support::client::WAIT;
use crate::support::logs;
use crate::support::ops::{metric, scrape, value};
use crate::support::pebble::{Pebble, Validation};
use crate::support::tls::{served_leaf, tls_connect, AcceptAny, Pki};
use crate::support::TestGateway;

/// The name every test orders a certificate for (any name resolves to
/// 127.0.0.1 through pebble-challtestsrv).
const NAME: &str = "chat.wsgate.test";

/// A TLS listener and a plain one on free ports.
pub(crate) struct Ports {
    pub(crate) tls: TcpListener,
    pub(crate) plain: TcpListener,
}

impl Ports {
    pub(crate) async fn bind() -> Ports {
        Ports {
            tls: TcpListener::bind("127.0.0.1:0").await.unwrap(),
            plain: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        }
    }

    fn port(listener: &TcpListener) -> u16 {
        listener.local_addr().unwrap().port()
    }

    /// Pebble validating on these ports.
    pub(crate) fn validation(&self, nonce_reject: Option<u8>) -> Validation {
        Validation {
            tls_port: Self::port(&self.tls),
            http_port: Self::port(&self.plain),
            nonce_reject,
            eab: None,
        }
    }

    /// A config with both listeners (`plain` extra keys for the plain one)
    /// and `[listeners.tls.acme]` for [`NAME`] at `directory`, plus `acme`
    /// and `tls` extra keys; every route to the built-in echo server.
    pub(crate) fn config(
        &self,
        directory: &str,
        ca: &Path,
        cache: &Path,
        acme: &str,
        tls: &str,
    ) -> String {
        format!(
            "[server]\nshutdown_grace = \"1s\"\n\
             [[listeners]]\nbind = \"127.0.0.1:{}\"\n[listeners.tls]\n{tls}\n\
             [listeners.tls.acme]\ndomains = [\"{NAME}\"]\ncontact = [\"mailto:ops@wsgate.test\"]\n\
             directory = {directory:?}\ndirectory_ca = {ca:?}\ncache = {cache:?}\nretry_backoff = \"500ms\"\n{acme}\n\
             [[listeners]]\nbind = \"127.0.0.1:{}\"\n\
             [[routes]]\nbackends = [\"builtin:echo\"]\n",
            Self::port(&self.tls),
            Self::port(&self.plain),
        )
    }

    /// Starts the gateway on these listeners.
    pub(crate) async fn start(self, toml: &str) -> TestGateway {
        TestGateway::start_on(toml, vec![self.tls, self.plain]).await
    }
}

/// The serial and notAfter of the certificate served for `name`.
pub(crate) async fn served(
    gw: &TestGateway,
    name: &str,
    config: Arc<ClientConfig>,
) -> std::io::Result<(String, SystemTime)> {
    let stream = tls_connect(gw.addr(), name, config).await?;
    let facts = wsgate::tls::x509::facts(&served_leaf(&stream)).unwrap();
    Ok((facts.serial, facts.not_after))
}

/// A client that accepts any certificate, to see what is served before
/// the CA's certificate exists.
pub(crate) fn any_certificate() -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny))
        .with_no_client_auth();
    Arc::new(config)
}

/// Waits until `name` is served a certificate Pebble's root verifies.
pub(crate) async fn issued(gw: &TestGateway, pebble: &Pebble, name: &str) -> (String, SystemTime) {
    let trusted = pebble.client_config().await;
    until("the CA's certificate served", || {
        served(gw, name, trusted.clone())
    })
    .await
}

/// Polls `probe` (bounded by [`WAIT`]) until it succeeds; returns its value.
pub(crate) async fn until<T, E, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Ok(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn tls_alpn_01_serves_at_once_retries_a_failed_challenge_then_swaps_the_certificate_in() {
    let logs = logs::capture();
    let ports = Ports::bind().await;
    // Pebble's default nonce rejection (5%): badNonce retries happen.
    let pebble = Pebble::start(ports.validation(None)).await;
    // The CA's validation first goes to 127.0.0.2, where nothing listens.
    pebble.point(NAME, "127.0.0.2").await;
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("acme");
    let toml = ports.config(
        &pebble.directory,
        &pebble.ca,
        &cache,
        "",
        "self_signed = true",
    );
    let started = Instant::now();
    let gw = ports.start(&toml).await;

    // Serving at once: the name waits for its certificate behind the
    // self-signed one, and no handshake waits for the CA.
    let stream = tls_connect(gw.addr(), NAME, any_certificate())
        .await
        .unwrap();
    let facts = wsgate::tls::x509::facts(&served_leaf(&stream)).unwrap();
    assert_eq!(
        facts.dns_names,
        ["localhost"],
        "the self-signed certificate while pending"
    );
    assert!(started.elapsed() < WAIT);

    let failed = logs.wait_for_line(&["ACME order failed", NAME]).await;
    assert!(
        failed.contains("could not validate tls-alpn-01"),
        "{failed}"
    );
    assert!(
        failed.contains("Failed to connect to 127.0.0.2"),
        "the CA's own detail: {failed}"
    );
    assert!(failed.contains("retry_in="), "{failed}");
    pebble.unpoint(NAME).await;

    let (serial, not_after) = issued(&gw, &pebble, NAME).await;
    logs.wait_for_line(&["ACME order placed", NAME, "tls-alpn-01"])
        .await;
    logs.wait_for_line(&["ACME challenge answered", "tls-alpn-01", NAME])
        .await;
    logs.wait_for_line(&["ACME certificate issued", NAME, &serial])
        .await;
    logs.wait_for_line(&["ACME next renewal", NAME, "two thirds"])
        .await;
    let exposition = scrape(gw.admin).await;
    assert!(
        value(
            &exposition,
            "wsgate_acme_orders_total",
            &[("result", "failed")]
        ) >= 1.0
    );
    assert_eq!(
        value(
            &exposition,
            "wsgate_acme_orders_total",
            &[("result", "issued")]
        ),
        1.0
    );
    let expiry = value(
        &exposition,
        "wsgate_certificate_expiry_seconds",
        &[("name", NAME)],
    );
    let unix = not_after
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_eq!(expiry, unix as f64, "the ACME certificate's notAfter");
    let dev = value(
        &exposition,
        "wsgate_certificate_expiry_seconds",
        &[("name", "localhost")],
    );
    assert!(dev > 0.0, "the self-signed certificate is reported too");
    // The certificate and the account are kept, privately.
    let kept = walk(&cache);
    assert!(
        kept.iter().any(|p| p.ends_with(format!("{NAME}.pem"))),
        "{kept:?}"
    );
    assert!(kept.iter().any(|p| p.ends_with("account.json")), "{kept:?}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&cache).unwrap().permissions().mode();
    assert_eq!(
        mode & 0o777,
        0o700,
        "the cache is created private: {mode:o}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn http_01_is_answered_on_a_plain_listener_ahead_of_its_routes_and_redirect() {
    let logs = logs::capture();
    // A plain listener that proxies, then one that redirects to https.
    for (extra, other_path) in [("", 200), ("redirect_https = 8443\n", 301)] {
        let ports = Ports::bind().await;
        let pebble = Pebble::start(ports.validation(Some(0))).await;
        let cache = tempfile::tempdir().unwrap();
        let toml = ports
            .config(
                &pebble.directory,
                &pebble.ca,
                cache.path(),
                "challenge = \"http-01\"",
                "",
            )
            .replace("[[routes]]", &format!("{extra}[[routes]]"));
        let gw = ports.start(&toml).await;
        let (serial, _) = issued(&gw, &pebble, NAME).await;
        logs.wait_for_line(&["ACME challenge answered", "http-01"])
            .await;
        logs.wait_for_line(&["ACME certificate issued", NAME, &serial])
            .await;
        // A token that is not pending falls through to the routes (the
        // built-in echo's page) or the redirect.
        let request = format!(
            "GET /.well-known/acme-challenge/unknown HTTP/1.1\r\nHost: {NAME}\r\nConnection: close\r\n\r\n"
        );
        let response = crate::support::client::raw_request(gw.addrs[1], &request).await;
        assert_eq!(response.status, other_path, "{extra:?}: {}", response.head);
        gw.stop().await;
    }
}

#[tokio::test]
async fn an_external_account_binding_is_sent_to_a_ca_that_requires_one() {
    let logs = logs::capture();
    let (kid, key) = (
        "kid-1",
        "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W",
    );
    for binding in [false, true] {
        let ports = Ports::bind().await;
        let mut validation = ports.validation(Some(0));
        validation.eab = Some((kid, key));
        let pebble = Pebble::start(validation).await;
        let cache = tempfile::tempdir().unwrap();
        let eab = format!("external_account = {{ key_id = {kid:?}, hmac_key = {key:?} }}");
        let acme = if binding { eab.as_str() } else { "" };
        let toml = ports.config(&pebble.directory, &pebble.ca, cache.path(), acme, "");
        let gw = ports.start(&toml).await;
        if binding {
            issued(&gw, &pebble, NAME).await;
        } else {
            let line = logs
                .wait_for_line(&["ACME order failed", "externalAccountRequired"])
                .await;
            assert!(line.contains("the CA refused"), "{line}");
        }
        gw.stop().await;
    }
}

/// Whether `line` says what the CA answered when asked for [`NAME`]'s
/// renewal window: that it offers none (a Pebble without ARI), or the
/// window, which then decides the next renewal (a Pebble with ARI).
fn ari_answered(line: &str) -> bool {
    let window = line.contains("ACME next renewal") && line.contains("renewal window (ARI)");
    line.contains(NAME) && (window || line.contains("the CA offers no renewal information (ARI)"))
}

#[tokio::test]
async fn a_restart_serves_the_cached_certificate_at_once_without_a_new_order() {
    let logs = logs::capture();
    let ports = Ports::bind().await;
    let pebble = Pebble::start(ports.validation(Some(0))).await;
    let cache = tempfile::tempdir().unwrap();
    let toml = ports.config(&pebble.directory, &pebble.ca, cache.path(), "", "");
    let gw = ports.start(&toml).await;
    let (serial, _) = issued(&gw, &pebble, NAME).await;
    gw.stop().await;

    let again = Ports::bind().await;
    let toml = again.config(&pebble.directory, &pebble.ca, cache.path(), "", "");
    let before = logs.lines_with(&["ACME"]).len();
    let before_all = logs.lines_with(&[]).len();
    let gw = again.start(&toml).await;
    // The very first handshake already gets the cached certificate.
    let trusted = pebble.client_config().await;
    let (first, _) = served(&gw, NAME, trusted).await.unwrap();
    assert_eq!(first, serial, "the same certificate, from the cache");
    // Its task ran (it asked the CA for a renewal window, and learnt there
    // is none, or got one) and placed no order.
    until("the CA's renewal window asked after the restart", || {
        let lines = logs.lines_with(&[]);
        let answered = lines[before_all..].iter().any(|l| ari_answered(l));
        std::future::ready(if answered { Ok(()) } else { Err(()) })
    })
    .await;
    let after: Vec<String> = logs.lines_with(&["ACME"]).split_off(before);
    assert!(
        !after.iter().any(|l| l.contains("order placed")),
        "{after:#?}"
    );
    assert!(
        !after.iter().any(|l| l.contains("account registered")),
        "{after:#?}"
    );
    assert!(
        after.iter().any(|l| l.contains("loaded from the cache")),
        "{after:#?}"
    );
    assert_eq!(metric(gw.admin, "wsgate_acme_orders_total", &[]).await, 0.0);
    gw.stop().await;
}

#[tokio::test]
async fn a_forced_renewal_swaps_the_certificate_while_a_websocket_stays_open() {
    let logs = logs::capture();
    let ports = Ports::bind().await;
    let pebble = Pebble::start(ports.validation(Some(0))).await;
    let cache = tempfile::tempdir().unwrap();
    let toml = ports.config(
        &pebble.directory,
        &pebble.ca,
        cache.path(),
        "test_renew_after = \"1s\"",
        "",
    );
    let gw = ports.start(&toml).await;
    let (first, _) = issued(&gw, &pebble, NAME).await;
    let trusted = pebble.client_config().await;

    let tls = tls_connect(gw.addr(), NAME, trusted.clone()).await.unwrap();
    let opened_on = wsgate::tls::x509::facts(&served_leaf(&tls)).unwrap().serial;
    let (mut ws, _) = tokio_tungstenite::client_async(format!("wss://{NAME}/echo"), tls)
        .await
        .unwrap();
    echo(&mut ws, "before").await;

    // New handshakes get a new certificate; the open WebSocket is untouched.
    let renewed = until("a renewed certificate served", || async {
        let serial = served(&gw, NAME, trusted.clone()).await.unwrap().0;
        match serial != opened_on {
            true => Ok(serial),
            false => Err(()),
        }
    })
    .await;
    echo(&mut ws, "after").await;
    assert_ne!(renewed, first);
    logs.wait_for_line(&["ACME next renewal", "test_renew_after"])
        .await;
    assert!(
        metric(
            gw.admin,
            "wsgate_acme_orders_total",
            &[("result", "issued")]
        )
        .await
            >= 2.0
    );
    ws.close(None).await.unwrap();
    gw.stop().await;
}

#[tokio::test]
async fn an_unreachable_ca_never_delays_the_listener_and_its_retries_back_off() {
    let logs = logs::capture();
    // A "CA" that takes each connection and drops it at once.
    let ca = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let directory = format!("https://{}/dir", ca.local_addr().unwrap());
    let (tx, mut attempts) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = ca.accept().await {
            let _ = tx.send(Instant::now());
            drop(stream);
        }
    });
    let pki = Pki::new("unreachable");
    let ports = Ports::bind().await;
    let cache = tempfile::tempdir().unwrap();
    let toml = ports
        .config(
            &directory,
            &pki.ca_path,
            cache.path(),
            "",
            "self_signed = true",
        )
        .replace("retry_backoff = \"500ms\"", "retry_backoff = \"1s\"");
    let gw = ports.start(&toml).await;
    assert!(
        tls_connect(gw.addr(), NAME, any_certificate())
            .await
            .is_ok(),
        "served at once"
    );

    let mut times = Vec::new();
    for _ in 0..4 {
        let at = tokio::time::timeout(WAIT, attempts.recv())
            .await
            .unwrap()
            .unwrap();
        times.push(at);
    }
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    // retry_backoff = 1s: waits drawn from [0.5, 1], [1, 2], [2, 4] seconds.
    for (i, gap) in gaps.iter().enumerate() {
        let floor = Duration::from_millis(500) * 2u32.pow(i as u32);
        assert!(
            *gap >= floor,
            "retry {} after {gap:?}, before its back-off {floor:?}",
            i + 1
        );
    }
    assert!(gaps[2] > gaps[0], "the waits grow: {gaps:?}");
    let line = logs
        .wait_for_line(&["ACME order failed", "cannot reach the CA"])
        .await;
    assert!(line.contains("no certificate yet"), "{line}");
    assert!(
        metric(
            gw.admin,
            "wsgate_acme_orders_total",
            &[("result", "failed")]
        )
        .await
            >= 3.0
    );
    gw.stop().await;
}

#[tokio::test]
async fn replicas_sharing_a_cache_order_once_and_answer_each_others_challenges() {
    let logs = logs::capture();
    let (a, b) = (Ports::bind().await, Ports::bind().await);
    // The CA validates at replica A's port only, as a balancer might send it.
    let pebble = Pebble::start(a.validation(Some(0))).await;
    let cache = tempfile::tempdir().unwrap();
    let toml_b = b.config(&pebble.directory, &pebble.ca, cache.path(), "", "");
    let gw_b = b.start(&toml_b).await;
    logs.wait_for_line(&["ACME order placed", NAME]).await;
    // A starts while B's order waits for its validation: A finds B holding
    // the cache lock, answers B's challenge from the shared cache, and
    // then takes B's certificate instead of ordering its own.
    let toml_a = a.config(&pebble.directory, &pebble.ca, cache.path(), "", "");
    let gw_a = a.start(&toml_a).await;
    let (serial, _) = issued(&gw_b, &pebble, NAME).await;
    let (on_a, _) = issued(&gw_a, &pebble, NAME).await;
    assert_eq!(on_a, serial, "one certificate for both");
    logs.wait_for_line(&["ACME challenge answered", "tls-alpn-01", NAME])
        .await;
    logs.wait_for_line(&["renewed by another process", &serial])
        .await;
    let issued_by = |admin| metric(admin, "wsgate_acme_orders_total", &[("result", "issued")]);
    assert_eq!(
        (issued_by(gw_b.admin).await, issued_by(gw_a.admin).await),
        (1.0, 0.0)
    );
    assert_eq!(
        logs.lines_with(&["ACME order placed"]).len(),
        1,
        "one order in all"
    );
    gw_a.stop().await;
    gw_b.stop().await;
}

#[tokio::test]
async fn certificates_from_files_report_their_expiry_too() {
    let pki = Pki::new("expiry");
    let site = pki.server("site", &["site.wsgate.test", "www.site.wsgate.test"]);
    let toml = format!(
        "[[listeners]]\nbind = \"127.0.0.1:0\"\n[listeners.tls]\ncerts = [{{ cert = {:?}, key = {:?} }}]\n\
         [[routes]]\nbackends = [\"builtin:echo\"]\n",
        site.cert, site.key
    );
    let gw = TestGateway::start(&toml).await;
    let not_after = wsgate::tls::x509::facts(&site.der).unwrap().not_after;
    let unix = not_after
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as f64;
    let exposition = scrape(gw.admin).await;
    for name in ["site.wsgate.test", "www.site.wsgate.test"] {
        let seen = value(
            &exposition,
            "wsgate_certificate_expiry_seconds",
            &[("name", name)],
        );
        assert_eq!(seen, unix, "{name}");
    }
    gw.stop().await;
}

/// Sends `text` and expects it back.
async fn echo(ws: &mut tokio_tungstenite::WebSocketStream<TlsStream<TcpStream>>, text: &str) {
    ws.send(Message::Text(text.into())).await.unwrap();
    let back = tokio::time::timeout(WAIT, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(back, Message::Text(text.into()));
}

/// Every file under `dir`.
pub(crate) fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        match path.is_dir() {
            true => out.extend(walk(&path)),
            false => out.push(path),
        }
    }
    out
}
