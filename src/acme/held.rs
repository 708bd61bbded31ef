//! A certificate in service for one domain, and when it is due: the key
//! and chain read from the cache (or just issued, in the same PEM form),
//! checked to belong together and to name the domain, and the renewal
//! plan — the test knob, else the CA's ARI window, else two thirds.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::schedule::two_thirds;
use crate::tls::pem::provider;
use crate::tls::sni::AcmeCert;
use crate::tls::x509::facts;

/// What the CA's renewal information (RFC 9773) says about a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ari {
    /// Not asked yet.
    Unasked,
    /// The CA has no ARI (or the certificate no identifier for it).
    Unsupported,
    /// Asking failed; ask again then.
    RetryAt(SystemTime),
    /// Renew at `renew_at`, a point in the CA's window; ask again at `recheck_at`.
    Suggested {
        /// The chosen point in the window.
        renew_at: SystemTime,
        /// When the CA wants to be asked again.
        recheck_at: SystemTime,
    },
}

/// A certificate in service.
#[derive(Debug, Clone)]
pub(crate) struct Held {
    /// The chain and key rustls serves.
    pub(crate) key: Arc<CertifiedKey>,
    /// The leaf, for the ARI certificate identifier.
    pub(crate) leaf: CertificateDer<'static>,
    /// Start of validity.
    pub(crate) not_before: SystemTime,
    /// End of validity; not served after it.
    pub(crate) not_after: SystemTime,
    /// Serial number in hex, for logs.
    pub(crate) serial: String,
    /// When it entered service here (for `test_renew_after`).
    pub(crate) since: SystemTime,
    /// The CA's renewal information.
    pub(crate) ari: Ari,
}

/// Why a certificate is due when it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Basis {
    /// `test_renew_after` after it entered service.
    TestKnob,
    /// A point in the CA's ARI window.
    Ari,
    /// Two thirds into its lifetime.
    TwoThirds,
}

impl Basis {
    /// How the log line names it.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Basis::TestKnob => "test_renew_after",
            Basis::Ari => "the CA's renewal window (ARI)",
            Basis::TwoThirds => "two thirds of its lifetime",
        }
    }
}

impl Held {
    /// Parses a private key followed by its chain (leaf first) and checks
    /// that they belong together and that the leaf names `domain`.
    pub(crate) fn parse(pem: &[u8], domain: &str, now: SystemTime) -> Result<Held, String> {
        let key = PrivateKeyDer::from_pem_slice(pem).map_err(|e| format!("no private key: {e}"))?;
        let chain = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("invalid certificate PEM: {e}"))?;
        let leaf = chain.first().cloned().ok_or("no certificate")?;
        let facts = facts(&leaf)?;
        if !facts.dns_names.iter().any(|n| n == domain) {
            return Err(format!("the certificate is not for {domain}"));
        }
        let key = CertifiedKey::from_der(chain, key, &provider())
            .map_err(|e| format!("the key does not fit the certificate: {e}"))?;
        Ok(Held {
            key: Arc::new(key),
            leaf,
            not_before: facts.not_before,
            not_after: facts.not_after,
            serial: facts.serial,
            since: now,
            ari: Ari::Unasked,
        })
    }

    /// When it is due, and why: `test_renew_after` wins, then ARI, then
    /// two thirds.
    pub(crate) fn renew_at(&self, test_renew_after: Option<Duration>) -> (SystemTime, Basis) {
        if let Some(after) = test_renew_after {
            return (self.since + after, Basis::TestKnob);
        }
        match self.ari {
            Ari::Suggested { renew_at, .. } => (renew_at, Basis::Ari),
            _ => (
                two_thirds(self.not_before, self.not_after),
                Basis::TwoThirds,
            ),
        }
    }

    /// When to ask the CA's ARI endpoint next, if ever.
    pub(crate) fn ari_due(&self, test_renew_after: Option<Duration>) -> Option<SystemTime> {
        if test_renew_after.is_some() {
            return None;
        }
        match self.ari {
            Ari::Unasked => Some(self.since),
            Ari::Unsupported => None,
            Ari::RetryAt(at) | Ari::Suggested { recheck_at: at, .. } => Some(at),
        }
    }

    /// As the resolver serves it.
    pub(crate) fn served(&self) -> AcmeCert {
        AcmeCert {
            key: self.key.clone(),
            not_after: self.not_after,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate for `names`, as key + chain PEM.
    fn pem(names: &[&str]) -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let names = names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let cert = rcgen::CertificateParams::new(names)
            .unwrap()
            .self_signed(&key)
            .unwrap();
        format!("{}{}", key.serialize_pem(), cert.pem())
    }

    #[test]
    fn a_cached_pair_must_fit_together_and_name_the_domain() {
        let now = SystemTime::now();
        let held = Held::parse(
            pem(&["chat.example.com"]).as_bytes(),
            "chat.example.com",
            now,
        )
        .unwrap();
        assert!(held.not_after > now && !held.serial.is_empty());
        let error = Held::parse(
            pem(&["other.example.com"]).as_bytes(),
            "chat.example.com",
            now,
        )
        .unwrap_err();
        assert!(error.contains("not for chat.example.com"), "{error}");
        let (a, b) = (pem(&["chat.example.com"]), pem(&["chat.example.com"]));
        let key_of_a = &a[..a.find("-----BEGIN CERTIFICATE").unwrap()];
        let cert_of_b = &b[b.find("-----BEGIN CERTIFICATE").unwrap()..];
        let mixed = format!("{key_of_a}{cert_of_b}");
        let error = Held::parse(mixed.as_bytes(), "chat.example.com", now).unwrap_err();
        assert!(error.contains("does not fit"), "{error}");
        for garbage in [
            "",
            "not pem",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        ] {
            assert!(
                Held::parse(garbage.as_bytes(), "chat.example.com", now).is_err(),
                "{garbage:?}"
            );
        }
    }

    #[test]
    fn the_test_knob_then_ari_then_two_thirds() {
        let now = SystemTime::now();
        let mut held =
            Held::parse(pem(&["a.example.com"]).as_bytes(), "a.example.com", now).unwrap();
        let knob = Some(Duration::from_secs(2));
        assert_eq!(
            held.renew_at(knob),
            (now + Duration::from_secs(2), Basis::TestKnob)
        );
        assert_eq!(held.ari_due(knob), None, "the knob asks no CA");
        assert_eq!(held.renew_at(None).1, Basis::TwoThirds);
        assert_eq!(held.ari_due(None), Some(now), "asked at once");
        let renew_at = now + Duration::from_secs(60);
        held.ari = Ari::Suggested {
            renew_at,
            recheck_at: now + Duration::from_secs(3600),
        };
        assert_eq!(held.renew_at(None), (renew_at, Basis::Ari));
        held.ari = Ari::Unsupported;
        assert_eq!(held.ari_due(None), None);
    }
}
