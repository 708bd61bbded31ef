//! Streaming UTF-8 validation of text messages (RFC 6455 §8.1).
//!
//! The relay forwards payloads as they arrive, so a text message is checked
//! piece by piece: a code point split across reads or frames is carried (at
//! most 3 bytes) until its end arrives. Masked payloads are unmasked into a
//! small stack scratch for the check only; the forwarded bytes stay as they
//! came. No allocation, no buffering of the message.

use super::frame::apply_mask;

/// Bytes unmasked per check of a masked payload.
const SCRATCH: usize = 512;

/// Validation state of one text message.
#[derive(Debug, Clone, Copy, Default)]
pub struct Utf8Stream {
    /// The start of a code point whose remaining bytes have not arrived yet.
    partial: [u8; 3],
    partial_len: u8,
}

impl Utf8Stream {
    /// Checks the next piece of the message; false if it cannot be UTF-8
    /// whatever follows.
    pub fn feed(&mut self, mut bytes: &[u8]) -> bool {
        if self.partial_len > 0 {
            let held = usize::from(self.partial_len);
            let need = sequence_len(self.partial[0]) - held;
            let take = need.min(bytes.len());
            let mut joined = [0u8; 4];
            joined[..held].copy_from_slice(&self.partial[..held]);
            joined[held..held + take].copy_from_slice(&bytes[..take]);
            self.partial_len = 0;
            if !self.check(&joined[..held + take]) {
                return false;
            }
            bytes = &bytes[take..];
        }
        self.check(bytes)
    }

    /// As [`feed`](Self::feed), for payload bytes as they are on the wire:
    /// masked with `mask` (if any), starting `phase` bytes into the key
    /// (the frame offset modulo 4).
    pub fn feed_payload(&mut self, bytes: &[u8], mask: Option<[u8; 4]>, phase: u8) -> bool {
        match mask {
            Some(key) => self.feed_masked(bytes, key, usize::from(phase)),
            None => self.feed(bytes),
        }
    }

    fn feed_masked(&mut self, bytes: &[u8], key: [u8; 4], phase: usize) -> bool {
        let mut scratch = [0u8; SCRATCH];
        // SCRATCH is a multiple of 4: every piece starts at the same phase.
        bytes.chunks(SCRATCH).all(|piece| {
            let plain = &mut scratch[..piece.len()];
            plain.copy_from_slice(piece);
            apply_mask(plain, key, phase);
            self.feed(plain)
        })
    }

    /// The message ended: valid only if no code point was left unfinished.
    pub fn is_complete(&self) -> bool {
        self.partial_len == 0
    }

    /// Validates `bytes` as a continuation of the stream, keeping a trailing
    /// incomplete code point (never set on entry).
    fn check(&mut self, bytes: &[u8]) -> bool {
        match std::str::from_utf8(bytes) {
            Ok(_) => true,
            Err(e) if e.error_len().is_some() => false,
            Err(e) => {
                let rest = &bytes[e.valid_up_to()..];
                self.partial[..rest.len()].copy_from_slice(rest);
                // Fits in u8: an incomplete code point is at most 3 bytes.
                self.partial_len = rest.len() as u8;
                true
            }
        }
    }
}

/// The length of the code point a (valid) lead byte starts.
fn sequence_len(lead: u8) -> usize {
    match lead {
        0xF0.. => 4,
        0xE0.. => 3,
        _ => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `bytes` split at every pair of points; returns the verdicts.
    fn verdicts(bytes: &[u8]) -> Vec<bool> {
        let mut out = Vec::new();
        for a in 0..=bytes.len() {
            for b in a..=bytes.len() {
                let mut s = Utf8Stream::default();
                let ok = s.feed(&bytes[..a])
                    && s.feed(&bytes[a..b])
                    && s.feed(&bytes[b..])
                    && s.is_complete();
                out.push(ok);
            }
        }
        out
    }

    #[test]
    fn agrees_with_std_whatever_the_split() {
        let samples: [&[u8]; 10] = [
            b"hello",
            "κόσμε".as_bytes(),
            "€𝄞ü".as_bytes(),
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited", // surrogate
            b"\xf4\x90\x80\x80",                                               // > U+10FFFF
            b"\xc0\xaf",                                                       // overlong
            b"\xe2\x82",                                                       // truncated
            b"ab\xf0\x9f\x98",                                                 // truncated 4-byte
            b"\xff",
            b"",
        ];
        for sample in samples {
            let expected = std::str::from_utf8(sample).is_ok();
            assert!(
                verdicts(sample).iter().all(|&v| v == expected),
                "{sample:02x?} should be {expected}"
            );
        }
    }

    #[test]
    fn fails_at_the_first_impossible_byte_not_at_the_end() {
        let mut s = Utf8Stream::default();
        assert!(s.feed("κό".as_bytes()));
        assert!(!s.feed(b"\xce\xff"), "0xff can never continue a code point");
        let mut s = Utf8Stream::default();
        assert!(s.feed(b"\xf0\x9f"), "a prefix is fine so far");
        assert!(!s.is_complete());
    }

    #[test]
    fn masked_payloads_are_checked_unmasked_at_any_offset() {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        let text = "a long-ish text with ü and 𝄞 repeated ".repeat(40);
        let mut masked = text.as_bytes().to_vec();
        apply_mask(&mut masked, key, 0);
        for split in [0, 1, 3, 513, 700, masked.len()] {
            let mut s = Utf8Stream::default();
            assert!(s.feed_payload(&masked[..split], Some(key), 0));
            assert!(s.feed_payload(&masked[split..], Some(key), (split % 4) as u8));
            assert!(s.is_complete(), "split at {split}");
        }
        let mut bad = b"abc\xffdef".to_vec();
        apply_mask(&mut bad, key, 0);
        assert!(!Utf8Stream::default().feed_payload(&bad, Some(key), 0));
    }
}
