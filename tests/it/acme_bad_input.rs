//! ACME's bad inputs (issue 16): each gets a clear error, nothing crashes,
//! and a certificate that is still valid stays served. Config mistakes are
//! refused by `wsgate check` (and so at start-up and on reload) with their
//! key paths; problems of the cache or the CA at run time are logged and
//! retried.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use rcgen::{CertificateParams, KeyPair};
use tokio::net::TcpListener;

use crate::acme::{any_certificate, issued, served, walk, Ports};
use crate::support::logs;
use crate::support::pebble::Pebble;
use crate::support::tls::Pki;

const NAME: &str = "chat.wsgate.test";

/// Runs `wsgate check` on `toml`; returns its exit code and stderr.
fn check(toml: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wsgate.toml");
    std::fs::write(&path, toml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_wsgate"))
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A one-listener config with `acme` as its `[listeners.tls.acme]` body.
fn acme_only(acme: &str) -> String {
    format!(
        "[[listeners]]\nbind = \"127.0.0.1:0\"\n[listeners.tls]\n[listeners.tls.acme]\n{acme}\n\
         [[routes]]\nbackends = [\"builtin:echo\"]\n"
    )
}

#[test]
fn check_refuses_names_contacts_and_urls_a_ca_would_refuse() {
    let (code, stderr) = check(&acme_only(
        "domains = [\"chat_1.example.com\", \"*.example.com\", \"10.0.0.1\", \"ok.example.com\", \"OK.example.com\"]\n\
         contact = [\"ops@example.com\"]\ndirectory = \"http://ca.example/dir\"\nchallenge = \"http-01\"\n\
         external_account = { key_id = \"kid\", hmac_key = \"not base64!\" }\nretry_backoff = \"1ms\"\n",
    ));
    assert_eq!(code, Some(64), "{stderr}");
    let at = "listeners[0].tls.acme";
    let expect = [
        (".domains[0]", "is not a DNS name: invalid character '_'"),
        (".domains[1]", "is a wildcard, which http-01 cannot prove"),
        (".domains[2]", "is an IP address"),
        (".domains[4]", "repeats domains[3]"),
        (".contact[0]", "expected a mailto: URL"),
        (".directory", "an ACME directory is an https:// URL"),
        (".challenge", "http-01 is answered on a plain listener"),
        (".external_account", "hmac_key is not base64url"),
        (".retry_backoff", "at least 100ms"),
    ];
    for (key, words) in expect {
        let line = format!("{at}{key}: ");
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with(&line) && l.contains(words)),
            "no {line}… {words:?} in:\n{stderr}"
        );
    }
    let (code, stderr) = check(&acme_only("domains = []"));
    assert_eq!(code, Some(64));
    assert!(
        stderr.contains("listeners[0].tls.acme.domains: at least one domain"),
        "{stderr}"
    );
}

#[test]
fn check_refuses_a_cache_that_cannot_be_used_and_a_missing_directory_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let missing_ca = tmp.path().join("missing-ca.pem");
    let body = |cache: &Path| {
        format!("domains = [\"{NAME}\"]\ncache = {cache:?}\ndirectory_ca = {missing_ca:?}\n")
    };
    let (code, stderr) = check(&acme_only(&body(&file.join("acme"))));
    assert_eq!(code, Some(64), "{stderr}");
    assert!(
        stderr.contains("listeners[0].tls.acme.cache: ") && stderr.contains("Not a directory"),
        "{stderr}"
    );
    assert!(
        stderr.contains("listeners[0].tls.acme.directory_ca: cannot read"),
        "{stderr}"
    );
    // Unwritable even for root: sysfs takes no new files.
    let (code, stderr) = check(&acme_only(&body(Path::new("/sys/wsgate-acme"))));
    assert_eq!(code, Some(64), "{stderr}");
    assert!(
        stderr.contains("listeners[0].tls.acme.cache: /sys/wsgate-acme: cannot be created"),
        "{stderr}"
    );
    assert!(!Path::new("/sys/wsgate-acme").exists());
    // A usable cache, and nothing is left behind by the check.
    let cache = tmp.path().join("acme");
    let good = format!("domains = [\"{NAME}\"]\ncache = {cache:?}\n");
    let (code, stderr) = check(&acme_only(&good));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!cache.exists(), "check creates nothing");
}

/// The cache file of `domain` for the CA at `directory` (the layout in
/// `acme::cache`).
fn cached(cache: &Path, directory: &str, file: &str) -> PathBuf {
    let ca: String = directory
        .trim_start_matches("https://")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    cache.join(ca.trim_matches('-')).join(file)
}

