//! `server.workers`: how many single-threaded runtimes serve connections
//! (0 = one per CPU), bounded so a typo cannot start thousands of threads.

use super::super::file::defaults;
use super::Errors;

/// Most workers accepted: far above the cores of any machine wsgate runs on.
pub(super) const MAX_WORKERS: i64 = 1024;

/// Validates `server.workers`, applying the default.
pub(super) fn workers(errors: &mut Errors, raw: Option<i64>) -> usize {
    match raw {
        None => defaults::WORKERS,
        Some(n) if (0..=MAX_WORKERS).contains(&n) => n as usize,
        Some(n) => {
            errors.push(
                "server.workers",
                format!("must be 0 (one per CPU) or a count up to {MAX_WORKERS}, not {n}"),
            );
            defaults::WORKERS
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use std::path::Path;

    fn parse(server: &str) -> Result<Config, Vec<String>> {
        let toml = format!(
            "[server]\n{server}\n[[listeners]]\nbind = \"127.0.0.1:0\"\n[[routes]]\nbackends = [\"ws://127.0.0.1:9\"]\n"
        );
        Config::parse(&toml, Path::new("."))
            .map_err(|e| e.0.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn workers_default_to_one_per_cpu_and_take_a_count() {
        assert_eq!(parse("").unwrap().server.workers, 0);
        assert_eq!(parse("workers = 3").unwrap().server.workers, 3);
    }

    #[test]
    fn negative_or_absurd_worker_counts_name_the_key() {
        for bad in ["workers = -1", "workers = 5000"] {
            let errors = parse(bad).unwrap_err();
            assert!(
                errors.iter().any(|e| e.contains("server.workers")),
                "{bad}: {errors:?}"
            );
        }
    }
}
