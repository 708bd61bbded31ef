//! Pending challenges and their answers, shared by every listener of the
//! process: a TLS-ALPN-01 validation may reach any TLS listener (the CA
//! always connects to port 443), an HTTP-01 one any plain listener (port
//! 80). An order publishes its challenge here and withdraws it when done.
//!
//! Replicas sharing one cache directory share their pending challenges
//! through it as well (`challenges/` in the cache): a replica the CA
//! happens to reach answers for the one that ordered. A name or token
//! read from the network is checked before it is used as a file name.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine;
use rcgen::{CertificateParams, CustomExtension, KeyPair};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use super::cache::{write_atomic, Cache};
use crate::tls::challenge::ValidationCerts;
use crate::tls::pem::provider;

/// Directory names of the two kinds under `challenges/`.
const HTTP_01: &str = "http-01";
/// See [`HTTP_01`].
const TLS_ALPN_01: &str = "tls-alpn-01";

/// Longest HTTP-01 token accepted from a request (CAs use 43 characters).
const MAX_TOKEN: usize = 128;

/// Every pending challenge of the process.
#[derive(Debug, Default)]
pub struct Challenges {
    /// HTTP-01: token → key authorization.
    http: Mutex<HashMap<String, String>>,
    /// TLS-ALPN-01: domain → the digest it proves and its certificate.
    alpn: Mutex<HashMap<String, Validation>>,
    /// Cache directories whose `challenges/` other processes write to.
    shared: Mutex<Vec<PathBuf>>,
}

/// A TLS-ALPN-01 validation certificate and the digest it carries.
#[derive(Debug, Clone)]
struct Validation {
    /// SHA-256 of the key authorization, base64url.
    digest: String,
    /// The self-signed certificate with the `acmeIdentifier` extension.
    key: Arc<CertifiedKey>,
}

/// A published challenge; dropping it withdraws the answer (and its file).
#[derive(Debug)]
pub(crate) struct Published {
    challenges: Arc<Challenges>,
    /// `http-01` with its token, or `tls-alpn-01` with its domain.
    kind: &'static str,
    name: String,
    /// The shared file, removed with the answer.
    file: PathBuf,
}

impl Drop for Published {
    fn drop(&mut self) {
        match self.kind {
            HTTP_01 => lock(&self.challenges.http).remove(&self.name).map(drop),
            _ => lock(&self.challenges.alpn).remove(&self.name).map(drop),
        };
        let _ = std::fs::remove_file(&self.file);
    }
}

impl Challenges {
    /// Looks for other processes' challenges in `cache` too.
    pub(crate) fn share(&self, cache: &Path) {
        let mut shared = lock(&self.shared);
        if !shared.iter().any(|p| p == cache) {
            shared.push(cache.to_path_buf());
        }
    }

    /// The key authorization to answer `GET /.well-known/acme-challenge/{token}` with.
    pub fn http01(&self, token: &str) -> Option<String> {
        if token.is_empty() || token.len() > MAX_TOKEN || !is_base64url(token) {
            return None;
        }
        let answer = lock(&self.http)
            .get(token)
            .cloned()
            .or_else(|| self.read_shared(HTTP_01, token))?;
        tracing::info!(challenge = HTTP_01, token, "ACME challenge answered");
        Some(answer)
    }

    /// Publishes an HTTP-01 answer until the returned guard is dropped.
    pub(crate) fn publish_http01(
        self: &Arc<Self>,
        cache: &Cache,
        token: &str,
        key_authorization: &str,
    ) -> Published {
        let file = Cache::challenge_path(cache.root(), HTTP_01, token);
        share(&file, key_authorization.as_bytes());
        lock(&self.http).insert(token.to_owned(), key_authorization.to_owned());
        self.published(HTTP_01, token, file)
    }

