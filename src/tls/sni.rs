//! Picks the certificate for a handshake from the client's SNI.
//!
//! A listener has two sets: the certificates of its files (and the
//! self-signed one), swapped whole by file reloads, and those ACME obtained
//! for its `acme.domains`, swapped whole by the ACME driver. Each swap is
//! one pointer store, so a handshake sees the old set or the new one, never
//! a mix; open connections keep the session they negotiated.
//!
//! For a name sent by SNI (lower-cased, trailing dot ignored):
//!
//! 1. a file certificate whose SAN has the exact name;
//! 2. the ACME certificate for that name, while it has not expired;
//! 3. a file certificate whose SAN wildcard covers it: `*.example.com`
//!    covers exactly one label (`a.example.com`, not `a.b.example.com` nor
//!    `example.com`), as RFC 6125 §6.4.3 and browsers have it;
//! 4. an ACME name still waiting for its certificate gets the self-signed
//!    certificate when there is one, else no certificate (a TLS alert);
//! 5. anything else gets the default: the first file certificate, else
//!    the self-signed one, else a TLS alert.
//!
//! Without SNI (IP-literal and legacy clients) the default is served, or
//! on an ACME-only listener the first ACME certificate issued.
//!
//! A TLS-ALPN-01 validation handshake (ALPN `acme-tls/1` only) gets the
//! validation certificate of a pending challenge instead, or an alert.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::telemetry::certificates::ServedCertificates;
use crate::tls::challenge::{self, ValidationCerts};
use crate::tls::x509::{facts, subject};

/// One certificate and the names it answers for.
#[derive(Debug)]
pub struct SniEntry {
    /// SAN DNS names, lower-cased.
    pub names: Vec<String>,
    /// The chain and key served for those names.
    pub key: Arc<CertifiedKey>,
}

/// The certificates of a listener's files, in config order, then the
/// self-signed one; empty on a listener that has only ACME.
#[derive(Debug, Default)]
pub struct CertSet {
    /// The first entry is the default.
    entries: Vec<SniEntry>,
    /// The self-signed certificate (also the last entry), which a name
    /// still waiting for its ACME certificate is served.
    self_signed: Option<Arc<CertifiedKey>>,
}

impl CertSet {
    /// A set from file entries in config order.
    pub fn new(entries: Vec<SniEntry>) -> CertSet {
        CertSet {
            entries,
            self_signed: None,
        }
    }

    /// Adds the self-signed certificate after the files.
    pub fn with_self_signed(mut self, entry: SniEntry) -> CertSet {
        self.self_signed = Some(entry.key.clone());
        self.entries.push(entry);
        self
    }

    /// Whether the set holds no certificate at all.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The certificate served when nothing else matches.
    fn default(&self) -> Option<&Arc<CertifiedKey>> {
        self.entries.first().map(|e| &e.key)
    }

    /// A certificate with exactly `name` in its SAN.
    fn exact(&self, name: &str) -> Option<&Arc<CertifiedKey>> {
        let entry = self
            .entries
            .iter()
            .find(|e| e.names.iter().any(|n| n == name));
        entry.map(|e| &e.key)
    }

    /// A certificate whose SAN wildcard covers `name`.
    fn wildcard(&self, name: &str) -> Option<&Arc<CertifiedKey>> {
        let entry = self
            .entries
            .iter()
            .find(|e| e.names.iter().any(|n| wildcard_matches(n, name)));
        entry.map(|e| &e.key)
    }
}

/// Whether `pattern` (`*.example.com`) covers `name` by exactly one label.
fn wildcard_matches(pattern: &str, name: &str) -> bool {
    let Some(parent) = pattern.strip_prefix("*.") else {
        return false;
    };
    match name.split_once('.') {
        Some((label, rest)) => !label.is_empty() && rest == parent,
        None => false,
    }
}

/// A certificate ACME obtained for one domain.
#[derive(Debug, Clone)]
pub struct AcmeCert {
    /// The chain and key.
    pub key: Arc<CertifiedKey>,
    /// When it expires; it is not served after that.
    pub not_after: SystemTime,
}

