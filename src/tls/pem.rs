//! Reading PEM files into rustls types, with errors that name the file.
//!
//! Uses `rustls-pki-types`' `PemObject` (the maintained successor of
//! `rustls-pemfile`). Keys may be PKCS#8, PKCS#1 (RSA) or SEC1 (EC); chains
//! are read whole, leaf first. A key is only accepted together with the
//! certificate it belongs to, so a mismatched pair fails at load time
//! instead of at the first handshake.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::CertPair;

/// Which of a pair's two files a load error is about, so the caller can
/// name the right key (`certs[1].cert` or `certs[1].key`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairPart {
    /// The certificate chain file.
    Cert,
    /// The private key file.
    Key,
}

impl PairPart {
    /// The config key of this part.
    pub fn key_name(self) -> &'static str {
        match self {
            PairPart::Cert => "cert",
            PairPart::Key => "key",
        }
    }
}

/// The crypto provider every TLS config of the gateway uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads a certificate chain (leaf first); an empty file is an error.
pub fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| describe(path, e))?;
    if chain.is_empty() {
        return Err(format!(
            "{}: no PEM certificate in the file (empty chain)",
            path.display()
        ));
    }
    Ok(chain)
}

/// Reads a private key in PKCS#8, PKCS#1 or SEC1 form.
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        pem::Error::NoItemsFound => format!(
            "{}: no PEM private key in the file (expected PKCS#8, PKCS#1 or SEC1)",
            path.display()
        ),
        e => describe(path, e),
    })
}

/// Loads a pair and checks that the key belongs to the leaf certificate.
pub fn load_pair(pair: &CertPair) -> Result<CertifiedKey, (PairPart, String)> {
    let chain = read_chain(&pair.cert).map_err(|e| (PairPart::Cert, e))?;
    let key = read_key(&pair.key).map_err(|e| (PairPart::Key, e))?;
    let certified = CertifiedKey::from_der(chain, key, &provider()).map_err(|e| {
        let message = match e {
            rustls::Error::InconsistentKeys(_) => format!(
                "{} does not belong to the certificate in {}",
                pair.key.display(),
                pair.cert.display()
            ),
            e => format!("{}: unusable private key: {e}", pair.key.display()),
        };
        (PairPart::Key, message)
    })?;
    Ok(certified)
}

/// Reads a CA bundle into a root store; at least one certificate must load.
pub fn read_roots(path: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for cert in read_chain(path)? {
        roots
            .add(cert)
            .map_err(|e| format!("{}: unusable CA certificate: {e}", path.display()))?;
    }
    Ok(roots)
}

/// An error message that names the file.
fn describe(path: &Path, error: pem::Error) -> String {
    match error {
        pem::Error::Io(e) => format!("cannot read {}: {e}", path.display()),
        e => format!("{}: invalid PEM: {e}", path.display()),
    }
}
