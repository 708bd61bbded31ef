//! Builds a listener's file certificate set from its config, judging every
//! certificate the same way at start-up, in `wsgate check` and on reload:
//! unreadable files, mismatched keys, empty chains and expired certificates
//! are errors; a certificate expiring within [`EXPIRY_WARNING`] is a warning.
//! Every message starts with the key path (`listeners[0].tls.certs[1].cert`).
//!
//! [`EXPIRY_WARNING`]: crate::tls::x509::EXPIRY_WARNING

use std::sync::Arc;
use std::time::SystemTime;

use crate::config::{CertPair, ListenerTls};
use crate::tls::dev;
use crate::tls::pem::{load_pair, PairPart};
use crate::tls::sni::{CertSet, SniEntry};
use crate::tls::x509::{expiry, facts, Expiry};

/// The outcome of loading: the set, or every error; warnings either way.
#[derive(Debug)]
pub struct Loaded {
    /// The certificates, when every one loaded.
    pub set: Option<CertSet>,
    /// Problems that refuse the listener, each with its key path.
    pub errors: Vec<String>,
    /// Problems worth an operator's attention (certificate expiring soon).
    pub warnings: Vec<String>,
}

/// Loads every certificate of a listener; `at` is its key path
/// (`listeners[0].tls`).
pub fn load_certs(tls: &ListenerTls, at: &str) -> Loaded {
    let mut loaded = Loaded {
        set: None,
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    let mut entries = Vec::new();
    for (i, pair) in tls.certs.iter().enumerate() {
        let path = format!("{at}.certs[{i}]");
        match load_entry(pair, &path, &mut loaded.warnings) {
            Ok(entry) => entries.push(entry),
            Err(error) => loaded.errors.push(error),
        }
    }
    let mut set = CertSet::new(entries);
    if tls.self_signed {
        match self_signed_entry() {
            Ok(entry) => set = set.with_self_signed(entry),
            Err(e) => loaded.errors.push(format!("{at}.self_signed: {e}")),
        }
    }
    // An ACME-only listener starts with no certificate: its names are
    // served as their certificates arrive.
    if set.is_empty() && tls.acme.is_none() && loaded.errors.is_empty() {
        loaded.errors.push(format!(
            "{at}.certs: at least one certificate (or self_signed = true, or [listeners.tls.acme]) is required"
        ));
    }
    if loaded.errors.is_empty() {
        loaded.set = Some(set);
    }
    loaded
}

/// Loads and judges one pair; `path` is its key path.
fn load_entry(pair: &CertPair, path: &str, warnings: &mut Vec<String>) -> Result<SniEntry, String> {
    let key = load_pair(pair).map_err(|(part, e)| format!("{path}.{}: {e}", part.key_name()))?;
    let cert_path = format!("{path}.{}", PairPart::Cert.key_name());
    let leaf =
        facts(&key.cert[0]).map_err(|e| format!("{cert_path}: {}: {e}", pair.cert.display()))?;
    match expiry(leaf.not_after, SystemTime::now()) {
        Expiry::Fine => {}
        Expiry::Soon(m) => warnings.push(format!("{cert_path}: {}: {m}", pair.cert.display())),
        Expiry::Expired(m) => return Err(format!("{cert_path}: {}: {m}", pair.cert.display())),
    }
    Ok(SniEntry {
        names: leaf.dns_names,
        key: Arc::new(key),
    })
}

/// A freshly generated development certificate as a set entry.
fn self_signed_entry() -> Result<SniEntry, String> {
    let cert = dev::generate()?;
    let names = dev::DEV_NAMES
        .iter()
        .filter(|n| n.parse::<std::net::IpAddr>().is_err())
        .map(|n| n.to_string())
        .collect();
    Ok(SniEntry {
        names,
        key: Arc::new(cert.certified_key()?),
    })
}
