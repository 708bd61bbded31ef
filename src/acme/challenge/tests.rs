use x509_parser::prelude::{FromDer, X509Certificate};

use super::*;
use crate::config::AcmeSettings;

/// A cache in a temp dir, created.
fn cache(dir: &Path) -> Cache {
    let mut settings = AcmeSettings::for_domains(vec!["chat.example.com".into()]);
    settings.cache = dir.to_path_buf();
    let cache = Cache::new(&settings);
    cache.create().unwrap();
    cache
}

/// The OID of `id-pe-acmeIdentifier` (RFC 8737 §6.1).
const ACME_IDENTIFIER: &str = "1.3.6.1.5.5.7.1.31";

#[test]
fn the_validation_certificate_follows_rfc_8737() {
    let digest = [7u8; 32];
    let key = validation_cert("chat.example.com", &digest).unwrap();
    let (_, cert) = X509Certificate::from_der(&key.cert[0]).unwrap();
    let ext = cert
        .extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == ACME_IDENTIFIER)
        .expect("acmeIdentifier extension");
    assert!(ext.critical, "the extension is critical");
    assert_eq!(
        ext.value,
        [&[0x04, 32][..], &digest].concat(),
        "an OCTET STRING of the digest"
    );
    let san = cert.subject_alternative_name().unwrap().unwrap();
    assert_eq!(san.value.general_names.len(), 1);
    assert_eq!(
        format!("{}", san.value.general_names[0]),
        "DNSName(chat.example.com)"
    );
}

#[test]
fn a_published_answer_lives_as_long_as_its_guard() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = cache(tmp.path());
    let store = Arc::new(Challenges::default());
    let http = store.publish_http01(&cache, "tok-EN_1", "tok-EN_1.thumb");
    let alpn = store
        .publish_tls_alpn01(&cache, "chat.example.com", &[1; 32])
        .unwrap();
    assert_eq!(store.http01("tok-EN_1").as_deref(), Some("tok-EN_1.thumb"));
    assert!(store.validation_cert("chat.example.com").is_some());
    assert!(store.validation_cert("other.example.com").is_none());
    drop((http, alpn));
    assert!(store.http01("tok-EN_1").is_none());
    assert!(store.validation_cert("chat.example.com").is_none());
    let left = std::fs::read_dir(tmp.path().join("challenges/http-01"))
        .unwrap()
        .count();
    assert_eq!(left, 0, "the shared file is removed too");
}

#[test]
fn a_replica_sharing_the_cache_answers_for_the_one_that_ordered() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = cache(tmp.path());
    let ordering = Arc::new(Challenges::default());
    let replica = Challenges::default();
    replica.share(tmp.path());
    let _http = ordering.publish_http01(&cache, "token", "token.thumb");
    let _alpn = ordering
        .publish_tls_alpn01(&cache, "chat.example.com", &[9; 32])
        .unwrap();
    assert_eq!(replica.http01("token").as_deref(), Some("token.thumb"));
    let key = replica.validation_cert("chat.example.com").unwrap();
    let again = replica.validation_cert("chat.example.com").unwrap();
    assert!(Arc::ptr_eq(&key, &again), "made once per digest");
    let (_, cert) = X509Certificate::from_der(&key.cert[0]).unwrap();
    let ext = cert
        .extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == ACME_IDENTIFIER)
        .unwrap();
    assert_eq!(&ext.value[2..], &[9; 32]);
}

#[test]
fn names_from_the_network_never_leave_the_challenge_directory() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("secret"), "do not serve").unwrap();
    let store = Challenges::default();
    store.share(&tmp.path().join("challenges/http-01/x"));
    for token in ["../../secret", "..", "a/b", "", &"a".repeat(200)] {
        assert!(store.http01(token).is_none(), "{token:?}");
    }
    for name in ["../secret", ".", "a/b.example", "A.example.com", ""] {
        assert!(store.validation_cert(name).is_none(), "{name:?}");
    }
}
