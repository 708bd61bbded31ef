//! `[listeners.tls.acme]`: domains that a public CA will accept and one of
//! our challenges can prove, `mailto:` contacts, an `https://` directory, a
//! usable external account binding. Nothing here reaches the CA or touches
//! the cache directory; `run::check` judges the cache and `directory_ca`
//! files, as it does every other file.

use std::net::IpAddr;
use std::path::Path;

use base64::Engine;

use super::super::file::{self, defaults};
use super::Errors;
use crate::config::{AcmeChallenge, AcmeSettings, ExternalAccount, Listener, MIN_RETRY_BACKOFF};

/// Longest DNS name (RFC 1035 §2.3.4, without the root's dot).
const MAX_NAME: usize = 253;

/// Longest DNS label (RFC 1035 §2.3.4).
const MAX_LABEL: usize = 63;

/// `[listeners.tls.acme]` at `at` (`listeners[0].tls.acme`).
pub(super) fn acme(
    errors: &mut Errors,
    at: &str,
    raw: file::AcmeFile,
    base: &Path,
) -> AcmeSettings {
    let challenge = challenge(errors, at, raw.challenge.as_deref());
    let domains = domains(errors, at, raw.domains, challenge);
    for (i, contact) in raw.contact.iter().enumerate() {
        errors.check(format!("{at}.contact[{i}]"), mailto(contact));
    }
    let directory = raw
        .directory
        .unwrap_or_else(|| defaults::ACME_DIRECTORY.into());
    errors.check(format!("{at}.directory"), directory_url(&directory));
    let cache = raw.cache.unwrap_or_else(|| defaults::ACME_CACHE.into());
    if cache.is_empty() {
        errors.push(format!("{at}.cache"), "empty directory path");
    }
    let directory_ca = raw.directory_ca.map(|path| {
        if path.is_empty() {
            errors.push(format!("{at}.directory_ca"), "empty file path");
        }
        base.join(path)
    });
    let external_account = raw
        .external_account
        .and_then(|eab| errors.check(format!("{at}.external_account"), external_account(eab)));
    let retry = raw.retry_backoff.as_deref();
    let retry_path = format!("{at}.retry_backoff");
    let retry_backoff = errors.duration(
        retry_path.clone(),
        retry,
        defaults::ACME_RETRY_BACKOFF,
        false,
    );
    if retry_backoff < MIN_RETRY_BACKOFF {
        errors.push(retry_path, format!("at least {MIN_RETRY_BACKOFF:?}"));
    }
    let renew = raw.test_renew_after.as_deref();
    AcmeSettings {
        domains,
        contact: raw.contact,
        directory,
        directory_ca,
        challenge,
        cache: base.join(cache),
        external_account,
        retry_backoff,
        test_renew_after: renew.map(|text| {
            let path = format!("{at}.test_renew_after");
            errors.duration(path, Some(text), std::time::Duration::ZERO, false)
        }),
    }
}

/// Checks that need every listener: an HTTP-01 challenge is answered on a
/// plain listener, so the config must have one.
pub(super) fn across_listeners(errors: &mut Errors, listeners: &[Listener]) {
    let has_plain = listeners.iter().any(|l| l.tls.is_none());
    for (i, listener) in listeners.iter().enumerate() {
        let acme = listener.tls.as_ref().and_then(|tls| tls.acme.as_ref());
        if acme.is_some_and(|a| a.challenge == AcmeChallenge::Http01) && !has_plain {
            errors.push(
                format!("listeners[{i}].tls.acme.challenge"),
                "http-01 is answered on a plain listener (the CA connects to port 80), \
                 and this config has none: add a [[listeners]] without tls, or use tls-alpn-01",
            );
        }
    }
}

/// `challenge`: `tls-alpn-01` (default) or `http-01`.
fn challenge(errors: &mut Errors, at: &str, raw: Option<&str>) -> AcmeChallenge {
    match raw.unwrap_or(defaults::ACME_CHALLENGE) {
        "tls-alpn-01" => AcmeChallenge::TlsAlpn01,
        "http-01" => AcmeChallenge::Http01,
        other => {
            errors.push(
                format!("{at}.challenge"),
                format!(
                    "{other:?} is not supported; use \"tls-alpn-01\" or \"http-01\" \
                     (dns-01 is not supported)"
                ),
            );
            AcmeChallenge::TlsAlpn01
        }
    }
}

