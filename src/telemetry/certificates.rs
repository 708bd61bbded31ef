//! `wsgate_certificate_expiry_seconds{name}`: when each certificate the
//! listeners hold expires. The certificate sets change under reloads and
//! ACME renewals, so the gauges are not pushed: every scrape asks each live
//! listener for what it holds now, and a listener that is gone (removed by
//! a reload) simply stops being asked.

use std::sync::{Mutex, Weak};

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use super::labels::NameLabel;

/// Something that serves certificates: a TLS listener's resolver.
pub trait ServedCertificates: Send + Sync {
    /// Each name of each certificate held, with its notAfter in seconds
    /// since the Unix epoch.
    fn expiries(&self) -> Vec<(String, i64)>;
}

/// The expiry gauges and the listeners they are read from.
#[derive(Debug, Default)]
pub(crate) struct CertificateGauges {
    /// One gauge per name: the earliest notAfter among the certificates
    /// held for it (two listeners may hold different ones).
    pub(crate) family: Family<NameLabel, Gauge>,
    /// The live listeners' resolvers.
    sources: Mutex<Vec<Weak<dyn ServedCertificates>>>,
}

impl std::fmt::Debug for dyn ServedCertificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServedCertificates")
    }
}

impl CertificateGauges {
    /// Reads `source` at every scrape from now on, while it lives.
    pub(crate) fn watch(&self, source: Weak<dyn ServedCertificates>) {
        self.sources
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(source);
    }

    /// Sets the gauges to what the live sources hold now.
    pub(crate) fn refresh(&self) {
        let mut sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        sources.retain(|s| s.strong_count() > 0);
        let mut earliest: std::collections::HashMap<String, i64> = Default::default();
        for source in sources.iter().filter_map(Weak::upgrade) {
            for (name, seconds) in source.expiries() {
                let entry = earliest.entry(name).or_insert(seconds);
                *entry = (*entry).min(seconds);
            }
        }
        self.family.clear();
        for (name, seconds) in earliest {
            self.family.get_or_create(&NameLabel { name }).set(seconds);
        }
    }
}
