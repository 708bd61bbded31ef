//! Validation of the TLS keys: `[listeners.tls]`, `redirect_https` and the
//! routes' `backend_*` keys. Files are only named here; reading them (and
//! judging certificates) is the job of the full check in the assembly layer
//! (`run::check`), run by both `wsgate check` and start-up.

use std::path::{Path, PathBuf};

use http::HeaderName;

use super::{acme, defaults, file, Errors};
use crate::config::{BackendTls, CertPair, ListenerTls};

/// `[listeners.tls]` at `at` (`listeners[0].tls`).
pub(super) fn listener_tls(
    errors: &mut Errors,
    at: &str,
    raw: file::TlsFile,
    base: &Path,
) -> ListenerTls {
    let self_signed = raw.self_signed.unwrap_or(defaults::SELF_SIGNED);
    if raw.certs.is_empty() && !self_signed && raw.acme.is_none() {
        errors.push(
            format!("{at}.certs"),
            "at least one { cert, key } pair is required (or self_signed = true, or [listeners.tls.acme])",
        );
    }
    let certs = raw
        .certs
        .iter()
        .enumerate()
        .map(|(j, pair)| cert_pair(errors, &format!("{at}.certs[{j}]"), pair, base))
        .collect();
    let header = raw.client_subject_header.as_deref().and_then(|name| {
        let parsed = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("invalid header name {name:?}"));
        errors.check(format!("{at}.client_subject_header"), parsed)
    });
    if header.is_some() && raw.client_ca.is_none() {
        errors.push(
            format!("{at}.client_subject_header"),
            "needs client_ca: without client certificates there is no subject to forward",
        );
    }
    let handshake = raw.handshake_timeout.as_deref();
    let watch = raw.watch_interval.as_deref();
    ListenerTls {
        certs,
        self_signed,
        handshake_timeout: errors.duration(
            format!("{at}.handshake_timeout"),
            handshake,
            defaults::HANDSHAKE_TIMEOUT,
            false,
        ),
        watch_interval: errors.duration(
            format!("{at}.watch_interval"),
            watch,
            defaults::WATCH_INTERVAL,
            true,
        ),
        client_ca: raw
            .client_ca
            .map(|p| file_path(errors, format!("{at}.client_ca"), &p, base)),
        client_subject_header: header,
        acme: raw
            .acme
            .map(|raw| acme::acme(errors, &format!("{at}.acme"), raw, base)),
        http2: super::http2::enabled(raw.http2),
    }
}

/// `redirect_https` of the listener at `at` (`listeners[0]`).
pub(super) fn redirect_https(
    errors: &mut Errors,
    at: &str,
    raw: Option<file::RedirectValue>,
    tls: &Option<ListenerTls>,
) -> Option<u16> {
    let port = match raw? {
        file::RedirectValue::Enabled(false) => return None,
        file::RedirectValue::Enabled(true) => defaults::REDIRECT_HTTPS_PORT,
        file::RedirectValue::Port(n) => match u16::try_from(n) {
            Ok(port) if port > 0 => port,
            _ => {
                errors.push(format!("{at}.redirect_https"), format!("invalid port {n}"));
                return None;
            }
        },
    };
    if tls.is_some() {
        errors.push(
            format!("{at}.redirect_https"),
            "only for plain listeners; this one already has [listeners.tls]",
        );
    }
    Some(port)
}

/// The `backend_ca`, `backend_sni` and `backend_client_cert` keys of the
/// route at `at` (`routes[0]`).
pub(super) fn backend_tls(
    errors: &mut Errors,
    at: &str,
    (ca, sni, client_cert): (Option<String>, Option<String>, Option<file::CertFile>),
    base: &Path,
) -> BackendTls {
    let sni = sni.filter(|name| {
        let valid = rustls_pki_types::ServerName::try_from(name.as_str()).is_ok();
        if !valid {
            errors.push(
                format!("{at}.backend_sni"),
                format!("invalid server name {name:?}"),
            );
        }
        valid
    });
    BackendTls {
        ca: ca.map(|p| file_path(errors, format!("{at}.backend_ca"), &p, base)),
        sni,
        client_cert: client_cert
            .map(|pair| cert_pair(errors, &format!("{at}.backend_client_cert"), &pair, base)),
    }
}

/// A `{ cert, key }` pair at `at`.
fn cert_pair(errors: &mut Errors, at: &str, pair: &file::CertFile, base: &Path) -> CertPair {
    CertPair {
        cert: file_path(errors, format!("{at}.cert"), &pair.cert, base),
        key: file_path(errors, format!("{at}.key"), &pair.key, base),
    }
}

/// A file path resolved against the config file's directory.
fn file_path(errors: &mut Errors, path: String, raw: &str, base: &Path) -> PathBuf {
    if raw.is_empty() {
        errors.push(path, "empty file path");
    }
    base.join(raw)
}
