//! Start-up and `wsgate check` verdicts on certificates: every problem named
//! with its key path and file, the same from the library and the binary;
//! the development certificate paths (`self_signed`, `wsgate cert`).

use std::path::Path;
use std::process::Command;

use rcgen::CertificateParams;
use wsgate::config::Config;

use crate::support::tls::{served_leaf, tls_connect, Pki};
use crate::support::TestGateway;

fn tls_config(certs: &str, extra: &str) -> String {
    format!(
        "[[listeners]]\nbind = \"127.0.0.1:0\"\n[listeners.tls]\ncerts = [{certs}]\n{extra}\n\n[[routes]]\nbackends = [\"builtin:echo\"]\n"
    )
}

fn pair(cert: &Path, key: &Path) -> String {
    format!("{{ cert = {cert:?}, key = {key:?} }}")
}

#[test]
fn every_certificate_problem_is_named_with_its_key_path_and_file() {
    let pki = Pki::new("check");
    let good = pki.server("good", &["good.test"]);
    let other = pki.server("other", &["other.test"]);
    let mut expired = CertificateParams::new(vec!["old.test".to_string()]).unwrap();
    expired.not_before = rcgen::date_time_ymd(2020, 1, 1);
    expired.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let expired = pki.issue("expired", expired);
    let empty = pki.dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let missing = pki.dir.path().join("missing.pem");
    let certs = [
        pair(&good.cert, &good.key),
        pair(&missing, &good.key),
        pair(&good.cert, &other.key),
        pair(&expired.cert, &expired.key),
        pair(&empty, &good.key),
    ];
    let extra = format!("client_ca = {:?}", pki.dir.path().join("no-ca.pem"));
    let toml = tls_config(&certs.join(", "), &extra);
    let config = Config::parse(&toml, Path::new(".")).unwrap();
    let errors = wsgate::run::check::check(&config);
    let expect = [
        ("listeners[0].tls.certs[1].cert", "missing.pem"),
        ("listeners[0].tls.certs[2].key", "does not belong"),
        ("listeners[0].tls.certs[3].cert", "expired"),
        ("listeners[0].tls.certs[4].cert", "empty chain"),
        ("listeners[0].tls.client_ca", "no-ca.pem"),
    ];
    for (path, words) in expect {
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with(path) && e.contains(words)),
            "no {path} error mentioning {words:?} in {errors:#?}"
        );
    }
    assert_eq!(errors.len(), expect.len(), "{errors:#?}");

    let dir = pki.dir.path().join("bad.toml");
    std::fs::write(&dir, &toml).unwrap();
    for args in [&["check", "--config"][..], &["--config"][..]] {
        let out = Command::new(env!("CARGO_BIN_EXE_wsgate"))
            .args(args)
            .arg(&dir)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        for (path, _) in expect {
            assert!(
                stderr.contains(path),
                "{args:?}: {path} missing in {stderr}"
            );
        }
    }
}

#[test]
fn certificate_expiring_soon_is_a_warning_not_an_error() {
    let pki = Pki::new("soon");
    let mut params = CertificateParams::new(vec!["soon.test".to_string()]).unwrap();
    params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(5);
    let soon = pki.issue("soon", params);
    let toml = tls_config(&pair(&soon.cert, &soon.key), "");
    let config = Config::parse(&toml, Path::new(".")).unwrap();
    let tls = config.listeners[0].tls.as_ref().unwrap();
    let loaded = wsgate::tls::load::load_certs(tls, "listeners[0].tls");
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    assert!(loaded.set.is_some());
    assert_eq!(loaded.warnings.len(), 1);
    assert!(loaded.warnings[0].starts_with("listeners[0].tls.certs[0].cert"));
    assert!(
        loaded.warnings[0].contains("expires in 4 days")
            || loaded.warnings[0].contains("expires in 5 days")
    );
    assert!(wsgate::run::check::check(&config).is_empty());
}

