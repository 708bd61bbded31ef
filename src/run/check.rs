//! A config validated in full: syntax and values (`config`), then every
//! certificate, key and CA file it names, loaded exactly as start-up loads
//! them, and every ACME cache directory (usable, judged without the CA). `wsgate check`, start-up and reload all use [`load_verified`], so
//! they always give the same verdict.

use std::path::Path;

use crate::config::{Backend, Config, Route};
use crate::tls::listener::TlsListener;
use crate::upstream::tls::client_config;

/// Reads and validates a config file completely: syntax, values, and every
/// certificate, key and CA file it names.
pub fn load_verified(path: &Path) -> Result<Config, Vec<String>> {
    let config =
        Config::load(path).map_err(|e| e.0.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    verified(config)
}

/// `config` if every file it names loads, else every error.
pub fn verified(config: Config) -> Result<Config, Vec<String>> {
    match check(&config) {
        errors if errors.is_empty() => Ok(config),
        errors => Err(errors),
    }
}

/// Loads every certificate, key and CA file the config names and returns
/// every error, each starting with its key path. Warnings (a certificate
/// expiring soon) are logged, not returned.
pub fn check(config: &Config) -> Vec<String> {
    let mut errors = Vec::new();
    for (i, listener) in config.listeners.iter().enumerate() {
        let Some(tls) = &listener.tls else { continue };
        match TlsListener::load(tls, &format!("listeners[{i}].tls"), None) {
            Ok((_, warnings)) => warnings.iter().for_each(|w| tracing::warn!("{w}")),
            Err(e) => errors.extend(e),
        }
        if let Some(acme) = &tls.acme {
            errors.extend(crate::acme::check(
                acme,
                &format!("listeners[{i}].tls.acme"),
            ));
        }
    }
    for (i, route) in config.routes.iter().enumerate() {
        if dials_tls(route) {
            if let Err((key, e)) = client_config(&route.backend_tls) {
                errors.push(format!("routes[{i}].{key}: {e}"));
            }
        }
    }
    errors
}

/// Whether any backend of the route is reached over TLS.
fn dials_tls(route: &Route) -> bool {
    route
        .backends
        .iter()
        .any(|b| matches!(b, Backend::Remote(r) if r.tls))
}
