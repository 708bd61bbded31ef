//! Reading the admin endpoints and waiting on observable events.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use super::client::{raw_request, RawResponse, WAIT};

/// How often [`eventually`] re-checks its condition.
const POLL: Duration = Duration::from_millis(20);

/// `GET path` on the admin listener.
pub async fn admin_get(admin: SocketAddr, path: &str) -> RawResponse {
    let request = format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n");
    raw_request(admin, &request).await
}

/// The current exposition of `/metrics`.
pub async fn scrape(admin: SocketAddr) -> String {
    let response = admin_get(admin, "/metrics").await;
    assert_eq!(response.status, 200, "{}", response.head);
    response.body
}

/// The value of the sample `name` whose labels include every `labels` pair;
/// 0 when there is none (a counter that never moved is not exported).
pub fn value(exposition: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    samples(exposition, name, labels).sum()
}

/// The value of a metric right now (see [`value`]).
pub async fn metric(admin: SocketAddr, name: &str, labels: &[(&str, &str)]) -> f64 {
    value(&scrape(admin).await, name, labels)
}

/// Waits until `check` returns true, re-checking every [`POLL`]; panics
/// with `what` after [`WAIT`].
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until the metric reaches `want`.
pub async fn metric_reaches(admin: SocketAddr, name: &str, labels: &[(&str, &str)], want: f64) {
    let what = format!("{name}{labels:?} == {want}");
    eventually(&what, || async {
        metric(admin, name, labels).await == want
    })
    .await;
}

/// One request a [`held_http_backend`] is holding back.
pub struct Held {
    /// The request's path.
    pub path: String,
    /// Send the body to answer 200 with it; drop to answer 500.
    pub release: tokio::sync::oneshot::Sender<String>,
}

/// A plain HTTP backend that answers each request only when the test
/// releases it: a slow backend whose pace the test sets, without sleeps.
pub async fn held_http_backend() -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<Held>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve_held(stream, tx.clone()));
        }
    });
    (addr, rx)
}

