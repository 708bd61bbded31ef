//! HTTPS to the CA, as instant-acme's `HttpClient`: rustls (the gateway's
//! provider) trusting the public web PKI plus `directory_ca`, one HTTP/1.1
//! connection per request (an order is a dozen requests, minutes apart at
//! most), every request bounded in time and size. An answer that is not
//! ACME JSON (a proxy's 502 page, a wrong URL) becomes an error that says
//! what came back, instead of a JSON parse error.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Request, Response, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use instant_acme::{BodyWrapper, BytesResponse, Error, HttpClient};
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::error::chain;
use crate::config::AcmeSettings;
use crate::tls::pem::{provider, read_roots};

/// Bound on one request to the CA: connect, TLS, request and whole answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest answer read from the CA (a certificate chain is a few KiB).
const MAX_ANSWER: usize = 1 << 20;

/// How much of a non-ACME answer is quoted in the error.
const QUOTE: usize = 200;

/// The HTTP client instant-acme talks to the CA with.
#[derive(Clone)]
pub(crate) struct CaClient {
    /// TLS towards the CA.
    tls: TlsConnector,
}

impl std::fmt::Debug for CaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CaClient")
    }
}

impl CaClient {
    /// A client trusting the web PKI and `directory_ca`, if set.
    pub(crate) fn new(settings: &AcmeSettings) -> Result<CaClient, String> {
        let mut roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        if let Some(ca) = &settings.directory_ca {
            roots.roots.extend(read_roots(ca)?.roots);
        }
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(CaClient {
            tls: TlsConnector::from(Arc::new(config)),
        })
    }
}

impl HttpClient for CaClient {
    fn request(
        &self,
        req: Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, Error>> + Send>> {
        let tls = self.tls.clone();
        Box::pin(async move {
            let what = format!("{} {}", req.method(), req.uri());
            match tokio::time::timeout(REQUEST_TIMEOUT, send(tls, req)).await {
                Ok(Ok(response)) => Ok(BytesResponse::from(response)),
                Ok(Err(Failure::Unreachable(e))) => {
                    Err(Error::Other(format!("{what}: {e}").into()))
                }
                Ok(Err(Failure::NotAcme(e))) => {
                    Err(Error::Other(Box::new(NotAcme(format!("{what}: {e}")))))
                }
                Err(_) => Err(Error::Other(
                    format!("{what}: no answer within {REQUEST_TIMEOUT:?}").into(),
                )),
            }
        })
    }
}

/// Why a request got no ACME answer.
enum Failure {
    /// No answer at all: connection, TLS, HTTP.
    Unreachable(String),
    /// An answer that is not ACME.
    NotAcme(String),
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure::Unreachable(message)
    }
}

/// The CA answered, but not in ACME (an error page, a wrong URL); told
/// apart from an unreachable CA in [`super::error`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct NotAcme(String);

/// Sends one request on a new connection and reads the whole answer.
async fn send(
    tls: TlsConnector,
    mut req: Request<BodyWrapper<Bytes>>,
) -> Result<Response<Full<Bytes>>, Failure> {
    let uri = req.uri().clone();
    let (host, port) = target(&uri)?;
    let tcp = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
    let name = ServerName::try_from(host.clone()).map_err(|e| e.to_string())?;
    let stream = tls
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS with {host}:{port} failed: {}", chain(&e)))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| chain(&e))?;
    tokio::spawn(connection);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    *req.uri_mut() = path.parse().map_err(|e| format!("{e}"))?;
    let authority = uri.authority().map_or(host.clone(), |a| a.to_string());
    let value = header::HeaderValue::from_str(&authority).map_err(|e| e.to_string())?;
    req.headers_mut().insert(header::HOST, value);
    let method = req.method().clone();
    let response = sender.send_request(req).await.map_err(|e| chain(&e))?;
    let (parts, body) = response.into_parts();
    let bytes = Limited::new(body, MAX_ANSWER)
        .collect()
        .await
        .map_err(|e| format!("reading the answer: {e}"))?
        .to_bytes();
    judge(&method, &parts, &bytes).map_err(Failure::NotAcme)?;
    Ok(Response::from_parts(parts, Full::new(bytes)))
}

/// The host and port of an `https://` URL.
fn target(uri: &Uri) -> Result<(String, u16), String> {
    if uri.scheme_str() != Some("https") {
        return Err("not an https:// URL".into());
    }
    let host = uri.host().ok_or("no host in the URL")?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    Ok((host, uri.port_u16().unwrap_or(443)))
}

/// Refuses an answer that is not ACME: an error status without a problem
/// document, or a GET (the directory) answered with something not JSON.
fn judge(method: &http::Method, parts: &http::response::Parts, body: &[u8]) -> Result<(), String> {
    let kind = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("no content type");
    let json = kind.contains("json");
    let status = parts.status;
    let refused = (status.is_server_error() || status.is_client_error()) && !json;
    let not_json = *method == http::Method::GET && status.is_success() && !json;
    if !(refused || not_json) {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(QUOTE)]);
    Err(format!(
        "the CA answered {status} with {kind}, not ACME JSON: {:?}",
        text.trim()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(status: u16, kind: Option<&str>) -> http::response::Parts {
        let mut builder = Response::builder().status(status);
        if let Some(kind) = kind {
            builder = builder.header(header::CONTENT_TYPE, kind);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn answers_that_are_not_acme_are_refused_with_what_came_back() {
        let get = http::Method::GET;
        let post = http::Method::POST;
        let html = b"<html>Bad Gateway</html>";
        let error = judge(&post, &parts(502, Some("text/html")), html).unwrap_err();
        assert!(
            error.contains("502 Bad Gateway") && error.contains("<html>Bad Gateway"),
            "{error}"
        );
        let error = judge(&get, &parts(200, Some("text/html")), b"hello").unwrap_err();
        assert!(error.contains("200 OK with text/html"), "{error}");
        assert!(
            judge(&get, &parts(200, None), b"{}").is_err(),
            "a directory must say JSON"
        );
        // Problem documents and certificates pass through to instant-acme.
        assert!(judge(&post, &parts(400, Some("application/problem+json")), b"{}").is_ok());
        assert!(judge(&get, &parts(200, Some("application/json")), b"{}").is_ok());
        let chain = Some("application/pem-certificate-chain");
        assert!(judge(&post, &parts(200, chain), b"-----BEGIN").is_ok());
    }

    #[test]
    fn only_https_urls_are_dialed() {
        let uri: Uri = "https://[::1]:14000/dir".parse().unwrap();
        assert_eq!(target(&uri).unwrap(), ("::1".to_string(), 14000));
        let uri: Uri = "https://ca.example/dir".parse().unwrap();
        assert_eq!(target(&uri).unwrap(), ("ca.example".to_string(), 443));
        assert!(target(&"http://ca.example/dir".parse().unwrap()).is_err());
    }
}
