//! One task per domain: wait until something is due, do it, repeat.
//!
//! Due is one of two steps. *Order*: there is no certificate, or it is due
//! for renewal, or a failed order waits for its retry. *Ask ARI*: the CA's
//! renewal window (RFC 9773) should be fetched (again). An order runs
//! under the cache lock; a certificate that another process (a replica
//! sharing the cache) renewed meanwhile is adopted instead of ordering.
//! Failures wait `retry_backoff`, doubling up to an hour, with jitter.

use std::sync::Arc;
use std::time::SystemTime;

use instant_acme::{CertificateIdentifier, Error};
use tokio_util::sync::CancellationToken;

use super::account::account;
use super::cache::write_atomic;
use super::error::AcmeError;
use super::held::{Ari, Held};
use super::order::{order, OrderContext};
use super::schedule::{backoff, in_window, until, ARI_RECHECK, MAX_SLEEP};
use super::{lock, Inner};
use crate::tls::x509::utc_date;

/// What a domain's task does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Order a certificate (or adopt one from the cache).
    Order,
    /// Fetch the CA's renewal window.
    AskAri,
}

/// Keeps `domain` served until `stop` fires.
pub(super) async fn keep(acme: Arc<Inner>, domain: String, stop: CancellationToken) {
    // After a failed order: how many in a row, and when to try again.
    let mut retry: Option<(u32, SystemTime)> = None;
    loop {
        let (at, step) = match retry {
            Some((_, at)) => (at, Step::Order),
            None => acme.plan(&domain),
        };
        let wait = until(at, SystemTime::now());
        if !wait.is_zero() {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(wait.min(MAX_SLEEP)) => continue,
            }
        }
        let done = tokio::select! {
            () = stop.cancelled() => return,
            done = acme.step(&domain, step) => done,
        };
        retry = match done {
            Ok(()) => None,
            Err(error) => Some(acme.failed(&domain, &error, retry.map_or(1, |(n, _)| n + 1))),
        };
    }
}

impl Inner {
    /// When the next step for `domain` is due, and which.
    fn plan(&self, domain: &str) -> (SystemTime, Step) {
        let Some(held) = self.held(domain) else {
            return (SystemTime::now(), Step::Order);
        };
        let knob = self.settings.test_renew_after;
        let (renew_at, _) = held.renew_at(knob);
        match held.ari_due(knob) {
            Some(ask) if ask < renew_at => (ask, Step::AskAri),
            _ => (renew_at, Step::Order),
        }
    }

    /// Runs one step; only an order can fail.
    async fn step(&self, domain: &str, step: Step) -> Result<(), AcmeError> {
        match step {
            Step::Order => self.renew(domain).await,
            Step::AskAri => {
                self.ask_ari(domain).await;
                Ok(())
            }
        }
    }

    /// Logs and counts a failed order; returns the retry's count and time.
    fn failed(&self, domain: &str, error: &AcmeError, failures: u32) -> (u32, SystemTime) {
        self.metrics.acme_order("failed");
        let delay = backoff(self.settings.retry_backoff, failures, rand::random());
        let still = self.held(domain).map(|h| utc_date(h.not_after));
        tracing::error!(
            at = self.at,
            domain,
            %error,
            failures,
            retry_in = ?delay,
            serving_until = still.as_deref().unwrap_or("no certificate yet"),
            "ACME order failed"
        );
        (failures, SystemTime::now() + delay)
    }

    /// Orders a certificate for `domain` under the cache lock, unless the
    /// cache already holds a fresh one; then serves and keeps it.
    async fn renew(&self, domain: &str) -> Result<(), AcmeError> {
        let mut account_slot = self.account.lock().await;
        let client = self.client.clone().map_err(AcmeError::Local)?;
        // Without the lock (a broken cache) the order still goes ahead: a
        // name with no certificate matters more than a duplicate order.
        let _lock = match self.cache.lock().await {
            Ok(lock) => Some(lock),
            Err(e) => {
                tracing::error!(at = self.at, domain, error = %e, "cannot take the ACME cache lock; ordering without it");
                None
            }
        };
        if self.adopt(domain) {
            return Ok(());
        }
        let account = match account_slot.as_ref() {
            Some(account) => account.clone(),
            None => {
                let loaded = account(&self.settings, &self.cache, &client, &self.at).await?;
                account_slot.insert(loaded).clone()
            }
        };
        let ctx = OrderContext {
            challenge: self.settings.challenge,
            challenges: &self.challenges,
            cache: &self.cache,
            at: &self.at,
        };
        let pem = order(&account, domain, self.replaces(domain), &ctx).await?;
        let held = Held::parse(pem.as_bytes(), domain, SystemTime::now())
            .map_err(|e| AcmeError::Refused(format!("the certificate issued is unusable: {e}")))?;
        self.metrics.acme_order("issued");
        tracing::info!(at = self.at, domain, serial = %held.serial, expires = %utc_date(held.not_after), "ACME certificate issued");
        let path = self.cache.cert_path(domain);
        if let Err(e) = self
            .cache
            .create()
            .and_then(|()| write_atomic(&path, pem.as_bytes()))
        {
            tracing::error!(at = self.at, domain, error = %e, "cannot keep the ACME certificate in the cache; serving it anyway, a restart will order again");
        }
        self.install(domain, held);
        Ok(())
    }

