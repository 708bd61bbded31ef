//! The gateway's log lines, captured in memory: for tests that must know a
//! line was written (the certificate watcher refused a broken file, a
//! backend's TLS failure was logged with its reason) instead of guessing
//! how long that takes.
//!
//! One global subscriber per test binary, installed on first use; tests of
//! a binary run in parallel, so each looks for words unique to itself (a
//! temp-dir path, a backend's port).

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use std::time::Duration;

use super::client::WAIT;

/// How often [`wait_for_line`] looks again.
const POLL: Duration = Duration::from_millis(20);

/// Everything logged since the subscriber was installed.
static LINES: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

/// A writer appending to [`LINES`].
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the capturing subscriber (level `info`, no colours) once.
/// Call it before starting the gateway whose lines a test waits for.
pub fn capture() {
    LINES.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = buffer.clone();
        tracing_subscriber::fmt()
            .with_env_filter("info")
            .with_ansi(false)
            .with_writer(move || Capture(sink.clone()))
            .init();
        buffer
    });
}

/// The first captured line containing every one of `words`, if any.
pub fn line_with(words: &[&str]) -> Option<String> {
    lines_with(words).into_iter().next()
}

/// Waits (bounded by [`WAIT`]) for a line containing every one of
/// `words`; on timeout the panic shows the lines that have the first word.
pub async fn wait_for_line(words: &[&str]) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(line) = line_with(words) {
            return line;
        }
        if tokio::time::Instant::now() >= deadline {
            let near: Vec<String> = lines_with(&words[..1]);
            panic!(
                "no log line with {words:?}; lines with {:?}: {near:#?}",
                words[0]
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Every captured line containing all of `words`.
pub fn lines_with(words: &[&str]) -> Vec<String> {
    let buffer = LINES
        .get()
        .expect("logs::capture() was called")
        .lock()
        .unwrap();
    String::from_utf8_lossy(&buffer)
        .lines()
        .filter(|line| words.iter().all(|w| line.contains(w)))
        .map(str::to_string)
        .collect()
}
