//! What the watch learned about one connection, shared with the server:
//! when the client acknowledged our SETTINGS, how many streams it opened,
//! the flood that cut it, the GOAWAY the gateway sent.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;

/// What a flood of one frame type ended the connection as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(in crate::server::h2) enum Flood {
    /// SETTINGS over [`SETTINGS_BUDGET`].
    Settings = 1,
    /// PING over [`PING_BUDGET`].
    Ping = 2,
    /// RST_STREAM over [`RESET_BUDGET`].
    Reset = 3,
}

impl Flood {
    fn from_u8(n: u8) -> Option<Flood> {
        [Flood::Settings, Flood::Ping, Flood::Reset]
            .into_iter()
            .find(|f| *f as u8 == n)
    }

    /// The `end` label of `wsgate_http2_connections_total`.
    pub(in crate::server::h2) fn label(self) -> &'static str {
        match self {
            Flood::Settings => "settings_flood",
            Flood::Ping => "ping_flood",
            Flood::Reset => "rapid_reset",
        }
    }
}

/// A GOAWAY the gateway sent: its error code and the start of its debug data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::server::h2) struct GoAway {
    /// The error code.
    pub code: u32,
    /// The debug data, as far as it was kept.
    pub debug: Vec<u8>,
}

/// What the watch learned about one connection; shared with the server.
#[derive(Debug)]
pub(in crate::server::h2) struct Seen {
    /// How many streams the client had opened when its first SETTINGS ACK
    /// passed; `u64::MAX` until then.
    pub(super) opened_before_ack: AtomicU64,
    /// Streams the client opened (HEADERS frames on a new stream).
    pub(super) streams: AtomicU64,
    /// The [`Flood`] that cut the connection, as its `u8`; 0 for none.
    pub(super) flood: AtomicU8,
    /// The first GOAWAY with an error code the gateway sent.
    pub(super) goaway: Mutex<Option<GoAway>>,
}

impl Default for Seen {
    fn default() -> Seen {
        Seen {
            opened_before_ack: AtomicU64::new(u64::MAX),
            streams: AtomicU64::default(),
            flood: AtomicU8::default(),
            goaway: Mutex::default(),
        }
    }
}

impl Seen {
    /// Whether the client had acknowledged our SETTINGS before it opened
    /// its `nth` stream (1 for the first).
    pub(in crate::server::h2) fn settings_acked_before(&self, nth: u64) -> bool {
        nth > self.opened_before_ack.load(Ordering::Acquire)
    }

    /// The client's first SETTINGS ACK passed, after `opened` streams.
    pub(super) fn acked_after(&self, opened: u64) {
        let not_yet = u64::MAX;
        let (now, first) = (Ordering::AcqRel, Ordering::Relaxed);
        self.opened_before_ack
            .compare_exchange(not_yet, opened, now, first)
            .ok();
    }

    /// Streams the client opened.
    pub(in crate::server::h2) fn streams(&self) -> u64 {
        self.streams.load(Ordering::Relaxed)
    }

    /// The flood that cut the connection, if one did.
    pub(in crate::server::h2) fn flood(&self) -> Option<Flood> {
        Flood::from_u8(self.flood.load(Ordering::Relaxed))
    }

    /// The GOAWAY with an error the gateway sent, if any.
    pub(in crate::server::h2) fn goaway(&self) -> Option<GoAway> {
        self.goaway
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