/// `domains`: required, each a DNS name the challenge can prove, no repeats.
fn domains(
    errors: &mut Errors,
    at: &str,
    raw: Option<Vec<String>>,
    challenge: AcmeChallenge,
) -> Vec<String> {
    let Some(raw) = raw.filter(|d| !d.is_empty()) else {
        errors.push(
            format!("{at}.domains"),
            "at least one domain is required (e.g. [\"chat.example.com\"])",
        );
        return Vec::new();
    };
    // Each valid name with its index in the file, for repeats.
    let mut out: Vec<(String, usize)> = Vec::new();
    for (i, text) in raw.iter().enumerate() {
        let path = format!("{at}.domains[{i}]");
        let Some(name) = errors.check(path.clone(), domain(text, challenge)) else {
            continue;
        };
        match out.iter().find(|(d, _)| *d == name) {
            Some((_, first)) => errors.push(path, format!("{text:?} repeats domains[{first}]")),
            None => out.push((name, i)),
        }
    }
    out.into_iter().map(|(name, _)| name).collect()
}

/// One domain, lower-cased: a DNS name of at least two labels, not an IP
/// address, not a wildcard.
fn domain(text: &str, challenge: AcmeChallenge) -> Result<String, String> {
    let name = text.trim_end_matches('.').to_ascii_lowercase();
    if name.parse::<IpAddr>().is_ok() {
        return Err(format!(
            "{text:?} is an IP address; ACME certificates here are for DNS names only"
        ));
    }
    if name.starts_with("*.") {
        return Err(format!(
            "{text:?} is a wildcard, which {} cannot prove (a CA issues wildcards only \
             through dns-01, which wsgate does not support); list each name, or use `certs`",
            challenge.name()
        ));
    }
    dns_name(&name).map_err(|e| format!("{text:?} is not a DNS name: {e}"))?;
    Ok(name)
}

/// Checks a lower-cased host name: LDH labels of 1 to 63 characters, at
/// least two of them, at most 253 characters, a top label not all digits.
fn dns_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty".into());
    }
    if name.len() > MAX_NAME {
        return Err(format!("longer than {MAX_NAME} characters"));
    }
    let labels: Vec<&str> = name.split('.').collect();
    if labels.len() < 2 {
        return Err("a single label; a public CA needs a name under a domain".into());
    }
    for label in &labels {
        label_ok(label)?;
    }
    if labels[labels.len() - 1].bytes().all(|b| b.is_ascii_digit()) {
        return Err("the last label is all digits".into());
    }
    Ok(())
}

/// One label: letters, digits and inner hyphens, 1 to 63 characters.
fn label_ok(label: &str) -> Result<(), String> {
    if label.is_empty() {
        return Err("empty label (leading, trailing or doubled \".\")".into());
    }
    if label.len() > MAX_LABEL {
        return Err(format!(
            "label {label:?} is longer than {MAX_LABEL} characters"
        ));
    }
    if let Some(c) = label
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
    {
        return Err(format!("invalid character {c:?}"));
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(format!("label {label:?} starts or ends with \"-\""));
    }
    Ok(())
}

/// A `mailto:` contact with one plain address (what Let's Encrypt accepts).
fn mailto(text: &str) -> Result<(), String> {
    let Some(address) = text
        .get(..7)
        .filter(|scheme| scheme.eq_ignore_ascii_case("mailto:"))
        .map(|_| &text[7..])
    else {
        return Err(format!(
            "{text:?}: expected a mailto: URL such as \"mailto:ops@example.com\""
        ));
    };
    let bad = |why: &str| Err(format!("{text:?}: {why}"));
    if address
        .chars()
        .any(|c| c.is_whitespace() || ",?<>;".contains(c))
    {
        return bad("one plain address only (no spaces, \",\", \"?\" or \"<>\")");
    }
    let Some((local, domain)) = address.split_once('@') else {
        return bad("no \"@\" in the address");
    };
    if local.is_empty() || domain.contains('@') {
        return bad("not a plain address (user@domain)");
    }
    dns_name(&domain.to_ascii_lowercase()).map_err(|e| format!("{text:?}: the domain is {e}"))
}

