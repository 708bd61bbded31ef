//! The gateway's log lines, captured in memory: for tests that must know a
//! line was written (the certificate watcher refused a broken file, a
//! backend's TLS failure was logged with its reason) instead of guessing
//! how long that takes.
//!
//! Every integration test runs in the same process, so the capture is per
//! test, not a global subscriber: [`capture`] makes a subscriber the
//! default of the calling thread for as long as the returned [`Logs`]
//! lives. A `#[tokio::test]` on the default current-thread runtime runs
//! the gateway it starts on that same thread, so it sees that gateway's
//! lines and no other test's; a multi-thread runtime (whose workers would
//! log past the capture) is refused.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::runtime::{Handle, RuntimeFlavor};
use tracing::subscriber::DefaultGuard;

use super::client::WAIT;

/// How often [`Logs::wait_for_line`] looks again.
const POLL: Duration = Duration::from_millis(20);

/// A writer appending to the captured lines.
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

/// The lines logged on this test's thread while it is alive; dropping it
/// ends the capture.
pub struct Logs {
    /// Everything logged since [`capture`].
    lines: Arc<Mutex<Vec<u8>>>,
    /// Keeps the subscriber this thread's default.
    _default: DefaultGuard,
    /// A second registered dispatcher, never used: while tracing knows of
    /// only one, it computes a new callsite's interest from the default of
    /// whichever thread hits it first, so a callsite first reached by
    /// another test's thread (no subscriber) stayed disabled here too.
    /// With two, every callsite asks every live dispatcher.
    _second: tracing::Dispatch,
}

/// Captures this thread's log lines (level `info`, no colours) until the
/// returned [`Logs`] is dropped. Call it before starting the gateway whose
/// lines a test waits for, from a current-thread `#[tokio::test]`.
pub fn capture() -> Logs {
    assert!(
        matches!(
            Handle::current().runtime_flavor(),
            RuntimeFlavor::CurrentThread
        ),
        "logs::capture() sees only the test's own thread: use a current-thread runtime"
    );
    let second = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("info")
        .with_ansi(false)
        .with_writer(move || Capture(sink.clone()))
        .finish();
    Logs {
        lines,
        _default: tracing::subscriber::set_default(subscriber),
        _second: second,
    }
}

impl Logs {
    /// The first captured line containing every one of `words`, if any.
    pub fn line_with(&self, words: &[&str]) -> Option<String> {
        self.lines_with(words).into_iter().next()
    }

    /// Waits (bounded by [`WAIT`]) for a line containing every one of
    /// `words`; on timeout the panic shows the lines that have the first
    /// word.
    pub async fn wait_for_line(&self, words: &[&str]) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(line) = self.line_with(words) {
                return line;
            }
            if tokio::time::Instant::now() >= deadline {
                let near: Vec<String> = self.lines_with(&words[..1]);
                panic!(
                    "no log line with {words:?}; lines with {:?}: {near:#?}",
                    words[0]
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Every captured line containing all of `words`.
    pub fn lines_with(&self, words: &[&str]) -> Vec<String> {
        let buffer = self.lines.lock().unwrap();
        String::from_utf8_lossy(&buffer)
            .lines()
            .filter(|line| words.iter().all(|w| line.contains(w)))
            .map(str::to_string)
            .collect()
    }
}
