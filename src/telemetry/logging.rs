//! Log output: text lines (coloured only on a terminal) or one JSON object
//! per line (`server.log_format = "json"`), always to stderr, filtered by
//! `RUST_LOG` (default `info`). Request ids travel in a span, so both
//! formats carry them on every line a request logs.

use std::io::IsTerminal;

use crate::config::LogFormat;

/// The filter used when `RUST_LOG` is unset or invalid.
const DEFAULT_FILTER: &str = "info";

/// Installs the global subscriber; call once, early.
pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().with_current_span(true).init(),
    }
}
