use std::time::Duration;

use super::*;

/// A throw-away certificate and key for `names`.
fn key(names: &[&str]) -> Arc<CertifiedKey> {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(names)
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let der = rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let provider = crate::tls::pem::provider();
    Arc::new(CertifiedKey::from_der(vec![cert.der().clone()], der, &provider).unwrap())
}

fn entry(names: &[&str]) -> SniEntry {
    SniEntry {
        names: names.iter().map(|n| n.to_string()).collect(),
        key: key(names),
    }
}

/// A resolver with `files` (and the self-signed certificate when given)
/// and ACME certificates for `issued` among `domains`.
fn resolver(
    files: Vec<SniEntry>,
    self_signed: bool,
    domains: &[&str],
    issued: &[(&str, SystemTime)],
) -> (SniResolver, Option<Arc<CertifiedKey>>) {
    let mut set = CertSet::new(files);
    let dev = self_signed.then(|| entry(&["localhost"]));
    let dev_key = dev.as_ref().map(|e| e.key.clone());
    if let Some(dev) = dev {
        set = set.with_self_signed(dev);
    }
    let resolver = SniResolver::new(set);
    let issued = issued
        .iter()
        .map(|(name, not_after)| {
            let cert = AcmeCert {
                key: key(&[name]),
                not_after: *not_after,
            };
            (name.to_string(), cert)
        })
        .collect();
    let domains = domains.iter().map(|d| d.to_string()).collect();
    resolver.replace_acme(AcmeCerts { domains, issued });
    (resolver, dev_key)
}

fn same(a: &Option<Arc<CertifiedKey>>, b: &Arc<CertifiedKey>) -> bool {
    a.as_ref().is_some_and(|a| Arc::ptr_eq(a, b))
}

#[test]
fn wildcards_cover_exactly_one_label() {
    let cases = [
        ("*.example.com", "a.example.com", true),
        ("*.example.com", "a.b.example.com", false),
        ("*.example.com", "example.com", false),
        ("*.example.com", ".example.com", false),
        ("*.example.com", "a.example.org", false),
        ("example.com", "example.com", false), // not a wildcard
    ];
    for (pattern, name, expected) in cases {
        assert_eq!(
            wildcard_matches(pattern, name),
            expected,
            "{pattern} vs {name}"
        );
    }
}

#[test]
fn files_exact_then_acme_then_wildcard_then_default() {
    let now = SystemTime::now();
    let later = now + Duration::from_secs(3600);
    let files = vec![
        entry(&["site.example"]),
        entry(&["*.example.com", "chat.example.com"]),
    ];
    let (first, wild) = (files[0].key.clone(), files[1].key.clone());
    let (r, _) = resolver(
        files,
        false,
        &["chat.example.com", "api.example.com"],
        &[("api.example.com", later), ("chat.example.com", later)],
    );
    let acme = r.acme();
    let api = &acme.issued["api.example.com"].key;
    assert!(
        same(&r.choose(Some("chat.example.com"), now), &wild),
        "an exact file name beats ACME"
    );
    assert!(
        same(&r.choose(Some("API.example.com."), now), api),
        "ACME beats a wildcard"
    );
    assert!(
        same(&r.choose(Some("other.example.com"), now), &wild),
        "wildcard"
    );
    assert!(
        same(&r.choose(Some("unknown.test"), now), &first),
        "default"
    );
    assert!(same(&r.choose(None, now), &first), "no SNI: default");
}

#[test]
fn a_pending_acme_name_gets_the_self_signed_certificate_or_nothing() {
    let now = SystemTime::now();
    let files = vec![entry(&["site.example"])];
    let (r, dev) = resolver(files, true, &["chat.example.com"], &[]);
    assert!(
        same(&r.choose(Some("chat.example.com"), now), &dev.unwrap()),
        "self-signed while pending"
    );
    let (r, _) = resolver(
        vec![entry(&["site.example"])],
        false,
        &["chat.example.com"],
        &[],
    );
    assert!(
        r.choose(Some("chat.example.com"), now).is_none(),
        "no self-signed: an alert"
    );
}

#[test]
fn an_acme_only_listener_serves_issued_names_and_refuses_others() {
    let now = SystemTime::now();
    let later = now + Duration::from_secs(3600);
    let (r, _) = resolver(
        Vec::new(),
        false,
        &["a.example.com", "b.example.com"],
        &[("b.example.com", later)],
    );
    let b = r.acme().issued["b.example.com"].key.clone();
    assert!(same(&r.choose(Some("b.example.com"), now), &b));
    assert!(r.choose(Some("a.example.com"), now).is_none(), "pending");
    assert!(
        r.choose(Some("other.example.com"), now).is_none(),
        "not ours"
    );
    assert!(same(&r.choose(None, now), &b), "no SNI: the first issued");
}

#[test]
fn an_expired_acme_certificate_is_no_longer_served() {
    let now = SystemTime::now();
    let (r, dev) = resolver(
        Vec::new(),
        true,
        &["a.example.com"],
        &[("a.example.com", now - Duration::from_secs(1))],
    );
    assert!(same(&r.choose(Some("a.example.com"), now), &dev.unwrap()));
}

#[test]
fn expiries_name_every_certificate_held() {
    let later = SystemTime::now() + Duration::from_secs(3600);
    let (r, _) = resolver(
        vec![entry(&["site.example", "www.site.example"])],
        false,
        &["a.example.com"],
        &[("a.example.com", later)],
    );
    let mut names: Vec<String> = r.expiries().into_iter().map(|(n, _)| n).collect();
    names.sort();
    assert_eq!(names, ["a.example.com", "site.example", "www.site.example"]);
    let acme = r
        .expiries()
        .into_iter()
        .find(|(n, _)| n == "a.example.com")
        .unwrap();
    assert_eq!(acme.1, unix_seconds(later));
}
