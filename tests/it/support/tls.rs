//! TLS test helpers: a throw-away PKI generated with rcgen into a temp dir,
//! rustls clients that report which certificate they were served, and a
//! `wss://` echo backend.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair,
};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::ClientConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::client::WAIT;

/// Files of one issued certificate.
#[derive(Clone, Debug)]
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The leaf, to compare with what a handshake served.
    pub der: CertificateDer<'static>,
}

/// A CA in a temp dir that issues server and client certificates.
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub ca_path: PathBuf,
    ca: Certificate,
    ca_key: KeyPair,
}

impl Pki {
    pub fn new(name: &str) -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name = dn(name);
        let ca_key = KeyPair::generate().unwrap();
        let ca = params.self_signed(&ca_key).unwrap();
        let ca_path = dir.path().join(format!("{name}-ca.pem"));
        std::fs::write(&ca_path, ca.pem()).unwrap();
        Pki {
            dir,
            ca_path,
            ca,
            ca_key,
        }
    }

    /// A server certificate for `sans`, written as `{file}.pem` / `{file}.key`.
    pub fn server(&self, file: &str, sans: &[&str]) -> Issued {
        let names: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name = dn(file);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(file, params)
    }

    /// A client certificate with subject `CN={cn}`.
    pub fn client(&self, file: &str, cn: &str) -> Issued {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = dn(cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(file, params)
    }

    /// Signs `params` with the CA and writes the chain (leaf + CA) and key.
    pub fn issue(&self, file: &str, params: CertificateParams) -> Issued {
        let key = KeyPair::generate().unwrap();
        let pem = key.serialize_pem();
        self.issue_with(file, params, &key, &pem)
    }

    /// A server certificate for `sans` whose key file is in `format`.
    pub fn server_with_key(&self, file: &str, sans: &[&str], format: KeyFormat) -> Issued {
        let names: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let params = CertificateParams::new(names).unwrap();
        let (key, pem) = format.key();
        self.issue_with(file, params, &key, &pem)
    }

    /// Signs `params` for `key` and writes the chain and `key_pem`.
    fn issue_with(
        &self,
        file: &str,
        params: CertificateParams,
        key: &KeyPair,
        key_pem: &str,
    ) -> Issued {
        let cert = params.signed_by(key, &self.ca, &self.ca_key).unwrap();
        let (cert_path, key_path) = self.paths(file);
        std::fs::write(&cert_path, format!("{}{}", cert.pem(), self.ca.pem())).unwrap();
        std::fs::write(&key_path, key_pem).unwrap();
        Issued {
            cert: cert_path,
            key: key_path,
            der: cert.der().clone(),
        }
    }

    pub fn paths(&self, file: &str) -> (PathBuf, PathBuf) {
        let dir = self.dir.path();
        (
            dir.join(format!("{file}.pem")),
            dir.join(format!("{file}.key")),
        )
    }

    /// A client config trusting this CA, optionally presenting a certificate.
    pub fn client_config(&self, identity: Option<&Issued>) -> Arc<ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let mut config = match identity {
            None => builder.with_no_client_auth(),
            Some(id) => builder
                .with_client_auth_cert(read_chain(&id.cert), read_key(&id.key))
                .unwrap(),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

pub fn read_chain(path: &PathBuf) -> Vec<CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_file_iter(path)
        .unwrap()
        .map(|c| c.unwrap())
        .collect()
}

pub fn read_key(path: &PathBuf) -> rustls::pki_types::PrivateKeyDer<'static> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::PrivateKeyDer::from_pem_file(path).unwrap()
}

/// A TLS handshake with `addr` using SNI `name` (bounded by [`WAIT`]).
pub async fn tls_connect(
    addr: SocketAddr,
    name: &str,
    config: Arc<ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(name.to_string()).unwrap();
    tokio::time::timeout(WAIT, TlsConnector::from(config).connect(name, tcp))
        .await
        .expect("TLS handshake within the wait bound")
}

/// The leaf certificate a TLS stream was served.
pub fn served_leaf(stream: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    stream.get_ref().1.peer_certificates().unwrap()[0].clone()
}

/// A WebSocket echo backend behind TLS with the given certificate.
pub async fn wss_echo_backend(server: &Issued) -> SocketAddr {
    serve_tls(server_config(server, None), echo_ws).await
}

/// Like [`wss_echo_backend`], but the handshake requires a client
/// certificate issued by the CA in `client_ca` (a backend demanding mTLS).
pub async fn wss_echo_backend_requiring_client(server: &Issued, client_ca: &Path) -> SocketAddr {
    serve_tls(server_config(server, Some(client_ca)), echo_ws).await
}

/// Accepts a WebSocket on a TLS stream and echoes text and binary messages.
async fn echo_ws(tls: tokio_rustls::server::TlsStream<TcpStream>) {
    let Ok(ws) = tokio_tungstenite::accept_async(tls).await else {
        return;
    };
    let (mut sink, mut stream) = ws.split();
    while let Some(Ok(msg)) = stream.next().await {
        if (msg.is_text() || msg.is_binary()) && sink.send(msg).await.is_err() {
            return;
        }
    }
}

/// An `https://` backend answering like [`super::backend::http_echo_backend`].
pub async fn https_echo_backend(server: &Issued) -> SocketAddr {
    serve_tls(
        server_config(server, None),
        super::backend::serve_http_echo_on,
    )
    .await
}

