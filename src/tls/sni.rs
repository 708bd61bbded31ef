//! Picks the certificate for a handshake from the client's SNI.
//!
//! Each certificate answers for the DNS names in its SAN extension; a
//! wildcard `*.example.com` covers exactly one label (`a.example.com`, not
//! `a.b.example.com` nor `example.com`), as RFC 6125 §6.4.3 and browsers
//! have it. The first certificate is the default when the client sends no
//! SNI or a name nothing covers, so IP-literal and legacy clients still get
//! an answer. The set sits behind a lock so a reload swaps it whole: a
//! handshake sees the old set or the new one, never a mix.

use std::sync::{Arc, RwLock};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// One certificate and the names it answers for.
#[derive(Debug)]
pub struct SniEntry {
    /// SAN DNS names, lower-cased.
    pub names: Vec<String>,
    /// The chain and key served for those names.
    pub key: Arc<CertifiedKey>,
}

/// The certificates of one listener, in config order.
#[derive(Debug)]
pub struct CertSet {
    /// Never empty; the first entry is the default.
    entries: Vec<SniEntry>,
}

impl CertSet {
    /// A set from entries in config order; `None` when there are none.
    pub fn new(entries: Vec<SniEntry>) -> Option<CertSet> {
        (!entries.is_empty()).then_some(CertSet { entries })
    }

    /// The certificate for `sni`: an exact name first, then a wildcard,
    /// else the default.
    pub fn pick(&self, sni: Option<&str>) -> &Arc<CertifiedKey> {
        let default = &self.entries[0].key;
        let Some(sni) = sni.map(|s| s.trim_end_matches('.').to_ascii_lowercase()) else {
            return default;
        };
        let exact = self.entries.iter().find(|e| e.names.contains(&sni));
        let wildcard = || {
            self.entries
                .iter()
                .find(|e| e.names.iter().any(|n| wildcard_matches(n, &sni)))
        };
        exact.or_else(wildcard).map_or(default, |e| &e.key)
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

/// The listener's `ResolvesServerCert`: the current [`CertSet`], swappable.
#[derive(Debug)]
pub struct SniResolver {
    /// Replaced whole on reload; handshakes in progress keep their `Arc`.
    current: RwLock<Arc<CertSet>>,
}

impl SniResolver {
    /// A resolver serving `set`.
    pub fn new(set: CertSet) -> Self {
        SniResolver {
            current: RwLock::new(Arc::new(set)),
        }
    }

    /// Serves `set` to every handshake from now on.
    pub fn replace(&self, set: CertSet) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(set);
    }

    /// The set new handshakes get.
    pub fn current(&self) -> Arc<CertSet> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current().pick(hello.server_name()).clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
