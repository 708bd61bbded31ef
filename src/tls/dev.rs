//! Development certificates, so the default config serves `wss://` and
//! `https://` with no manual step: `self_signed = true` generates one in
//! memory at start-up, `wsgate cert --out DIR` writes one to disk for
//! clients to trust. Never meant for production: the certificate is
//! self-signed and covers only loopback names.

use std::path::{Path, PathBuf};

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::tls::pem::provider;

/// The names a development certificate covers.
pub const DEV_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// File names `wsgate cert` writes inside its output directory.
pub const DEV_CERT_FILE: &str = "dev.pem";
/// The key file beside [`DEV_CERT_FILE`].
pub const DEV_KEY_FILE: &str = "dev.key";

/// A freshly generated self-signed certificate.
pub struct DevCert {
    /// The certificate, DER.
    pub cert: CertificateDer<'static>,
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The PKCS#8 private key, PEM.
    pub key_pem: String,
    /// The PKCS#8 private key, DER.
    key_der: Vec<u8>,
}

/// Generates a self-signed certificate for [`DEV_NAMES`].
pub fn generate() -> Result<DevCert, String> {
    let names: Vec<String> = DEV_NAMES.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(names).map_err(|e| e.to_string())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "wsgate development certificate");
    params.distinguished_name = dn;
    let key = KeyPair::generate().map_err(|e| e.to_string())?;
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    Ok(DevCert {
        cert_pem: cert.pem(),
        cert: cert.der().clone(),
        key_pem: key.serialize_pem(),
        key_der: key.serialize_der(),
    })
}

impl DevCert {
    /// The certificate and key ready for a resolver.
    pub fn certified_key(&self) -> Result<CertifiedKey, String> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()));
        CertifiedKey::from_der(vec![self.cert.clone()], key, &provider())
            .map_err(|e| format!("generated certificate unusable: {e}"))
    }
}

/// Writes a new development certificate and key into `dir` (created if
/// needed); returns the two paths. The key file is readable by its owner only.
pub fn write(dir: &Path) -> Result<(PathBuf, PathBuf), String> {
    let dev = generate()?;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let (cert_path, key_path) = (dir.join(DEV_CERT_FILE), dir.join(DEV_KEY_FILE));
    write_file(&cert_path, &dev.cert_pem, 0o644)?;
    write_file(&key_path, &dev.key_pem, 0o600)?;
    Ok((cert_path, key_path))
}

/// Writes `text` to `path` with Unix permissions `mode`.
fn write_file(path: &Path, text: &str, mode: u32) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    file.write_all(text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}