/// A certificate for [`NAME`] valid from 20 days ago for 25 days: past two
/// thirds of its life (due), not expired. Key and chain as the cache keeps them.
fn due_certificate() -> (String, String) {
    certificate(20, 5)
}

/// A self-signed certificate for [`NAME`] valid from `before` days ago to
/// `after` days from now, as key + chain PEM, and its serial.
fn certificate(before: i64, after: i64) -> (String, String) {
    let mut params = CertificateParams::new(vec![NAME.to_string()]).unwrap();
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(before);
    params.not_after = now + time::Duration::days(after);
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let serial = wsgate::tls::x509::facts(cert.der()).unwrap().serial;
    (format!("{}{}", key.serialize_pem(), cert.pem()), serial)
}

/// A TLS server at a `/dir` URL that answers every request with `status`,
/// `text/html` and `body`.
async fn fake_ca(pki: &Pki, status: u16, body: &'static str) -> String {
    let cert = pki.server("fake-ca", &["127.0.0.1"]);
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        crate::support::tls::read_chain(&cert.cert),
        crate::support::tls::read_key(&cert.key),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let Ok(tls) = acceptor.accept(tcp).await else {
                continue;
            };
            let service = hyper::service::service_fn(move |_req| async move {
                let response = hyper::Response::builder()
                    .status(status)
                    .header("content-type", "text/html")
                    .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                    .unwrap();
                Ok::<_, std::convert::Infallible>(response)
            });
            let io = hyper_util::rt::TokioIo::new(tls);
            tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(io, service));
        }
    });
    format!("https://{addr}/dir")
}

#[tokio::test]
async fn a_directory_answering_5xx_or_garbage_is_reported_and_the_valid_certificate_kept() {
    let logs = logs::capture();
    let pki = Pki::new("fake-ca");
    for (status, body, says) in [
        (
            503,
            "<html>Service Unavailable</html>",
            "the CA answered 503 Service Unavailable with text/html, not ACME JSON",
        ),
        (
            200,
            "<html>hello</html>",
            "the CA answered 200 OK with text/html, not ACME JSON",
        ),
    ] {
        let directory = fake_ca(&pki, status, body).await;
        let cache = tempfile::tempdir().unwrap();
        let (pem, serial) = due_certificate();
        let file = cached(cache.path(), &directory, &format!("{NAME}.pem"));
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, pem).unwrap();
        let ports = Ports::bind().await;
        let toml = ports.config(&directory, &pki.ca_path, cache.path(), "", "");
        let gw = ports.start(&toml).await;
        let line = logs.wait_for_line(&["ACME order failed", says]).await;
        assert!(line.contains(directory.as_str()), "names the URL: {line}");
        assert!(
            !line.contains("no certificate yet"),
            "still serving: {line}"
        );
        let (now_served, _) = served(&gw, NAME, any_certificate()).await.unwrap();
        assert_eq!(now_served, serial, "the valid certificate stays in service");
        gw.stop().await;
    }
}

#[tokio::test]
async fn a_corrupt_cached_certificate_is_reported_and_replaced_by_a_new_order() {
    let logs = logs::capture();
    let ports = Ports::bind().await;
    let pebble = Pebble::start(ports.validation(Some(0))).await;
    let cache = tempfile::tempdir().unwrap();
    let file = cached(cache.path(), &pebble.directory, &format!("{NAME}.pem"));
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, "-----BEGIN PRIVATE KEY-----\ngarbage\n").unwrap();
    let toml = ports.config(&pebble.directory, &pebble.ca, cache.path(), "", "");
    let gw = ports.start(&toml).await;
    let line = logs
        .wait_for_line(&["cached ACME certificate unusable", NAME])
        .await;
    assert!(
        line.contains(&file.display().to_string()),
        "names the file: {line}"
    );
    let (serial, _) = issued(&gw, &pebble, NAME).await;
    let kept = std::fs::read(&file).unwrap();
    use rustls::pki_types::pem::PemObject;
    let leaf = rustls::pki_types::CertificateDer::pem_slice_iter(&kept)
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(
        wsgate::tls::x509::facts(&leaf).unwrap().serial,
        serial,
        "the cache holds the new one"
    );
    gw.stop().await;
}