/// A rustls server config for `server`, requiring client certificates
/// from `client_ca` when given.
fn server_config(server: &Issued, client_ca: Option<&Path>) -> rustls::ServerConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            read_chain(&ca.to_path_buf())
                .into_iter()
                .for_each(|c| roots.add(c).unwrap());
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
    };
    builder
        .with_single_cert(read_chain(&server.cert), read_key(&server.key))
        .unwrap()
}

/// Accepts TLS connections on `127.0.0.1:0` and runs `serve` on each.
async fn serve_tls<F, Fut>(config: rustls::ServerConfig, serve: F) -> SocketAddr
where
    F: Fn(tokio_rustls::server::TlsStream<TcpStream>) -> Fut + Send + Copy + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    serve(tls).await;
                }
            });
        }
    });
    addr
}

/// A verifier that accepts every certificate, for tests that inspect the
/// served certificate themselves.
#[derive(Debug)]
pub struct AcceptAny;

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        let algorithms = rustls::crypto::ring::default_provider().signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, &algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        let algorithms = rustls::crypto::ring::default_provider().signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, &algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Private key encodings other than rcgen's PKCS#8, which operators'
/// files often use.
#[derive(Clone, Copy, Debug)]
pub enum KeyFormat {
    /// `RSA PRIVATE KEY` (PKCS#1), from [`RSA_TEST_KEY`]: ring cannot
    /// generate RSA keys, so this one test-only key is in the repository.
    Pkcs1Rsa,
    /// `EC PRIVATE KEY` (SEC1), a P-256 key generated now.
    Sec1Ec,
}

/// A 2048-bit RSA key made for these tests only (never used anywhere else).
pub const RSA_TEST_KEY: &str = include_str!("rsa-test-only.pkcs1.pem");

/// OID 1.2.840.113549.1.1.1 (rsaEncryption) with NULL parameters, DER.
const RSA_ALGORITHM: [u8; 15] = [
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];

impl KeyFormat {
    /// The key for rcgen to sign with, and its PEM file in this format.
    fn key(self) -> (KeyPair, String) {
        use rustls::pki_types::pem::PemObject;
        match self {
            KeyFormat::Pkcs1Rsa => {
                let pkcs1 =
                    rustls::pki_types::PrivatePkcs1KeyDer::from_pem_slice(RSA_TEST_KEY.as_bytes())
                        .unwrap();
                let version = der(0x02, &[0]);
                let inner = der(0x04, pkcs1.secret_pkcs1_der());
                let pkcs8 = der(0x30, &[&version[..], &RSA_ALGORITHM, &inner].concat());
                (KeyPair::try_from(pkcs8).unwrap(), RSA_TEST_KEY.to_string())
            }
            KeyFormat::Sec1Ec => {
                let key = KeyPair::generate().unwrap();
                let sec1 = pkcs8_private_key(key.serialized_der());
                (key, pem("EC PRIVATE KEY", &sec1))
            }
        }
    }
}

/// A DER TLV: `tag`, definite length, `content`.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let len = content.len();
    let mut out = vec![tag];
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// Splits one DER TLV off the front: (tag, content, rest).
fn der_next(input: &[u8]) -> (u8, &[u8], &[u8]) {
    let (tag, first) = (input[0], input[1] as usize);
    let (len, start) = match first {
        n if n < 0x80 => (n, 2),
        n => {
            let count = n & 0x7f;
            let len = input[2..2 + count]
                .iter()
                .fold(0usize, |acc, b| acc << 8 | *b as usize);
            (len, 2 + count)
        }
    };
    (tag, &input[start..start + len], &input[start + len..])
}

/// The `privateKey` of a PKCS#8 `PrivateKeyInfo`: for an EC key, its SEC1
/// `ECPrivateKey`.
fn pkcs8_private_key(pkcs8: &[u8]) -> Vec<u8> {
    let (_, info, _) = der_next(pkcs8);
    let (_, _version, rest) = der_next(info);
    let (_, _algorithm, rest) = der_next(rest);
    let (tag, private_key, _) = der_next(rest);
    assert_eq!(tag, 0x04, "privateKey is an OCTET STRING");
    private_key.to_vec()
}

/// PEM text of `der` under `label`.
fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = text
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

impl Pki {
    /// Like [`Pki::client_config`] (no client certificate), limited to the
    /// given TLS versions.
    pub fn client_config_versions(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Arc<ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

/// A TLS 1.0 or 1.1 ClientHello (`legacy_version` 3.1 or 3.2, no
/// `supported_versions` extension), as an old client sends it: two CBC
/// suites, no compression, an SNI for `name`.
pub fn legacy_client_hello(minor: u8, name: &str) -> Vec<u8> {
    let mut sni = vec![0x00];
    sni.extend_from_slice(&(name.len() as u16).to_be_bytes());
    sni.extend_from_slice(name.as_bytes());
    let mut extensions = vec![0x00, 0x00]; // server_name
    extensions.extend_from_slice(&(sni.len() as u16 + 2).to_be_bytes());
    extensions.extend_from_slice(&(sni.len() as u16).to_be_bytes());
    extensions.extend_from_slice(&sni);
    let mut hello = vec![0x03, minor];
    hello.extend_from_slice(&[0x5a; 32]); // random
    hello.push(0); // no session id
    hello.extend_from_slice(&[0x00, 0x04, 0xc0, 0x13, 0x00, 0x2f]); // ECDHE/RSA AES128-CBC-SHA
    hello.extend_from_slice(&[0x01, 0x00]); // compression: null only
    hello.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
    hello.extend_from_slice(&extensions);
    let mut handshake = vec![0x01, 0x00];
    handshake.extend_from_slice(&(hello.len() as u16).to_be_bytes());
    handshake.extend_from_slice(&hello);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}
