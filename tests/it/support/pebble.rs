//! Pebble, Let's Encrypt's test CA, and pebble-challtestsrv as its DNS
//! (every name resolves to 127.0.0.1 unless a test points it elsewhere),
//! started per test on free ports (Debian package `pebble`, installed by
//! scripts/test.sh). Pebble's own HTTPS certificate comes from a CA made
//! here, which the gateway trusts through `directory_ca` only.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::ClientConfig;
use std::process::{Child, Command};

use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::client::WAIT;
use super::ops::free_port;
use super::tls::Pki;

/// How often start-up polls Pebble's directory.
const POLL: Duration = Duration::from_millis(50);

/// A running Pebble and its DNS server; both are killed on drop.
pub struct Pebble {
    /// The ACME directory URL.
    pub directory: String,
    /// The CA of Pebble's HTTPS certificate: the gateway's `directory_ca`.
    pub ca: PathBuf,
    /// Pebble's management interface (roots, certificate status).
    management: SocketAddr,
    /// pebble-challtestsrv's management interface (DNS records).
    dns_management: SocketAddr,
    /// Trusts [`Pebble::ca`], for the management interface.
    https: Arc<ClientConfig>,
    /// Pebble's output.
    pub log: PathBuf,
    _pki: Pki,
    _children: [Killed; 2],
}

/// A child process killed (and reaped) on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Where Pebble validates: the gateway's ports.
pub struct Validation {
    /// `tlsPort`: where TLS-ALPN-01 is checked.
    pub tls_port: u16,
    /// `httpPort`: where HTTP-01 is checked.
    pub http_port: u16,
    /// `PEBBLE_WFE_NONCEREJECT`: the percentage of good nonces Pebble
    /// rejects as bad; `None` keeps Pebble's default (5%).
    pub nonce_reject: Option<u8>,
    /// An external account binding Pebble requires: key id and base64url
    /// MAC key.
    pub eab: Option<(&'static str, &'static str)>,
}

impl Pebble {
    /// Starts pebble-challtestsrv and Pebble; returns once the directory answers.
    pub async fn start(validation: Validation) -> Pebble {
        let pki = Pki::new("acme-test");
        let cert = pki.server("pebble", &["localhost", "127.0.0.1"]);
        let dns = free_dns_port().await;
        let dns_management = SocketAddr::from(([127, 0, 0, 1], free_port().await));
        let dns_child = spawn(
            Command::new("pebble-challtestsrv").args([
                "-defaultIPv4",
                "127.0.0.1",
                "-defaultIPv6",
                "",
                "-dns01",
                &format!("127.0.0.1:{dns}"),
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
                "-management",
                &dns_management.to_string(),
            ]),
            pki.dir.path().join("challtestsrv.log"),
        );
        let (listen, management) = (free_port().await, free_port().await);
        let config = serde_json::json!({ "pebble": {
            "listenAddress": format!("127.0.0.1:{listen}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": cert.cert, "privateKey": cert.key,
            "httpPort": validation.http_port, "tlsPort": validation.tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": validation.eab.is_some(),
            "externalAccountMACKeys": validation.eab.map(|(kid, key)| serde_json::json!({ kid: key })),
        }});
        let config_path = pki.dir.path().join("pebble.json");
        std::fs::write(&config_path, config.to_string()).unwrap();
        let log = pki.dir.path().join("pebble.log");
        let mut command = Command::new("pebble");
        command
            .arg("-config")
            .arg(&config_path)
            .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env_remove("PEBBLE_WFE_NONCEREJECT");
        if let Some(percent) = validation.nonce_reject {
            command.env("PEBBLE_WFE_NONCEREJECT", percent.to_string());
        }
        let pebble_child = spawn(&mut command, log.clone());
        let https = pki.client_config(None);
        let pebble = Pebble {
            directory: format!("https://127.0.0.1:{listen}/dir"),
            ca: pki.ca_path.clone(),
            management: SocketAddr::from(([127, 0, 0, 1], management)),
            dns_management,
            https,
            log,
            _pki: pki,
            _children: [dns_child, pebble_child],
        };
        pebble.wait_ready(listen).await;
        pebble
    }

    /// Waits (bounded) until the directory answers 200.
    async fn wait_ready(&self, listen: u16) {
        let addr = SocketAddr::from(([127, 0, 0, 1], listen));
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Ok((200, _)) = https_get(addr, "/dir", &self.https).await {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "Pebble did not start: {}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Pebble's root certificate (new at every start): what issued
    /// certificates chain to.
    pub async fn root(&self) -> CertificateDer<'static> {
        let (status, body) = https_get(self.management, "/roots/0", &self.https)
            .await
            .unwrap();
        assert_eq!(status, 200);
        use rustls::pki_types::pem::PemObject;
        CertificateDer::from_pem_slice(&body).unwrap()
    }

    /// A TLS client config that trusts only Pebble's root.
    pub async fn client_config(&self) -> Arc<ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.root().await).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }

    /// Makes `host` resolve to `ip` for Pebble's validation.
    pub async fn point(&self, host: &str, ip: &str) {
        let body = serde_json::json!({ "host": host, "addresses": [ip] });
        self.dns("/add-a", body).await;
    }

    /// Makes `host` resolve to the default, 127.0.0.1, again.
    pub async fn unpoint(&self, host: &str) {
        self.dns("/clear-a", serde_json::json!({ "host": host }))
            .await;
    }

    async fn dns(&self, path: &str, body: serde_json::Value) {
        let body = body.to_string();
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: dns\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let response = super::client::raw_request(self.dns_management, &request).await;
        assert_eq!(response.status, 200, "{path}: {}", response.head);
    }
}

/// Spawns `command` with its output in `log`; a missing binary fails the
/// test with what to install.
fn spawn(command: &mut Command, log: PathBuf) -> Killed {
    let out = std::fs::File::create(&log).unwrap();
    let child = command
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {:?} ({e}): install the Debian package `pebble` (scripts/test.sh does)",
                command.get_program()
            )
        });
    Killed(child)
}

/// A port free for both UDP and TCP right now (the DNS server takes both).
async fn free_dns_port() -> u16 {
    loop {
        let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = udp.local_addr().unwrap().port();
        if tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return port;
        }
    }
}

/// `GET path` over HTTPS to `addr` (SNI `localhost`): status and body.
pub async fn https_get(
    addr: SocketAddr,
    path: &str,
    config: &Arc<ClientConfig>,
) -> std::io::Result<(u16, Bytes)> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").unwrap();
    let tls = TlsConnector::from(config.clone())
        .connect(name, tcp)
        .await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(connection);
    let request = hyper::Request::get(path)
        .header("host", addr.to_string())
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender
        .send_request(request)
        .await
        .map_err(std::io::Error::other)?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    Ok((status, body))
}
