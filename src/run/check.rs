//! A config validated in full: syntax and values (`config`), then every
//! certificate, key and CA file it names, loaded exactly as start-up loads
//! them, and every ACME cache directory (usable, judged without the CA).
//! `wsgate check`, start-up and reload all use [`load_verified`], so they
//! always give the same verdict. The files are loaded even when the values
//! have errors, so one run reports everything.

use std::path::Path;

use crate::config::{Backend, Config, ConfigErrors, FileRefs, Route};
use crate::tls::listener::TlsListener;
use crate::upstream::tls::client_config;

/// Reads and validates a config file completely: syntax, values, and every
/// certificate, key and CA file it names.
pub fn load_verified(path: &Path) -> Result<Config, Vec<String>> {
    let (result, files) = Config::load_all(path);
    with_files(result, &files)
}

/// [`load_verified`] for config text (the embedded default, or the one
/// `wsgate proxy` builds); `base` resolves relative paths.
pub fn parse_verified(text: &str, base: &Path) -> Result<Config, Vec<String>> {
    let (result, files) = Config::parse_all(text, base);
    with_files(result, &files)
}

/// `config` if every file it names loads, else every error.
pub fn verified(config: Config) -> Result<Config, Vec<String>> {
    let files = config.files();
    with_files(Ok(config), &files)
}

/// The verdict on the values, with the file errors added.
fn with_files(
    result: Result<Config, ConfigErrors>,
    files: &FileRefs,
) -> Result<Config, Vec<String>> {
    let mut errors: Vec<String> = match &result {
        Ok(_) => Vec::new(),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    };
    errors.extend(check_files(files));
    match result {
        Ok(config) if errors.is_empty() => Ok(config),
        _ => Err(errors),
    }
}

/// Loads every certificate, key and CA file the config names and returns
/// every error, each starting with its key path. Warnings (a certificate
/// expiring soon) are logged, not returned.
pub fn check(config: &Config) -> Vec<String> {
    check_files(&config.files())
}

/// [`check`] on the files of a config that may have other errors.
fn check_files(files: &FileRefs) -> Vec<String> {
    let mut errors = Vec::new();
    for (i, tls) in &files.listeners {
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
    for route in &files.routes {
        if dials_tls(route) {
            if let Err((key, e)) = client_config(&route.backend_tls) {
                errors.push(format!("routes[{}].{key}: {e}", route.index));
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
