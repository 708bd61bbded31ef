//! TLS on listeners: certificate files, SNI, the bounded handshake, and
//! certificate reload. (TLS towards backends is `upstream::tls`.)
//!
//! ```text
//! pem       PEM files → rustls types, errors naming the file
//! x509      names, expiry and subject of a certificate
//! sni       the per-listener certificate sets and their SNI resolver
//! challenge recognising ACME TLS-ALPN-01 validation handshakes
//! load      a listener's config → certificate set, judged (errors, warnings)
//! listener  rustls server config and the bounded handshake
//! reload    SIGHUP and file-change reloads of a listener's certificates
//! dev       self-signed development certificates
//! ```

pub mod challenge;
pub mod dev;
pub mod listener;
pub mod load;
pub mod pem;
pub mod reload;
pub mod sni;
pub mod x509;
