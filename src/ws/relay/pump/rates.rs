//! The client's rate limits, in the client → backend pump only:
//! `client_messages_per_second` is checked as each message starts (one
//! comparison against a clock read once per socket read, no allocation),
//! `client_bytes_per_second` charges each read and, while the client is in
//! debt, stops reading it: backpressure through TCP, nothing dropped.

use crate::ws::relay::split::WithTcp;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use super::{Mode, Pump};
use crate::limits::rate::Rate;

/// The client's buckets and the clock of its last read.
#[derive(Debug)]
pub(super) struct ClientRates {
    /// When the bytes being walked were read.
    now: Instant,
    /// `client_messages_per_second`.
    messages: Option<Rate>,
    /// `client_bytes_per_second`.
    bytes: Option<Rate>,
    /// Reads that put the client in debt (each a pause).
    pauses: u64,
    /// The current pause was reported to the connection (which then arms
    /// its timer for the pause's end).
    reported: bool,
}

impl ClientRates {
    /// Buckets for the configured limits; `None` when there are none.
    pub(super) fn new(cfg: &crate::ws::relay::RelayConfig) -> Option<Box<ClientRates>> {
        let now = Instant::now();
        let messages = cfg
            .client_messages
            .map(|m| Rate::new(u64::from(m.per_second), u64::from(m.burst), now));
        let bytes = cfg.client_bytes_per_second.map(|b| Rate::new(b, b, now));
        (messages.is_some() || bytes.is_some()).then(|| {
            Box::new(ClientRates {
                now,
                messages,
                bytes,
                pauses: 0,
                reported: false,
            })
        })
    }
}

impl<R: AsyncRead + Unpin + WithTcp, W: AsyncWrite + Unpin + WithTcp> Pump<R, W> {
    /// Takes a message from the client's bucket; false when it is empty.
    pub(super) fn take_message(&mut self) -> bool {
        match self.rates.as_deref_mut() {
            Some(ClientRates {
                now,
                messages: Some(rate),
                ..
            }) => rate.try_take(1, *now),
            _ => true,
        }
    }

    /// Charges `n` bytes just read; reads the clock for the walk to come.
    pub(super) fn charge_read(&mut self, n: usize) {
        let Some(rates) = self.rates.as_deref_mut() else {
            return;
        };
        rates.now = Instant::now();
        if let Some(bytes) = &mut rates.bytes {
            bytes.charge(n as u64, rates.now);
            if bytes.resume_at(rates.now).is_some() {
                rates.pauses += 1;
            }
        }
    }

    /// Whether the client's bytes are metered (`client_bytes_per_second`):
    /// then every read is, and nothing is spliced.
    pub(super) fn bytes_metered(&self) -> bool {
        self.rates.as_deref().is_some_and(|r| r.bytes.is_some())
    }

    /// How many bytes the next read may take (at least one).
    pub(super) fn read_allowance(&self, room: usize) -> usize {
        match self.rates.as_deref() {
            Some(ClientRates {
                bytes: Some(bytes), ..
            }) => {
                let allowed = bytes.available(Instant::now()).max(1);
                room.min(usize::try_from(allowed).unwrap_or(usize::MAX))
            }
            _ => room,
        }
    }

    /// When reading the client may resume, while it is paused for its byte
    /// rate. Only relaying is paused; waiting for a close reply is not.
    pub(in crate::ws::relay) fn resume_at(&self) -> Option<Instant> {
        let bytes = self.rates.as_deref()?.bytes.as_ref()?;
        match self.mode {
            Mode::Forward => bytes.resume_at(Instant::now()),
            _ => None,
        }
    }

    /// Whether reading must wait for the byte rate: `Some(true)` the first
    /// time a pause is seen (the connection must learn of it to arm its
    /// timer), `Some(false)` after that.
    pub(super) fn paused(&mut self) -> Option<bool> {
        let paused = self.resume_at().is_some();
        let rates = self.rates.as_deref_mut()?;
        if !paused {
            rates.reported = false;
            return None;
        }
        Some(!std::mem::replace(&mut rates.reported, true))
    }

    /// Reads that paused the client.
    pub(in crate::ws::relay) fn pauses(&self) -> u64 {
        self.rates.as_deref().map_or(0, |r| r.pauses)
    }
}
