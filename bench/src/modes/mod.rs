//! The load generator's measurements. Each prints `name value` lines on
//! stdout (see [`crate::stats::metric`]) and returns an error message when
//! the run is not trustworthy (a connection failed, nothing was measured).
//!
//! Every wait is bounded: connection set-up, reads and the final drain all
//! have deadlines, so a stuck proxy makes a run fail instead of hang.

mod handshake;
mod hold;
mod load;

pub use handshake::{handshakes, probe};
pub use hold::{hold, FIRST_MESSAGE};
pub use load::{fixed_rate, throughput, LoadSpec};

use std::time::Duration;

/// How long a single read may wait for an echo before the connection
/// counts as stuck.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long connection set-up (all connections) may take.
const CONNECT_DEADLINE: Duration = Duration::from_secs(60);

/// How long connection tasks get to finish after the measurement window.
const DRAIN_DEADLINE: Duration = Duration::from_secs(5);

/// Read buffer of a busy connection: one large read can carry many echoes.
const BUSY_READ_BUF: usize = 64 * 1024;

/// Read buffer of an idle or handshake-only connection.
const SMALL_READ_BUF: usize = 256;