/// The ACME certificates of a listener.
#[derive(Debug, Default)]
pub struct AcmeCerts {
    /// Every domain the listener manages, issued or not, in config order.
    pub domains: Vec<String>,
    /// The certificates obtained so far, by domain.
    pub issued: HashMap<String, AcmeCert>,
}

impl AcmeCerts {
    /// The unexpired certificate for `name`.
    fn valid(&self, name: &str, now: SystemTime) -> Option<&Arc<CertifiedKey>> {
        let cert = self.issued.get(name).filter(|c| c.not_after > now)?;
        Some(&cert.key)
    }

    /// The first domain's unexpired certificate, in config order.
    fn first(&self, now: SystemTime) -> Option<&Arc<CertifiedKey>> {
        self.domains.iter().find_map(|d| self.valid(d, now))
    }
}

/// The listener's `ResolvesServerCert`: both sets, each swappable.
#[derive(Debug)]
pub struct SniResolver {
    /// Replaced whole on file reload; handshakes in progress keep their `Arc`.
    current: RwLock<Arc<CertSet>>,
    /// Replaced whole by the ACME driver.
    acme: RwLock<Arc<AcmeCerts>>,
    /// Where TLS-ALPN-01 validation handshakes get their certificate.
    validation: Option<Arc<dyn ValidationCerts>>,
}

impl SniResolver {
    /// A resolver serving `set`, answering no validation handshake.
    pub fn new(set: CertSet) -> Self {
        SniResolver {
            current: RwLock::new(Arc::new(set)),
            acme: RwLock::default(),
            validation: None,
        }
    }

    /// Answers TLS-ALPN-01 validation handshakes from `validation`.
    pub fn with_validation(mut self, validation: Arc<dyn ValidationCerts>) -> Self {
        self.validation = Some(validation);
        self
    }

    /// Serves `set` as the file certificates from now on.
    pub fn replace(&self, set: CertSet) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(set);
    }

    /// Serves `certs` as the ACME certificates from now on.
    pub fn replace_acme(&self, certs: AcmeCerts) {
        *self.acme.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(certs);
    }

    /// The file certificates new handshakes get.
    pub fn current(&self) -> Arc<CertSet> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The ACME certificates new handshakes get.
    pub fn acme(&self) -> Arc<AcmeCerts> {
        self.acme.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The certificate for `sni` at `now`, by the rules of the module doc.
    pub fn choose(&self, sni: Option<&str>, now: SystemTime) -> Option<Arc<CertifiedKey>> {
        let (files, acme) = (self.current(), self.acme());
        let Some(name) = sni.map(normalize) else {
            return files.default().or_else(|| acme.first(now)).cloned();
        };
        let chosen = files
            .exact(&name)
            .or_else(|| acme.valid(&name, now))
            .or_else(|| files.wildcard(&name));
        match chosen {
            Some(key) => Some(key.clone()),
            None if acme.domains.contains(&name) => files.self_signed.clone(),
            None => files.default().cloned(),
        }
    }
}

/// An SNI name as matched: lower-cased, without a trailing dot.
fn normalize(sni: &str) -> String {
    sni.trim_end_matches('.').to_ascii_lowercase()
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if challenge::is_validation(&hello) {
            let name = normalize(hello.server_name()?);
            return self.validation.as_ref()?.validation_cert(&name);
        }
        self.choose(hello.server_name(), SystemTime::now())
    }
}

impl ServedCertificates for SniResolver {
    /// Every name of every certificate held (a certificate without a DNS
    /// name under its subject), with its notAfter in Unix seconds.
    fn expiries(&self) -> Vec<(String, i64)> {
        let mut out = Vec::new();
        for entry in &self.current().entries {
            let Some(leaf) = entry.key.cert.first() else {
                continue;
            };
            let Ok(facts) = facts(leaf) else { continue };
            let seconds = unix_seconds(facts.not_after);
            match facts.dns_names.is_empty() {
                true => out.extend(subject(leaf).map(|s| (s, seconds))),
                false => out.extend(facts.dns_names.into_iter().map(|n| (n, seconds))),
            }
        }
        let acme = self.acme();
        for (name, cert) in &acme.issued {
            out.push((name.clone(), unix_seconds(cert.not_after)));
        }
        out
    }
}

/// `t` as seconds since the Unix epoch.
fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

#[cfg(test)]
mod tests;