#[tokio::test]
async fn wsgate_cert_writes_a_trustable_dev_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_wsgate"))
        .args(["cert", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (cert, key) = (dir.path().join("dev.pem"), dir.path().join("dev.key"));
    let toml = tls_config(&pair(&cert, &key), "");
    let gw = TestGateway::start(&toml).await;
    // A client trusting dev.pem as its only root gets a verified handshake.
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(crate::support::tls::read_chain(&cert).remove(0))
        .unwrap();
    let client = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    for name in ["localhost", "127.0.0.1"] {
        let stream = tls_connect(gw.addr(), name, std::sync::Arc::new(client.clone())).await;
        assert!(stream.is_ok(), "{name}: {:?}", stream.err());
    }
    gw.stop().await;
}

#[tokio::test]
async fn self_signed_listener_serves_a_generated_certificate() {
    let toml = "[[listeners]]\nbind = \"127.0.0.1:0\"\n[listeners.tls]\nself_signed = true\n\n[[routes]]\nbackends = [\"builtin:echo\"]\n";
    let gw = TestGateway::start(toml).await;
    let pki = Pki::new("any");
    let client = pki.client_config(None);
    let refused = tls_connect(gw.addr(), "localhost", client).await;
    let error = refused.expect_err("a generated certificate is not trusted by this CA");
    assert!(error.to_string().contains("UnknownIssuer"), "{error}");
    let insecure = {
        let mut c = (*pki.client_config(None)).clone();
        c.dangerous()
            .set_certificate_verifier(std::sync::Arc::new(crate::support::tls::AcceptAny));
        std::sync::Arc::new(c)
    };
    let stream = tls_connect(gw.addr(), "localhost", insecure).await.unwrap();
    let leaf = wsgate::tls::x509::facts(&served_leaf(&stream)).unwrap();
    assert!(leaf.dns_names.contains(&"localhost".to_string()));
    gw.stop().await;
}

#[tokio::test]
async fn pkcs1_rsa_and_sec1_ec_keys_load_and_serve() {
    use crate::support::tls::KeyFormat;
    let cases = [
        (KeyFormat::Pkcs1Rsa, "-----BEGIN RSA PRIVATE KEY-----"),
        (KeyFormat::Sec1Ec, "-----BEGIN EC PRIVATE KEY-----"),
    ];
    for (format, label) in cases {
        let pki = Pki::new("formats");
        let site = pki.server_with_key("site", &["site.test"], format);
        let written = std::fs::read_to_string(&site.key).unwrap();
        assert!(written.starts_with(label), "{format:?}: {written}");
        let toml = tls_config(&pair(&site.cert, &site.key), "");
        let config = Config::parse(&toml, Path::new(".")).unwrap();
        assert_eq!(
            wsgate::run::check::check(&config),
            Vec::<String>::new(),
            "{format:?}"
        );
        let gw = TestGateway::start(&toml).await;
        // A verified handshake proves the gateway signs with that key.
        let stream = tls_connect(gw.addr(), "site.test", pki.client_config(None))
            .await
            .unwrap_or_else(|e| panic!("{format:?}: {e}"));
        assert!(served_leaf(&stream) == site.der, "{format:?}");
        gw.stop().await;
    }
}

/// Runs `wsgate check` on `toml` (written into `dir`); returns its stderr
/// after asserting exit status 64.
fn check_fails(dir: &Path, toml: &str) -> String {
    let path = dir.join("wsgate.toml");
    std::fs::write(&path, toml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_wsgate"))
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts one stderr line starts with `key` and mentions every `words`.
fn assert_line(stderr: &str, key: &str, words: &[&str]) {
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with(key) && words.iter().all(|w| l.contains(w))),
        "no line starting {key} with {words:?} in:\n{stderr}"
    );
}

#[test]
fn unusable_key_files_are_named_with_key_path_and_file() {
    let pki = Pki::new("keys");
    let good = pki.server("good", &["good.test"]);
    let dir = pki.dir.path();
    let garbage = dir.join("garbage.key");
    std::fs::write(&garbage, "this is not a key\n").unwrap();
    let bad_pem = dir.join("bad-pem.key");
    std::fs::write(
        &bad_pem,
        "-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let certs = [
        pair(&good.cert, &garbage),
        pair(&good.cert, &good.cert), // a certificate where the key should be
        pair(&good.cert, &bad_pem),
    ];
    let stderr = check_fails(dir, &tls_config(&certs.join(", "), ""));
    let garbage = garbage.display().to_string();
    let as_key = good.cert.display().to_string();
    let bad_pem = bad_pem.display().to_string();
    let key = "listeners[0].tls.certs";
    assert_line(
        &stderr,
        &format!("{key}[0].key"),
        &[&garbage, "no PEM private key"],
    );
    assert_line(
        &stderr,
        &format!("{key}[1].key"),
        &[&as_key, "no PEM private key"],
    );
    assert_line(
        &stderr,
        &format!("{key}[2].key"),
        &[&bad_pem, "invalid PEM"],
    );
}

#[test]
fn backend_ca_and_client_cert_errors_are_named_under_their_route() {
    let pki = Pki::new("routes");
    let gw = pki.client("gw", "wsgate");
    let other = pki.client("other", "other");
    let dir = pki.dir.path();
    let (missing, empty, garbage) = (
        dir.join("missing-ca.pem"),
        dir.join("empty-ca.pem"),
        dir.join("garbage.key"),
    );
    std::fs::write(&empty, "").unwrap();
    std::fs::write(&garbage, "garbage").unwrap();
    let client_cert =
        |cert: &Path, key: &Path| format!("backend_client_cert = {}", pair(cert, key));
    let routes = [
        format!("backend_ca = {missing:?}"),
        format!("backend_ca = {empty:?}"),
        client_cert(&gw.cert, &garbage),
        client_cert(&gw.cert, &other.key),
        client_cert(&missing, &gw.key),
    ];
    let mut toml = "[[listeners]]\nbind = \"127.0.0.1:0\"\n".to_string();
    for (i, keys) in routes.iter().enumerate() {
        toml.push_str(&format!(
            "\n[[routes]]\npath = \"/r{i}\"\nbackends = [\"wss://127.0.0.1:9\"]\n{keys}\n"
        ));
    }
    let stderr = check_fails(dir, &toml);
    let name = |p: &Path| p.display().to_string();
    let expect = [
        ("routes[0].backend_ca", vec![name(&missing)]),
        (
            "routes[1].backend_ca",
            vec![name(&empty), "empty chain".into()],
        ),
        (
            "routes[2].backend_client_cert.key",
            vec![name(&garbage), "no PEM private key".into()],
        ),
        (
            "routes[3].backend_client_cert.key",
            vec![name(&other.key), "does not belong".into()],
        ),
        ("routes[4].backend_client_cert.cert", vec![name(&missing)]),
    ];
    for (key, words) in &expect {
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        assert_line(&stderr, key, &words);
    }
}