#[tokio::test]
async fn an_account_key_that_does_not_parse_is_set_aside_and_a_new_account_registered() {
    let logs = logs::capture();
    let ports = Ports::bind().await;
    let pebble = Pebble::start(ports.validation(Some(0))).await;
    let cache = tempfile::tempdir().unwrap();
    let account = cached(cache.path(), &pebble.directory, "account.json");
    std::fs::create_dir_all(account.parent().unwrap()).unwrap();
    let broken = format!(
        "{{\"id\":\"https://127.0.0.1/my-account/1\",\"key_pkcs8\":\"bm90LWEta2V5\",\"directory\":{:?}}}",
        pebble.directory
    );
    std::fs::write(&account, &broken).unwrap();
    let toml = ports.config(&pebble.directory, &pebble.ca, cache.path(), "", "");
    let gw = ports.start(&toml).await;
    let line = logs
        .wait_for_line(&["ACME account key does not parse"])
        .await;
    assert!(
        line.contains("account.json.corrupt"),
        "says where it went: {line}"
    );
    issued(&gw, &pebble, NAME).await;
    logs.wait_for_line(&["ACME account registered"]).await;
    let aside = account.with_extension("json.corrupt");
    assert_eq!(
        std::fs::read_to_string(aside).unwrap(),
        broken,
        "the old file is kept"
    );
    assert!(std::fs::read_to_string(&account)
        .unwrap()
        .contains("key_pkcs8"));
    gw.stop().await;
}

#[tokio::test]
async fn an_unwritable_cache_is_reported_and_the_issued_certificate_still_served() {
    let logs = logs::capture();
    let ports = Ports::bind().await;
    let pebble = Pebble::start(ports.validation(Some(0))).await;
    let cache = tempfile::tempdir().unwrap();
    // The CA's directory in the cache is a file: nothing can be written there.
    let ca_dir = cached(cache.path(), &pebble.directory, "x");
    let ca_dir = ca_dir.parent().unwrap();
    std::fs::write(ca_dir, "in the way").unwrap();
    let toml = ports.config(&pebble.directory, &pebble.ca, cache.path(), "", "");
    let gw = ports.start(&toml).await;
    logs.wait_for_line(&["ACME cache unusable"]).await;
    let (serial, _) = issued(&gw, &pebble, NAME).await;
    let line = logs
        .wait_for_line(&["cannot keep the ACME certificate in the cache"])
        .await;
    assert!(
        line.contains(&format!("cannot create {}", ca_dir.display())),
        "{line}"
    );
    logs.wait_for_line(&["cannot save the ACME account"]).await;
    let (again, _) = served(&gw, NAME, pebble.client_config().await)
        .await
        .unwrap();
    assert_eq!(again, serial);
    assert!(walk(cache.path())
        .iter()
        .all(|p| !p.ends_with(format!("{NAME}.pem"))));
    // The order itself succeeded: counted as issued, not retried.
    let exposition = crate::support::ops::scrape(gw.admin).await;
    let orders = |result| {
        crate::support::ops::value(
            &exposition,
            "wsgate_acme_orders_total",
            &[("result", result)],
        )
    };
    assert_eq!((orders("issued"), orders("failed")), (1.0, 0.0));
    gw.stop().await;
}

#[tokio::test]
async fn a_reload_with_a_bad_acme_table_is_rejected_and_the_certificate_kept() {
    let cache = tempfile::tempdir().unwrap();
    // Nothing listens there: the gateway runs on its cached certificate.
    let port = crate::support::ops::free_port().await;
    let directory = &format!("https://127.0.0.1:{port}/dir");
    let (pem, serial) = certificate(1, 80);
    let file = cached(cache.path(), directory, &format!("{NAME}.pem"));
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, pem).unwrap();
    let good = acme_only(&format!(
        "domains = [\"{NAME}\"]\ndirectory = {directory:?}\ncache = {:?}\n",
        cache.path()
    ));
    let config = cache.path().join("wsgate.toml");
    std::fs::write(&config, &good).unwrap();
    let gw = crate::support::TestGateway::start_file(&config, std::time::Duration::ZERO).await;
    let (first, _) = served(&gw, NAME, any_certificate()).await.unwrap();
    assert_eq!(first, serial);
    std::fs::write(
        &config,
        good.replace(&format!("\"{NAME}\""), "\"*.wsgate.test\""),
    )
    .unwrap();
    let outcome = gw.reload.as_ref().unwrap().reload().await.unwrap();
    let wsgate::run::reload::ReloadOutcome::Rejected(errors) = outcome else {
        panic!("a wildcard must be refused: {outcome:?}");
    };
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("listeners[0].tls.acme.domains[0]") && e.contains("wildcard")),
        "{errors:#?}"
    );
    let (still, _) = served(&gw, NAME, any_certificate()).await.unwrap();
    assert_eq!(still, serial, "the running config and its certificate stay");
    gw.stop().await;
}
