//! Start-up and `wsgate check` verdicts on certificates: every problem named
//! with its key path and file, the same from the library and the binary;
//! the development certificate paths (`self_signed`, `wsgate cert`).

mod support;

use std::path::Path;
use std::process::Command;

use rcgen::CertificateParams;
use wsgate::config::Config;

use support::tls::{served_leaf, tls_connect, Pki};
use support::TestGateway;

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
    let errors = wsgate::tls::check(&config);
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
    assert!(wsgate::tls::check(&config).is_empty());
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
        .add(support::tls::read_chain(&cert).remove(0))
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
            .set_certificate_verifier(std::sync::Arc::new(support::tls::AcceptAny));
        std::sync::Arc::new(c)
    };
    let stream = tls_connect(gw.addr(), "localhost", insecure).await.unwrap();
    let leaf = wsgate::tls::x509::facts(&served_leaf(&stream)).unwrap();
    assert!(leaf.dns_names.contains(&"localhost".to_string()));
    gw.stop().await;
}
