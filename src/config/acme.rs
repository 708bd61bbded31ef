//! Runtime ACME settings of a TLS listener, `[listeners.tls.acme]`: which
//! names get automatic certificates, from which CA, proven how, and where
//! the account and certificates are kept. Only the `acme` layer reads them.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::file::defaults;

/// Let's Encrypt's production directory, the default `directory`.
pub const LETS_ENCRYPT: &str = defaults::ACME_DIRECTORY;

/// Let's Encrypt's staging directory: untrusted certificates, generous rate
/// limits; for trying a set-up out.
pub const LETS_ENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

/// The shortest `retry_backoff` accepted: even a test CA is not retried
/// in a tight loop.
pub const MIN_RETRY_BACKOFF: Duration = Duration::from_millis(100);

/// `[listeners.tls.acme]`.
#[derive(Debug, Clone, PartialEq)]
pub struct AcmeSettings {
    /// DNS names, lower-cased, each getting its own certificate; never a
    /// wildcard (neither challenge below can prove one).
    pub domains: Vec<String>,
    /// `mailto:` URLs the CA may write to about the account.
    pub contact: Vec<String>,
    /// The CA's directory URL (`https://`).
    pub directory: String,
    /// An extra CA (PEM) trusted for the directory's HTTPS, besides the
    /// public web PKI: private ACME servers and tests.
    pub directory_ca: Option<PathBuf>,
    /// How the CA checks that we control a name.
    pub challenge: AcmeChallenge,
    /// Directory holding the account key and the certificates (mode 0700).
    pub cache: PathBuf,
    /// External account binding (RFC 8555 §7.3.4), for CAs that need one.
    pub external_account: Option<ExternalAccount>,
    /// The first wait after a failed order; doubles per further failure.
    pub retry_backoff: Duration,
    /// Test only: a certificate counts as due this long after it entered
    /// service, instead of two thirds into its lifetime.
    pub test_renew_after: Option<Duration>,
}

impl AcmeSettings {
    /// Settings for `domains` with every other key at its default, e.g. for
    /// a command line that names only the domains. The domains are taken as
    /// given: run the result through `wsgate check` (or build the TOML table
    /// instead) to have them validated.
    pub fn for_domains(domains: Vec<String>) -> AcmeSettings {
        AcmeSettings {
            domains: domains.iter().map(|d| d.to_ascii_lowercase()).collect(),
            contact: Vec::new(),
            directory: defaults::ACME_DIRECTORY.to_owned(),
            directory_ca: None,
            challenge: AcmeChallenge::TlsAlpn01,
            cache: PathBuf::from(defaults::ACME_CACHE),
            external_account: None,
            retry_backoff: defaults::ACME_RETRY_BACKOFF,
            test_renew_after: None,
        }
    }
}

/// `challenge`: how control of a name is proven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcmeChallenge {
    /// RFC 8737: the CA opens TLS to port 443 with ALPN `acme-tls/1`; the
    /// TLS listener answers with a validation certificate.
    TlsAlpn01,
    /// RFC 8555 §8.3: the CA fetches `http://NAME/.well-known/acme-challenge/TOKEN`
    /// on port 80; a plain listener answers.
    Http01,
}

impl AcmeChallenge {
    /// The name in the config and in the ACME protocol.
    pub fn name(self) -> &'static str {
        match self {
            AcmeChallenge::TlsAlpn01 => "tls-alpn-01",
            AcmeChallenge::Http01 => "http-01",
        }
    }
}

/// `external_account = { key_id, hmac_key }`: the binding a CA such as
/// ZeroSSL or a private CA hands out with an account.
#[derive(Clone, PartialEq, Eq)]
pub struct ExternalAccount {
    /// The key identifier (`kid`).
    pub key_id: String,
    /// The MAC key, decoded from its base64url text.
    pub hmac_key: Vec<u8>,
}

impl fmt::Debug for ExternalAccount {
    /// Never prints the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExternalAccount")
            .field("key_id", &self.key_id)
            .field("hmac_key", &"<redacted>")
            .finish()
    }
}