/// The directory URL: `https://host[:port]/path`.
fn directory_url(text: &str) -> Result<(), String> {
    let uri: http::Uri = text
        .parse()
        .map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    if uri.scheme_str() != Some("https") {
        return Err(format!(
            "{text:?}: an ACME directory is an https:// URL (RFC 8555 §6.1)"
        ));
    }
    if uri.host().map_or(true, str::is_empty) {
        return Err(format!("{text:?}: no host"));
    }
    Ok(())
}

/// `external_account`: a key id and a base64url MAC key.
fn external_account(raw: file::ExternalAccountFile) -> Result<ExternalAccount, String> {
    if raw.key_id.is_empty() {
        return Err("key_id is empty".into());
    }
    let text = raw.hmac_key.trim_end_matches('=');
    let hmac_key = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|e| format!("hmac_key is not base64url ({e}); paste it as the CA gave it"))?;
    if hmac_key.is_empty() {
        return Err("hmac_key is empty".into());
    }
    Ok(ExternalAccount {
        key_id: raw.key_id,
        hmac_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_must_be_dns_names_a_challenge_can_prove() {
        let ok = [
            "chat.example.com",
            "Chat.Example.COM.",
            "a-b.c0.io",
            "xn--bcher-kva.example",
        ];
        for text in ok {
            assert!(domain(text, AcmeChallenge::TlsAlpn01).is_ok(), "{text}");
        }
        let bad = [
            ("", "not a DNS name"),
            ("localhost", "single label"),
            ("10.0.0.1", "IP address"),
            ("::1", "IP address"),
            ("*.example.com", "wildcard"),
            ("chat..example.com", "empty label"),
            ("-chat.example.com", "starts or ends"),
            ("chat_1.example.com", "invalid character '_'"),
            ("chat.example.com:443", "invalid character ':'"),
            ("https://chat.example.com", "invalid character ':'"),
            ("chat.123", "all digits"),
        ];
        for (text, why) in bad {
            let error = domain(text, AcmeChallenge::Http01).unwrap_err();
            assert!(error.contains(why), "{text:?}: {error}");
        }
        let long = format!("{}.example.com", "a".repeat(64));
        assert!(domain(&long, AcmeChallenge::Http01)
            .unwrap_err()
            .contains("longer than 63"));
    }

    #[test]
    fn a_wildcard_names_the_challenge_that_cannot_prove_it() {
        let error = domain("*.example.com", AcmeChallenge::Http01).unwrap_err();
        assert!(error.contains("http-01 cannot prove"), "{error}");
        let error = domain("*.example.com", AcmeChallenge::TlsAlpn01).unwrap_err();
        assert!(error.contains("tls-alpn-01 cannot prove"), "{error}");
    }

    #[test]
    fn contacts_are_plain_mailto_addresses() {
        for ok in ["mailto:ops@example.com", "MAILTO:a.b+c@mail.example.org"] {
            assert!(mailto(ok).is_ok(), "{ok}");
        }
        let bad = [
            ("ops@example.com", "expected a mailto: URL"),
            ("tel:+123", "expected a mailto: URL"),
            ("mailto:", "no \"@\""),
            ("mailto:@example.com", "not a plain address"),
            ("mailto:a@b@example.com", "not a plain address"),
            ("mailto:a@example.com,b@example.com", "one plain address"),
            ("mailto:a@example.com?subject=x", "one plain address"),
            ("mailto:ops@localhost", "single label"),
        ];
        for (text, why) in bad {
            let error = mailto(text).unwrap_err();
            assert!(error.contains(why), "{text:?}: {error}");
        }
    }

    #[test]
    fn the_directory_is_an_https_url() {
        assert!(directory_url(defaults::ACME_DIRECTORY).is_ok());
        assert!(directory_url("https://127.0.0.1:14000/dir").is_ok());
        for bad in [
            "http://acme.example/dir",
            "acme.example/dir",
            "not a url",
            "",
        ] {
            assert!(directory_url(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_external_account_key_is_base64url() {
        let raw = |key: &str| file::ExternalAccountFile {
            key_id: "kid-1".into(),
            hmac_key: key.into(),
        };
        let eab = external_account(raw(
            "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W",
        ))
        .unwrap();
        assert_eq!(eab.hmac_key.len(), 48);
        assert!(
            !format!("{eab:?}").contains("zWND"),
            "the key is never printed"
        );
        assert!(external_account(raw("not base64!"))
            .unwrap_err()
            .contains("base64url"));
        assert!(external_account(raw("")).is_err());
    }
}
