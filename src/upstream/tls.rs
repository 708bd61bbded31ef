//! TLS towards `wss://` and `https://` backends: certificates verified
//! against the public web PKI (webpki-roots) or a route's own CA
//! (`backend_ca`), SNI from the backend URL unless `backend_sni` overrides
//! it, and an optional client certificate (`backend_client_cert`) for
//! backends that require mutual TLS.
//!
//! Client configs are built once per distinct setting and cached: building
//! one parses CA files, which should not happen per connection.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};

use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::config::BackendTls;
use crate::tls::pem::{load_pair, provider, read_chain, read_key, read_roots};

/// ALPN offered to backends: the gateway speaks HTTP/1.1 to them.
const ALPN: [&[u8]; 1] = [b"http/1.1"];

/// Client configs by route setting, built on first use.
#[derive(Debug, Default)]
pub struct BackendTlsConfigs {
    /// One config per distinct [`BackendTls`].
    cache: Mutex<HashMap<BackendTls, Arc<ClientConfig>>>,
}

impl BackendTlsConfigs {
    /// The client config for `settings`, built and cached on first use.
    pub fn get(&self, settings: &BackendTls) -> Result<Arc<ClientConfig>, String> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(config) = cache.get(settings) {
            return Ok(config.clone());
        }
        let config = Arc::new(client_config(settings).map_err(|(_, e)| e)?);
        cache.insert(settings.clone(), config.clone());
        Ok(config)
    }
}

/// Builds the client config; an error names the route key it is about
/// (`backend_ca`, `backend_client_cert.cert`, ...).
pub fn client_config(settings: &BackendTls) -> Result<ClientConfig, (String, String)> {
    let roots = match &settings.ca {
        Some(ca) => read_roots(ca).map_err(|e| ("backend_ca".to_string(), e))?,
        None => rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        },
    };
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| (String::new(), e.to_string()))?
        .with_root_certificates(roots);
    let mut config = match &settings.client_cert {
        None => builder.with_no_client_auth(),
        Some(pair) => {
            let key_name = |part: crate::tls::pem::PairPart| {
                format!("backend_client_cert.{}", part.key_name())
            };
            // Checked as a pair first so a mismatched key is reported as such.
            load_pair(pair).map_err(|(part, e)| (key_name(part), e))?;
            let chain =
                read_chain(&pair.cert).map_err(|e| ("backend_client_cert.cert".into(), e))?;
            let key = read_key(&pair.key).map_err(|e| ("backend_client_cert.key".into(), e))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| ("backend_client_cert.key".into(), e.to_string()))?
        }
    };
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// The name the backend's certificate is verified against (and sent as
/// SNI unless it is an IP address): `backend_sni`, else the URL's host.
pub fn server_name(settings: &BackendTls, host: &str) -> Result<ServerName<'static>, String> {
    let name = settings.sni.as_deref().unwrap_or(host);
    ServerName::try_from(name.to_string())
        .map_err(|e| format!("invalid TLS server name {name:?}: {e}"))
}

/// Runs the client handshake on a connected TCP stream.
pub async fn handshake(
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    tcp: TcpStream,
) -> io::Result<TlsStream<TcpStream>> {
    TlsConnector::from(config).connect(name, tcp).await
}
