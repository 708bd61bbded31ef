//! CPU time and resident memory of the proxy under test, read from
//! `/proc/PID/stat` and `/proc/PID/status`, and its open file descriptors
//! (`/proc/PID/fd`) for the soak test.
//!
//! CPU per message is the main figure of the benchmark: on a small machine
//! the load generator competes with the proxy for cores, so raw throughput
//! says as much about the scheduler as about the proxy, while the CPU time
//! the proxy itself spent per relayed message does not.

use std::fs;
use std::io;

/// The processes that make up one proxy (nginx: master and worker).
#[derive(Debug, Clone)]
pub struct Watch {
    /// Process ids to sum over.
    pids: Vec<u32>,
    /// Clock ticks per second of `utime`/`stime` (`getconf CLK_TCK`).
    clk_tck: u64,
}

impl Watch {
    /// Watches `pids`; an empty list means "no proxy" (the direct target).
    pub fn new(pids: Vec<u32>, clk_tck: u64) -> Watch {
        Watch { pids, clk_tck }
    }

    /// Whether there is anything to watch.
    pub fn is_empty(&self) -> bool {
        self.pids.is_empty()
    }

    /// User plus system CPU time of all watched processes, in microseconds.
    pub fn cpu_us(&self) -> io::Result<f64> {
        let mut ticks = 0;
        for &pid in &self.pids {
            ticks += cpu_ticks(pid)?;
        }
        Ok(ticks as f64 * 1e6 / self.clk_tck as f64)
    }

    /// Resident set size of all watched processes, in KiB.
    pub fn rss_kib(&self) -> io::Result<u64> {
        let mut total = 0;
        for &pid in &self.pids {
            total += rss_kib(pid)?;
        }
        Ok(total)
    }
}

/// Open file descriptors of one process: the entries of `/proc/PID/fd`.
pub fn fd_count(pid: u32) -> io::Result<usize> {
    Ok(fs::read_dir(format!("/proc/{pid}/fd"))?.count())
}

/// `utime + stime` of one process (all its threads, live and exited).
fn cpu_ticks(pid: u32) -> io::Result<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may contain spaces; fields after it are
    // plain. utime and stime are fields 14 and 15, i.e. 12 and 13 after ")".
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| bad(pid, "stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| -> io::Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| bad(pid, "stat"))
    };
    Ok(field(11)? + field(12)?)
}

/// `VmRSS` of one process, in KiB.
pub fn rss_kib(pid: u32) -> io::Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| bad(pid, "status"))
}

/// The error for a `/proc` file that does not look as expected.
fn bad(pid: u32, file: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("cannot parse /proc/{pid}/{file}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        let watch = Watch::new(vec![std::process::id()], 100);
        assert!(watch.cpu_us().is_ok());
        assert!(watch.rss_kib().unwrap() > 0);
        assert!(fd_count(std::process::id()).unwrap() >= 3);
    }
}