    /// Publishes a TLS-ALPN-01 answer for `domain` (the SHA-256 `digest` of
    /// the key authorization) until the returned guard is dropped.
    pub(crate) fn publish_tls_alpn01(
        self: &Arc<Self>,
        cache: &Cache,
        domain: &str,
        digest: &[u8],
    ) -> Result<Published, String> {
        let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest);
        let validation = Validation {
            key: validation_cert(domain, digest)?,
            digest: encoded.clone(),
        };
        let file = Cache::challenge_path(cache.root(), TLS_ALPN_01, domain);
        share(&file, encoded.as_bytes());
        lock(&self.alpn).insert(domain.to_owned(), validation);
        Ok(self.published(TLS_ALPN_01, domain, file))
    }

    fn published(self: &Arc<Self>, kind: &'static str, name: &str, file: PathBuf) -> Published {
        Published {
            challenges: self.clone(),
            kind,
            name: name.to_owned(),
            file,
        }
    }

    /// A challenge another process shared, from the first cache holding it.
    fn read_shared(&self, kind: &str, name: &str) -> Option<String> {
        let dirs = lock(&self.shared).clone();
        dirs.iter().find_map(|root| {
            let bytes = std::fs::read(Cache::challenge_path(root, kind, name)).ok()?;
            String::from_utf8(bytes).ok()
        })
    }

    /// The validation certificate of a challenge another process shared
    /// for `name`, made once per digest.
    fn shared_validation(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        let encoded = self.read_shared(TLS_ALPN_01, name)?;
        let known = lock(&self.alpn).get(name).cloned();
        if let Some(v) = known.filter(|v| v.digest == encoded) {
            return Some(v.key);
        }
        let digest = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(encoded.trim())
            .ok()?;
        let key = validation_cert(name, &digest).ok()?;
        let validation = Validation {
            digest: encoded,
            key: key.clone(),
        };
        lock(&self.alpn).insert(name.to_owned(), validation);
        Some(key)
    }
}

impl ValidationCerts for Challenges {
    fn validation_cert(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        if !is_host_name(name) {
            return None;
        }
        let own = lock(&self.alpn).get(name).map(|v| v.key.clone());
        let key = own.or_else(|| self.shared_validation(name))?;
        tracing::info!(
            challenge = TLS_ALPN_01,
            domain = name,
            "ACME challenge answered"
        );
        Some(key)
    }
}

/// The RFC 8737 validation certificate for `domain`: self-signed, the one
/// name in its SAN, the critical `acmeIdentifier` extension holding `digest`.
fn validation_cert(domain: &str, digest: &[u8]) -> Result<Arc<CertifiedKey>, String> {
    let failed = |e: rcgen::Error| format!("cannot make the TLS-ALPN-01 certificate: {e}");
    let mut params = CertificateParams::new(vec![domain.to_owned()]).map_err(failed)?;
    params.custom_extensions = vec![CustomExtension::new_acme_identifier(digest)];
    let key = KeyPair::generate().map_err(failed)?;
    let cert = params.self_signed(&key).map_err(failed)?;
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    // Not `CertifiedKey::from_der`: its consistency check parses the
    // certificate with webpki, which refuses the critical extension.
    let signing = provider()
        .key_provider
        .load_private_key(der)
        .map_err(|e| format!("cannot use the TLS-ALPN-01 key: {e}"))?;
    Ok(Arc::new(CertifiedKey::new(
        vec![cert.der().clone()],
        signing,
    )))
}

/// Writes a pending challenge where replicas sharing the cache look; this
/// process answers from memory either way.
fn share(file: &Path, contents: &[u8]) {
    if let Err(e) = write_atomic(file, contents) {
        tracing::warn!(error = %e, "cannot share the ACME challenge through the cache; only this process answers it");
    }
}

/// Whether `token` is base64url text (what CAs use), so it is a safe file name.
fn is_base64url(token: &str) -> bool {
    token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether `name` is a plain lower-case host name, so a safe file name.
fn is_host_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && !name.starts_with('.')
        && !name.contains("..")
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

/// Locks a mutex, surviving a panic elsewhere.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests;