    /// Serves the cache's certificate for `domain` if another process put
    /// a different one there that is not yet due; says whether it did.
    fn adopt(&self, domain: &str) -> bool {
        let path = self.cache.cert_path(domain);
        let Ok(Some(bytes)) = super::cache::Cache::read(&path) else {
            return false;
        };
        let Ok(cached) = Held::parse(&bytes, domain, SystemTime::now()) else {
            return false;
        };
        let current = self.held(domain).map(|h| h.serial);
        let due = cached.renew_at(self.settings.test_renew_after).0 <= SystemTime::now();
        if current.as_deref() == Some(cached.serial.as_str()) || due {
            return false;
        }
        tracing::info!(at = self.at, domain, serial = %cached.serial, "ACME certificate renewed by another process; using it from the cache");
        self.install(domain, cached);
        true
    }

    /// Serves `held` for `domain` from the next handshake on.
    fn install(&self, domain: &str, held: Held) {
        self.log_next_renewal(domain, &held);
        lock(&self.held).insert(domain.to_owned(), held);
        self.publish();
    }

    /// The ARI identifier of the certificate being replaced, when the CA
    /// told us its window (so it supports ARI).
    fn replaces(&self, domain: &str) -> Option<CertificateIdentifier<'static>> {
        let held = self.held(domain)?;
        if !matches!(held.ari, Ari::Suggested { .. }) {
            return None;
        }
        CertificateIdentifier::try_from(&held.leaf)
            .ok()
            .map(|id| id.into_owned())
    }

    /// Fetches the CA's renewal window for `domain`'s certificate.
    async fn ask_ari(&self, domain: &str) {
        let Some(held) = self.held(domain) else {
            return;
        };
        let ari = self.fetch_ari(&held).await;
        let mut all = lock(&self.held);
        let Some(current) = all.get_mut(domain).filter(|h| h.serial == held.serial) else {
            return;
        };
        current.ari = ari;
        let current = current.clone();
        drop(all);
        match ari {
            Ari::Suggested { .. } => self.log_next_renewal(domain, &current),
            Ari::Unsupported => tracing::info!(
                at = self.at,
                domain,
                "the CA offers no renewal information (ARI); renewing two thirds into the lifetime"
            ),
            Ari::Unasked | Ari::RetryAt(_) => {}
        }
    }

    /// What the CA's ARI endpoint says about `held`.
    async fn fetch_ari(&self, held: &Held) -> Ari {
        let now = SystemTime::now();
        let retry = Ari::RetryAt(now + ARI_RECHECK.0);
        let Ok(id) = CertificateIdentifier::try_from(&held.leaf) else {
            return Ari::Unsupported;
        };
        let account = {
            let mut slot = self.account.lock().await;
            let Ok(client) = self.client.clone() else {
                return Ari::Unsupported;
            };
            if slot.is_none() {
                match account(&self.settings, &self.cache, &client, &self.at).await {
                    Ok(loaded) => *slot = Some(loaded),
                    Err(e) => {
                        tracing::warn!(at = self.at, error = %e, "cannot ask the CA for renewal windows yet");
                        return retry;
                    }
                }
            }
            slot.clone().expect("loaded above")
        };
        match account.renewal_info(&id).await {
            Ok((info, recheck)) => {
                let window = info.suggested_window;
                let (start, end) = (window.start.unix_timestamp(), window.end.unix_timestamp());
                let renew_at = in_window(unix(start), unix(end), rand::random(), now);
                let recheck = recheck.clamp(ARI_RECHECK.0, ARI_RECHECK.1);
                Ari::Suggested {
                    renew_at,
                    recheck_at: now + recheck,
                }
            }
            Err(Error::Unsupported(_)) => Ari::Unsupported,
            Err(e) => {
                tracing::warn!(at = self.at, error = %AcmeError::from(e), "cannot fetch the CA's renewal window");
                retry
            }
        }
    }
}

/// A Unix timestamp as a `SystemTime` (never before the epoch).
fn unix(seconds: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(seconds.max(0) as u64)
}
