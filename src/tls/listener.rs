//! TLS termination for one listener: the rustls server config (TLS 1.2 and
//! 1.3 only, rustls' default cipher suites, ALPN `h2` and `http/1.1` or only
//! `http/1.1`, plus ACME's `acme-tls/1`, optional client certificates) and
//! the handshake itself, bounded by `handshake_timeout` so a client that
//! opens TCP and stalls cannot hold a task forever. The protocol ALPN
//! settled on tells the server layer which HTTP to speak.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::config::ListenerTls;
use crate::tls::challenge::{ValidationCerts, ACME_TLS_ALPN};
use crate::tls::load::load_certs;
use crate::tls::pem::{provider, read_roots};
use crate::tls::sni::SniResolver;
use crate::tls::x509::subject;

/// `h2` in ALPN: HTTP/2, offered first with `http2 = true`, as every
/// browser and nginx/HAProxy order it.
const H2: &[u8] = b"h2";

/// `http/1.1` in ALPN: every listener offers it (and a client that sends no
/// ALPN speaks it too).
const HTTP_1_1: &[u8] = b"http/1.1";

/// The HTTP a TLS connection speaks, as ALPN settled it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppProtocol {
    /// `http/1.1`, or no ALPN at all (clients that do not send it speak
    /// HTTP/1.1).
    Http1,
    /// `h2`.
    Http2,
}

/// A listener's TLS state, shared by all its connections.
#[derive(Debug)]
pub struct TlsListener {
    /// The rustls config every handshake of this listener uses.
    config: Arc<ServerConfig>,
    /// The same, offering only `http/1.1`: an over-limit client's one
    /// refusal is always an HTTP/1.1 answer.
    refusal_config: Arc<ServerConfig>,
    /// The certificate set, swapped by reloads.
    resolver: Arc<SniResolver>,
    /// Bound on one handshake.
    handshake_timeout: Duration,
    /// Where the verified client subject goes, if anywhere.
    subject_header: Option<HeaderName>,
}

/// A completed handshake.
pub struct Accepted {
    /// The decrypted stream.
    pub stream: TlsStream<TcpStream>,
    /// The verified client certificate's subject (mTLS listeners only).
    pub subject: Option<String>,
    /// The protocol ALPN settled on.
    pub protocol: AppProtocol,
}

impl Accepted {
    /// Whether this was an ACME CA's TLS-ALPN-01 validation handshake,
    /// which carries no application data: the connection is to be closed.
    pub fn is_acme_validation(&self) -> bool {
        self.stream.get_ref().1.alpn_protocol() == Some(ACME_TLS_ALPN)
    }
}

/// Why a handshake did not complete.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The client did not finish within `handshake_timeout`.
    #[error("TLS handshake not completed within {0:?}")]
    Timeout(Duration),
    /// The client sent something rustls refused, or went away.
    #[error("TLS handshake failed: {0}")]
    Failed(io::Error),
}

impl TlsListener {
    /// Loads certificates and CA files; `at` is the key path for messages
    /// (`listeners[0].tls`). With `validation`, ACME TLS-ALPN-01 validation
    /// handshakes are answered from it. Returns warnings beside the
    /// listener, or every error.
    pub fn load(
        tls: &ListenerTls,
        at: &str,
        validation: Option<Arc<dyn ValidationCerts>>,
    ) -> Result<(TlsListener, Vec<String>), Vec<String>> {
        let loaded = load_certs(tls, at);
        let mut errors = loaded.errors;
        let alpn = alpn_protocols(tls.http2, validation.is_some());
        let config = match server_config(tls, at, alpn) {
            Ok(builder) => Some(builder),
            Err(e) => {
                errors.push(e);
                None
            }
        };
        let (Some(set), Some(build), true) = (loaded.set, config, errors.is_empty()) else {
            return Err(errors);
        };
        let mut resolver = SniResolver::new(set);
        if let Some(validation) = validation {
            resolver = resolver.with_validation(validation);
        }
        let resolver = Arc::new(resolver);
        let config = build(resolver.clone());
        let mut refusal_config = config.clone();
        refusal_config.alpn_protocols = vec![HTTP_1_1.to_vec()];
        let listener = TlsListener {
            config: Arc::new(config),
            refusal_config: Arc::new(refusal_config),
            resolver,
            handshake_timeout: tls.handshake_timeout,
            subject_header: tls.client_subject_header.clone(),
        };
        Ok((listener, loaded.warnings))
    }

    /// The resolver, for reloads.
    pub fn resolver(&self) -> &Arc<SniResolver> {
        &self.resolver
    }

    /// How long a client has to complete the handshake.
    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// The header that carries the client subject to backends, if any.
    pub fn subject_header(&self) -> Option<&HeaderName> {
        self.subject_header.as_ref()
    }

    /// Runs the server side of the handshake within the timeout.
    pub async fn handshake(&self, tcp: TcpStream) -> Result<Accepted, HandshakeError> {
        self.handshake_with(self.config.clone(), tcp).await
    }

    /// The handshake of a connection that will only be refused: ALPN
    /// settles on `http/1.1` whatever the listener offers otherwise.
    pub async fn handshake_for_refusal(&self, tcp: TcpStream) -> Result<Accepted, HandshakeError> {
        self.handshake_with(self.refusal_config.clone(), tcp).await
    }

    async fn handshake_with(
        &self,
        config: Arc<ServerConfig>,
        tcp: TcpStream,
    ) -> Result<Accepted, HandshakeError> {
        let accept = TlsAcceptor::from(config).accept(tcp);
        let stream = tokio::time::timeout(self.handshake_timeout, accept)
            .await
            .map_err(|_| HandshakeError::Timeout(self.handshake_timeout))?
            .map_err(HandshakeError::Failed)?;
        let subject = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(subject);
        let protocol = match stream.get_ref().1.alpn_protocol() {
            Some(H2) => AppProtocol::Http2,
            _ => AppProtocol::Http1,
        };
        Ok(Accepted {
            stream,
            subject,
            protocol,
        })
    }
}

/// Everything of the server config but the resolver, which is built once
/// the certificates loaded.
type ConfigBuild = Box<dyn FnOnce(Arc<SniResolver>) -> ServerConfig>;

/// The ALPN protocols a listener selects from, in preference order: `h2`
/// when `http2` is on, HTTP/1.1, and `acme-tls/1` when the listener answers
/// ACME TLS-ALPN-01 validations (only a validating CA offers it, and offers
/// nothing else).
fn alpn_protocols(http2: bool, acme_validation: bool) -> Vec<Vec<u8>> {
    let mut protocols = Vec::new();
    if http2 {
        protocols.push(H2.to_vec());
    }
    protocols.push(HTTP_1_1.to_vec());
    if acme_validation {
        protocols.push(ACME_TLS_ALPN.to_vec());
    }
    protocols
}

/// The rustls server config builder for a listener.
fn server_config(
    tls: &ListenerTls,
    at: &str,
    alpn_protocols: Vec<Vec<u8>>,
) -> Result<ConfigBuild, String> {
    let versions = [&rustls::version::TLS13, &rustls::version::TLS12];
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("{at}: {e}"))?;
    let builder = match &tls.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let roots = read_roots(ca).map_err(|e| format!("{at}.client_ca: {e}"))?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| format!("{at}.client_ca: {}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    Ok(Box::new(move |resolver| {
        let mut config = builder.with_cert_resolver(resolver);
        config.alpn_protocols = alpn_protocols;
        config
    }))
}