async fn serve_held(stream: tokio::net::TcpStream, held: tokio::sync::mpsc::UnboundedSender<Held>) {
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let (release, answer) = tokio::sync::oneshot::channel();
        let path = req.uri().path().to_owned();
        let _ = held.send(Held { path, release });
        async move {
            let (status, body) = match answer.await {
                Ok(body) => (200, body),
                Err(_) => (500, String::new()),
            };
            let response = hyper::Response::builder()
                .status(status)
                .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                .unwrap();
            Ok::<_, hyper::Error>(response)
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
        .await;
}

/// Whether the server end of the TCP connection `server` ← `client` has
/// received `sent` bytes and its process has read them all (nothing left
/// in its receive queue), per `ss -tin`. Lets a test know the gateway has
/// seen a partial request before it changes state, without sleeping.
pub fn server_has_read(server: SocketAddr, client: SocketAddr, sent: usize) -> bool {
    let out = std::process::Command::new("ss")
        .args(["-tinH", "state", "established"])
        .args(["src", &server.to_string(), "dst", &client.to_string()])
        .output()
        .expect("ss (iproute2) runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let unread = text
        .split_whitespace()
        .next()
        .and_then(|q| q.parse::<u64>().ok());
    let received = text
        .split_whitespace()
        .find_map(|t| t.strip_prefix("bytes_received:"))
        .and_then(|n| n.parse::<usize>().ok());
    unread == Some(0) && received == Some(sent)
}

/// A port free right now (bound, then released): only for the binary,
/// which binds what its config file says.
pub async fn free_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

/// How many times [`Binary::start`] tries ports before giving up.
const START_TRIES: usize = 3;

/// The `wsgate` binary running on a config file, its stderr captured in a
/// file; killed on drop if the test did not see it exit.
pub struct Binary {
    child: std::process::Child,
    /// The public listener (the config's first `bind`).
    pub addr: SocketAddr,
    /// The admin listener.
    pub admin: SocketAddr,
    /// Holds the config and the log.
    dir: tempfile::TempDir,
}

impl Binary {
    /// Writes `config(port, admin_port)` to a file, starts the binary on it
    /// and waits until `/readyz` answers 200. Ports from [`free_port`] can
    /// be taken by a parallel test before the binary binds them; a binary
    /// that exits because it cannot listen is started again on new ports
    /// (at most [`START_TRIES`] times).
    pub async fn start(config: impl Fn(u16, u16) -> String) -> Binary {
        for _ in 1..START_TRIES {
            if let Some(binary) = Self::try_start(&config).await {
                return binary;
            }
        }
        Self::try_start(&config)
            .await
            .expect("the binary could not listen on free ports")
    }

    /// One start; `None` when the binary exited because a port was taken.
    async fn try_start(config: &impl Fn(u16, u16) -> String) -> Option<Binary> {
        let (port, admin_port) = (free_port().await, free_port().await);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wsgate.toml");
        std::fs::write(&path, config(port, admin_port)).unwrap();
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_wsgate"))
            .args(["--config", path.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let mut binary = Binary {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            admin: SocketAddr::from(([127, 0, 0, 1], admin_port)),
            dir,
        };
        let admin = binary.admin;
        let mut exited = false;
        eventually("the binary to be ready", || {
            exited = binary.child.try_wait().unwrap().is_some();
            async move {
                exited
                    || (tokio::net::TcpStream::connect(admin).await.is_ok()
                        && admin_get(admin, "/readyz").await.status == 200)
            }
        })
        .await;
        if !exited {
            return Some(binary);
        }
        let log = binary.log();
        assert!(log.contains("cannot listen"), "the binary exited: {log}");
        None
    }

    /// The process id (to read its memory from /proc).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (`"TERM"`, `"INT"`, `"HUP"`) to the process.
    pub fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name}");
    }

    /// Waits (at most [`WAIT`]) for the process to exit.
    pub async fn exit(&mut self) -> std::process::ExitStatus {
        let mut status = None;
        eventually("the binary to exit", || {
            status = status.or(self.child.try_wait().unwrap());
            std::future::ready(status.is_some())
        })
        .await;
        status.unwrap()
    }

    /// Everything the process wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap()
    }

    /// The log's lines, each parsed as JSON (for `log_format = "json"`).
    pub fn json_log(&self) -> Vec<serde_json::Value> {
        self.log()
            .lines()
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
            })
            .collect()
    }

    /// The `fields` of every JSON log line whose message is `message`.
    pub fn json_events(&self, message: &str) -> Vec<serde_json::Value> {
        self.json_log()
            .into_iter()
            .map(|line| line["fields"].clone())
            .filter(|fields| fields["message"] == message)
            .collect()
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of the one sample `name` whose labels include every `labels`
/// pair, or `None` when no such sample is exported — unlike [`value`],
/// which reads a missing metric as 0.
pub fn sample(exposition: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<f64> = samples(exposition, name, labels).collect();
    assert!(matching.len() <= 1, "{name}{labels:?}: several samples");
    matching.first().copied()
}

/// The `(le, count)` pairs of histogram `name`'s `_bucket` samples with
/// `labels`, in exposition order (`le = +Inf` last, as `f64::INFINITY`).
pub fn buckets(exposition: &str, name: &str, labels: &[(&str, &str)]) -> Vec<(f64, f64)> {
    let bucket = format!("{name}_bucket");
    exposition
        .lines()
        .filter_map(|line| line.rsplit_once(' '))
        .filter_map(|(series, v)| {
            let (metric, rest) = series.split_once('{')?;
            let wanted = labels
                .iter()
                .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
            if metric != bucket || !wanted {
                return None;
            }
            let le = rest.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, v.parse().unwrap()))
        })
        .collect()
}

/// The values of the samples `name` whose labels include every `labels` pair.
fn samples<'a>(
    exposition: &'a str,
    name: &'a str,
    labels: &'a [(&'a str, &'a str)],
) -> impl Iterator<Item = f64> + 'a {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .filter(move |(series, _)| {
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            metric == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
        })
        .map(|(_, v)| v.parse::<f64>().unwrap())
}
