//! Automatic certificates (ACME, RFC 8555) for a TLS listener's
//! `[listeners.tls.acme]` domains, fed into the listener's SNI resolver.
//!
//! The CA is never waited for: a listener serves from its first moment,
//! with the certificates the cache holds (used at once after a restart,
//! no order placed); a name without one gets the self-signed certificate
//! or a TLS alert until its certificate arrives, and is served from the
//! next handshake on. Each domain has its own certificate and its own
//! background task, which renews it when due, swaps the new one in through
//! the resolver (open connections keep theirs), and retries failures with
//! exponential back-off; a valid certificate stays served until it expires.
//!
//! ```text
//! driver     per domain: wait until due, order (or adopt a replica's renewal), back off
//! held       a certificate in service and when it is due
//! order      one order: challenge, CSR, chain
//! account    the account: from the cache, or registered
//! challenge  pending challenges, answered on any listener (and shared through the cache)
//! client     HTTPS to the CA
//! cache      the cache directory: layout, lock, whole-file writes
//! schedule   renewal times and back-off
//! error      failures worded for the operator
//! ```

mod account;
mod cache;
pub mod challenge;
mod client;
mod driver;
mod error;
mod held;
mod order;
mod schedule;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use instant_acme::Account;
use tokio_util::sync::CancellationToken;

use crate::config::AcmeSettings;
use crate::telemetry::metrics::Metrics;
use crate::tls::pem::read_roots;
use crate::tls::sni::{AcmeCerts, SniResolver};
use crate::tls::x509::utc_date;
use cache::Cache;
use challenge::Challenges;
use client::CaClient;
use held::Held;

/// The ACME certificates of one TLS listener.
#[derive(Debug)]
pub struct Acme {
    inner: Arc<Inner>,
}

/// What the listener's domain tasks share.
struct Inner {
    /// `[listeners.tls.acme]`.
    settings: AcmeSettings,
    /// Its key path (`listeners[0].tls.acme`), in every log line.
    at: String,
    /// The cache directory.
    cache: Cache,
    /// HTTPS to the CA, or why it cannot be built (`directory_ca`).
    client: Result<CaClient, String>,
    /// Where challenge answers are published.
    challenges: Arc<Challenges>,
    /// `wsgate_acme_orders_total`.
    metrics: Arc<Metrics>,
    /// The certificates in service, by domain.
    held: Mutex<HashMap<String, Held>>,
    /// The listener's resolver, once started.
    resolver: OnceLock<Arc<SniResolver>>,
    /// The account once loaded; held while ordering, so this listener
    /// places one order at a time.
    account: tokio::sync::Mutex<Option<Account>>,
}

impl Acme {
    /// Prepares the certificates of `settings` (at key path `at`): creates
    /// the cache and loads what it holds, without reaching the CA.
    pub fn new(
        settings: &AcmeSettings,
        at: &str,
        challenges: Arc<Challenges>,
        metrics: Arc<Metrics>,
    ) -> Acme {
        let cache = Cache::new(settings);
        if let Err(e) = cache.create() {
            tracing::error!(at, error = %e, "ACME cache unusable; certificates will be ordered but not kept");
        }
        if let Some(warning) = cache.exposure() {
            tracing::warn!(at, "{warning}");
        }
        if let Some(after) = settings.test_renew_after {
            tracing::warn!(
                at,
                ?after,
                "test_renew_after is set: certificates are renewed far too often for a real CA"
            );
        }
        challenges.share(cache.root());
        let inner = Inner {
            held: Mutex::new(load_cached(settings, &cache, at)),
            client: CaClient::new(settings),
            settings: settings.clone(),
            at: at.to_owned(),
            cache,
            challenges,
            metrics,
            resolver: OnceLock::new(),
            account: tokio::sync::Mutex::new(None),
        };
        Acme {
            inner: Arc::new(inner),
        }
    }

    /// Serves the cached certificates through `resolver` now, and starts
    /// one task per domain, all ending when `stop` fires.
    pub fn start(self, resolver: Arc<SniResolver>, stop: CancellationToken) {
        let _ = self.inner.resolver.set(resolver);
        self.inner.publish();
        for domain in &self.inner.settings.domains {
            if let Some(held) = self.inner.held(domain) {
                self.inner.log_next_renewal(domain, &held);
            }
            let task = driver::keep(self.inner.clone(), domain.clone(), stop.clone());
            tokio::spawn(task);
        }
    }
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acme")
            .field("at", &self.at)
            .field("domains", &self.settings.domains)
            .finish_non_exhaustive()
    }
}

impl Inner {
    /// The certificate in service for `domain`.
    fn held(&self, domain: &str) -> Option<Held> {
        lock(&self.held).get(domain).cloned()
    }

    /// Hands the certificates in service to the resolver.
    fn publish(&self) {
        let Some(resolver) = self.resolver.get() else {
            return;
        };
        let issued = lock(&self.held)
            .iter()
            .map(|(domain, held)| (domain.clone(), held.served()))
            .collect();
        resolver.replace_acme(AcmeCerts {
            domains: self.settings.domains.clone(),
            issued,
        });
    }

    /// Logs when `domain`'s certificate will be renewed, and why then.
    fn log_next_renewal(&self, domain: &str, held: &Held) {
        let (at, basis) = held.renew_at(self.settings.test_renew_after);
        tracing::info!(
            at = self.at,
            domain,
            renew_at = %utc_date(at),
            expires = %utc_date(held.not_after),
            basis = basis.label(),
            "ACME next renewal"
        );
    }
}

/// The unexpired certificates the cache holds for `settings`' domains;
/// a file that does not parse is reported and replaced by the next order.
fn load_cached(settings: &AcmeSettings, cache: &Cache, at: &str) -> HashMap<String, Held> {
    let now = SystemTime::now();
    let mut held = HashMap::new();
    for domain in &settings.domains {
        let path = cache.cert_path(domain);
        let parsed = Cache::read(&path)
            .and_then(|bytes| bytes.map(|b| Held::parse(&b, domain, now)).transpose());
        match parsed {
            Ok(Some(cert)) if cert.not_after > now => {
                tracing::info!(at, domain, serial = %cert.serial, expires = %utc_date(cert.not_after), "ACME certificate loaded from the cache");
                held.insert(domain.clone(), cert);
            }
            Ok(Some(_)) => tracing::info!(
                at,
                domain,
                "cached ACME certificate has expired; ordering a new one"
            ),
            Ok(None) => {}
            Err(e) => {
                tracing::error!(at, domain, file = %path.display(), error = %e, "cached ACME certificate unusable; ordering a new one")
            }
        }
    }
    held
}

/// What `wsgate check` verifies of `settings` at key path `at` without
/// reaching the CA: the cache directory is usable and `directory_ca`
/// loads. Every message starts with its key path.
pub fn check(settings: &AcmeSettings, at: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if let Err(e) = cache::usable(&settings.cache) {
        errors.push(format!("{at}.cache: {e}"));
    }
    if let Some(ca) = &settings.directory_ca {
        if let Err(e) = read_roots(ca) {
            errors.push(format!("{at}.directory_ca: {e}"));
        }
    }
    errors
}

/// Locks a mutex, surviving a panic elsewhere.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
