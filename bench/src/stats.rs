//! Latency samples and the summary lines the load generator prints.

use std::time::Duration;

/// Round-trip times in nanoseconds, collected per connection and merged.
#[derive(Debug, Default)]
pub struct Samples(Vec<u64>);

impl Samples {
    /// Records one round trip.
    pub fn push(&mut self, rtt: Duration) {
        self.0.push(rtt.as_nanos() as u64);
    }

    /// Takes over another connection's samples.
    pub fn merge(&mut self, other: Samples) {
        self.0.extend(other.0);
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The 50th, 90th, 99th and 99.9th percentiles (nearest rank) in
    /// microseconds, named `p50` … `p999`; empty without samples.
    pub fn percentiles(mut self) -> Vec<(&'static str, f64)> {
        if self.0.is_empty() {
            return Vec::new();
        }
        self.0.sort_unstable();
        [("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p999", 99.9)]
            .into_iter()
            .map(|(name, p)| {
                let rank = ((p / 100.0) * self.0.len() as f64).ceil() as usize;
                let value = self.0[rank.clamp(1, self.0.len()) - 1];
                (name, value as f64 / 1000.0)
            })
            .collect()
    }
}

/// Prints one result line, `name value`, which `run.sh` records.
pub fn metric(name: &str, value: f64) {
    println!("{name} {value:.3}");
}
