//! A forward-auth service for the tests: a real hyper server on
//! `127.0.0.1:0` that admits by cookie and records what it was asked, used
//! by the HTTP/1.1 tests in `auth.rs` and the HTTP/2 ones in
//! `http2_policies.rs`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{HeaderMap, Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The auth service: what it was asked, in order.
pub struct AuthService {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The headers of every subrequest it got, in order.
    pub asked: Arc<Mutex<Vec<HeaderMap>>>,
}

/// Answers by the `session` cookie: `good` admits as alice (`X-User`),
/// `slow` never answers, `redirect` 302s to a login page, `huge` refuses
/// with a 1 MiB body, `teapot` answers 418, `banned` is 403, anything else
/// (or none) 401 with a challenge and a body.
pub async fn auth_service() -> AuthService {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let asked = Arc::new(Mutex::new(Vec::new()));
    let seen = asked.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let seen = seen.clone();
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                seen.lock().unwrap().push(req.headers().clone());
                answer(req)
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    AuthService { addr, asked }
}

async fn answer(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let cookie = req
        .headers()
        .get("cookie")
        .and_then(|c| c.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let session = cookie.strip_prefix("session=").unwrap_or("");
    let response = Response::builder();
    let response = match session {
        "good" => response
            .header("x-user", "alice")
            .header("x-other", "not copied")
            .body(Full::new(Bytes::from("ok"))),
        "slow" => std::future::pending().await,
        "redirect" => response
            .status(302)
            .header("location", "https://login.example.com/")
            .body(Full::new(Bytes::new())),
        "huge" => response
            .status(401)
            .body(Full::new(Bytes::from(vec![b'x'; 1 << 20]))),
        "teapot" => response.status(418).body(Full::new(Bytes::new())),
        "banned" => response
            .status(403)
            .body(Full::new(Bytes::from("banned\n"))),
        _ => response
            .status(401)
            .header("www-authenticate", "Bearer realm=\"chat\"")
            .body(Full::new(Bytes::from("login first\n"))),
    };
    Ok(response.unwrap())
}
