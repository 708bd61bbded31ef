//! The gateway under test, seen from outside: open file descriptors and
//! RSS from `/proc`, and its `/metrics` over a one-shot HTTP/1.0 request
//! (no keep-alive, so scraping leaves no descriptor open in the gateway).

use std::io;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::procfs;

/// One look at the gateway process.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    /// Entries of `/proc/PID/fd`.
    pub fds: usize,
    /// `VmRSS` in KiB.
    pub rss_kib: u64,
}

/// The gateway process and its admin listener.
#[derive(Debug, Clone)]
pub struct Gateway {
    /// Process id.
    pub pid: u32,
    /// `ip:port` of the admin listener.
    pub admin: String,
}

impl Gateway {
    /// File descriptors and RSS now; an error if the process is gone.
    pub fn sample(&self) -> io::Result<Sample> {
        Ok(Sample {
            fds: procfs::fd_count(self.pid)?,
            rss_kib: procfs::rss_kib(self.pid)?,
        })
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> Result<Metrics, String> {
        let fetch = async {
            let mut tcp = TcpStream::connect(self.admin.as_str()).await?;
            tcp.write_all(b"GET /metrics HTTP/1.0\r\nHost: soak\r\n\r\n")
                .await?;
            let mut raw = Vec::new();
            tcp.read_to_end(&mut raw).await?;
            Ok::<_, io::Error>(raw)
        };
        let raw = timeout(Duration::from_secs(10), fetch)
            .await
            .map_err(|_| "metrics: no answer within 10 s".to_string())?
            .map_err(|e| format!("metrics: {e}"))?;
        let text = String::from_utf8_lossy(&raw);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| "metrics: no response head".to_string())?;
        if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
            let line = head.lines().next().unwrap_or_default();
            return Err(format!("metrics: {line}"));
        }
        Ok(Metrics(body.to_string()))
    }
}

/// A scrape of `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct Metrics(String);

impl Metrics {
    /// Sum of every sample of `name` whose labels contain all of `labels`
    /// (each written as in the exposition, e.g. `code="1011"`).
    pub fn sum(&self, name: &str, labels: &[&str]) -> f64 {
        self.0
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                let (metric, rest) = match series.find('{') {
                    Some(i) => (&series[..i], &series[i..]),
                    None => (series, ""),
                };
                (metric == name && labels.iter().all(|l| rest.contains(l)))
                    .then(|| value.parse::<f64>().ok())
                    .flatten()
            })
            .sum()
    }
}

impl Metrics {
    /// Every sample line of `name` with a non-zero value, as exposed.
    pub fn series(&self, name: &str) -> Vec<String> {
        self.0
            .lines()
            .filter(|line| {
                line.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
            })
            .filter(|line| line.rsplit_once(' ').is_some_and(|(_, v)| v != "0"))
            .map(str::to_owned)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::Metrics;

    #[test]
    fn sums_matching_series() {
        let m = Metrics(
            "# TYPE a counter\na_total{route=\"r\",code=\"1011\"} 3\n\
             a_total{route=\"r\",code=\"1000\"} 4\na_total_x 9\nb 2.5\n"
                .into(),
        );
        assert_eq!(m.sum("a_total", &[]), 7.0);
        assert_eq!(m.sum("a_total", &["code=\"1011\""]), 3.0);
        assert_eq!(m.sum("b", &[]), 2.5);
        assert_eq!(m.sum("c", &[]), 0.0);
    }
}
