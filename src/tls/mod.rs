//! TLS: terminating it on listeners and originating it towards backends.
//!
//! ```text
//! pem       PEM files → rustls types, errors naming the file
//! x509      names, expiry and subject of a certificate
//! sni       the per-listener certificate set and its SNI resolver
//! load      a listener's config → certificate set, judged (errors, warnings)
//! listener  rustls server config and the bounded handshake
//! reload    SIGHUP and file-change reloads of a listener's certificates
//! backend   rustls client configs for wss:// and https:// backends
//! dev       self-signed development certificates
//! ```
//!
//! [`check`] loads everything the config names, exactly as start-up does,
//! so `wsgate check` and `wsgate` give the same verdict.

pub mod backend;
pub mod dev;
pub mod listener;
pub mod load;
pub mod pem;
pub mod reload;
pub mod sni;
pub mod x509;

use crate::config::{Backend, Config, Route};

/// Loads every certificate, key and CA file the config names and returns
/// every error, each starting with its key path. Warnings (a certificate
/// expiring soon) are logged, not returned.
pub fn check(config: &Config) -> Vec<String> {
    let mut errors = Vec::new();
    for (i, listener) in config.listeners.iter().enumerate() {
        let Some(tls) = &listener.tls else { continue };
        match listener::TlsListener::load(tls, &format!("listeners[{i}].tls")) {
            Ok((_, warnings)) => warnings.iter().for_each(|w| tracing::warn!("{w}")),
            Err(e) => errors.extend(e),
        }
    }
    for (i, route) in config.routes.iter().enumerate() {
        if dials_tls(route) {
            if let Err((key, e)) = backend::client_config(&route.backend_tls) {
                errors.push(format!("routes[{i}].{key}: {e}"));
            }
        }
    }
    errors
}

/// Whether any backend of the route is reached over TLS.
pub fn dials_tls(route: &Route) -> bool {
    route
        .backends
        .iter()
        .any(|b| matches!(b, Backend::Remote(r) if r.tls))
}
