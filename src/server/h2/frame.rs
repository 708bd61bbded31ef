//! Frame boundaries in an HTTP/2 byte stream (RFC 9113 §4.1), found as the
//! bytes pass, without buffering them.
//!
//! The watch needs to know which frames cross the connection, and of a few
//! kinds the first bytes of what they say: a frame head is nine bytes
//! (length, type, flags, stream); read beyond it are the error code of
//! RST_STREAM, the code and start of the debug data of GOAWAY, the first
//! settings of SETTINGS, and the start of a HEADERS block. The scanner
//! keeps at most one head and [`CAPTURE`] payload bytes, and skips every
//! other payload byte by counting.

/// The client connection preface (`PRI * HTTP/2.0...`), before the first
/// frame the client sends.
const PREFACE_LEN: usize = 24;

/// A frame head's length.
const HEAD_LEN: usize = 9;

/// Payload bytes kept of RST_STREAM, GOAWAY, SETTINGS and HEADERS frames:
/// the error code, and for GOAWAY the last stream id before it and the
/// start of the debug data (h2's debug strings, such as
/// `too_many_continuations`, are shorter); ten settings (RFC 9113 and its
/// extensions define eight); a header block short enough to be h2's own
/// `431`.
pub(super) const CAPTURE: usize = 60;

/// Frame types the watch acts on (RFC 9113 §6).
pub(super) mod kind {
    /// Request or response body bytes.
    pub const DATA: u8 = 0x0;
    /// Opens a stream (or carries trailers).
    pub const HEADERS: u8 = 0x1;
    /// Ends a stream at once.
    pub const RST_STREAM: u8 = 0x3;
    /// Connection settings, or their acknowledgement.
    pub const SETTINGS: u8 = 0x4;
    /// Liveness probe, or its answer.
    pub const PING: u8 = 0x6;
    /// The connection is ending.
    pub const GOAWAY: u8 = 0x7;
}

/// The ACK flag of SETTINGS and PING.
pub(super) const ACK: u8 = 0x1;

/// The END_STREAM flag of DATA and HEADERS.
pub(super) const END_STREAM: u8 = 0x1;

/// One frame's head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Head {
    /// Payload length.
    pub len: u32,
    /// Frame type.
    pub kind: u8,
    /// Flags.
    pub flags: u8,
    /// Stream identifier (0 for the connection).
    pub stream: u32,
}

impl Head {
    fn parse(bytes: &[u8; HEAD_LEN]) -> Head {
        Head {
            len: u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]),
            kind: bytes[3],
            flags: bytes[4],
            stream: u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]) & 0x7fff_ffff,
        }
    }

    /// How many payload bytes of this frame the watch reads.
    fn capture(&self) -> usize {
        match self.kind {
            kind::RST_STREAM | kind::GOAWAY | kind::SETTINGS | kind::HEADERS => {
                (self.len as usize).min(CAPTURE)
            }
            _ => 0,
        }
    }
}

/// Where the scanner is in the byte stream.
#[derive(Debug, Clone, Copy)]
enum State {
    /// Inside the client preface; this many bytes of it are still to come.
    Preface(usize),
    /// Inside a frame head; `have` bytes of it are in `head`.
    Head { have: usize },
    /// Inside a frame's payload: `captured` of the bytes to keep are in
    /// `capture`, `left` payload bytes are still to come.
    Payload {
        head: Head,
        captured: usize,
        left: u32,
    },
}

/// Finds frames in one direction of a connection.
#[derive(Debug, Clone)]
pub(super) struct Scanner {
    state: State,
    head: [u8; HEAD_LEN],
    capture: [u8; CAPTURE],
}

impl Scanner {
    /// For what the client sends: the preface, then frames.
    pub(super) fn client() -> Scanner {
        Scanner::starting(State::Preface(PREFACE_LEN))
    }

    /// For what the server sends: frames from the first byte.
    pub(super) fn server() -> Scanner {
        Scanner::starting(State::Head { have: 0 })
    }

    fn starting(state: State) -> Scanner {
        Scanner {
            state,
            head: [0; HEAD_LEN],
            capture: [0; CAPTURE],
        }
    }

    /// Takes the next bytes of the stream; calls `on` once per frame with
    /// its head and the start of its payload (up to [`CAPTURE`] bytes, for
    /// RST_STREAM, GOAWAY, SETTINGS and HEADERS; empty for the others), as
    /// soon as those are in.
    pub(super) fn feed(&mut self, mut bytes: &[u8], on: &mut impl FnMut(Head, &[u8])) {
        while !bytes.is_empty() {
            let used = self.step(bytes, on);
            bytes = &bytes[used..];
        }
    }

    /// Where in `bytes` (slices of one stream, in order) the first frame
    /// that `pick` takes begins, scanning a copy of this scanner. `pick`
    /// sees each frame as [`feed`](Self::feed) reports it; a frame that
    /// began before `bytes` is passed over. `None` when no frame is picked.
    pub(super) fn find<'a>(
        &self,
        bytes: impl IntoIterator<Item = &'a [u8]>,
        mut pick: impl FnMut(Head, &[u8]) -> bool,
    ) -> Option<usize> {
        let mut copy = self.clone();
        let (mut offset, mut start) = (0, None);
        for slice in bytes {
            let mut rest = slice;
            while !rest.is_empty() {
                if let State::Head { have: 0 } = copy.state {
                    start = Some(offset);
                }
                let mut picked = false;
                let used = copy.step(rest, &mut |head, captured| {
                    picked = pick(head, captured);
                });
                if picked && start.is_some() {
                    return start;
                }
                offset += used;
                rest = &rest[used..];
            }
        }
        None
    }

    /// Consumes some of `bytes` (at least one); returns how many.
    fn step(&mut self, bytes: &[u8], on: &mut impl FnMut(Head, &[u8])) -> usize {
        match self.state {
            State::Preface(left) => {
                let used = left.min(bytes.len());
                self.state = match left - used {
                    0 => State::Head { have: 0 },
                    left => State::Preface(left),
                };
                used
            }
            State::Head { have } => {
                let used = (HEAD_LEN - have).min(bytes.len());
                self.head[have..have + used].copy_from_slice(&bytes[..used]);
                if have + used < HEAD_LEN {
                    self.state = State::Head { have: have + used };
                } else {
                    self.begin_payload(Head::parse(&self.head), on);
                }
                used
            }
            State::Payload {
                head,
                captured,
                left,
            } => {
                let used = (left as usize).min(bytes.len());
                let want = head.capture() - captured;
                let kept = want.min(used);
                self.capture[captured..captured + kept].copy_from_slice(&bytes[..kept]);
                if want > 0 && kept == want {
                    on(head, &self.capture[..head.capture()]);
                }
                self.state = match left as usize - used {
                    0 => State::Head { have: 0 },
                    rest => State::Payload {
                        head,
                        captured: captured + kept,
                        left: rest as u32,
                    },
                };
                used
            }
        }
    }

    /// A head is complete: report the frame now unless payload bytes are
    /// to be kept first.
    fn begin_payload(&mut self, head: Head, on: &mut impl FnMut(Head, &[u8])) {
        if head.capture() == 0 {
            on(head, &[]);
        }
        self.state = match head.len {
            0 => State::Head { have: 0 },
            left => State::Payload {
                head,
                captured: 0,
                left,
            },
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut out = len.to_be_bytes()[1..].to_vec();
        out.extend_from_slice(&[kind, flags]);
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    fn scan(scanner: &mut Scanner, bytes: &[u8], chunk: usize) -> Vec<(Head, Vec<u8>)> {
        let mut seen = Vec::new();
        for piece in bytes.chunks(chunk) {
            scanner.feed(piece, &mut |head, captured| {
                seen.push((head, captured.to_vec()))
            });
        }
        seen
    }

    /// The same frames come out whatever the read sizes, one byte at a
    /// time included, and payloads are skipped, not mistaken for heads.
    #[test]
    fn frames_are_found_across_any_split() {
        let mut stream = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        stream.extend(frame(kind::SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100]));
        stream.extend(frame(kind::HEADERS, 0x5, 1, &[0x82; 20]));
        stream.extend(frame(0x0, 0, 1, &[kind::PING; 300]));
        stream.extend(frame(kind::RST_STREAM, 0, 1, &[0, 0, 0, 8]));
        stream.extend(frame(kind::SETTINGS, ACK, 0, &[]));
        for chunk in [1, 2, 7, 9, 10, 64, 4096] {
            let seen = scan(&mut Scanner::client(), &stream, chunk);
            let kinds: Vec<u8> = seen.iter().map(|(h, _)| h.kind).collect();
            assert_eq!(kinds, [4, 1, 0, 3, 4], "chunk {chunk}");
            assert_eq!(seen[2].0.len, 300);
            assert_eq!(seen[3].1, [0, 0, 0, 8], "RST_STREAM's code is kept");
            assert_eq!(seen[4].0.flags, ACK);
            assert_eq!(seen[1].0.stream, 1);
        }
    }

    #[test]
    fn goaway_debug_data_is_kept_up_to_the_capture() {
        let mut payload = vec![0, 0, 0, 5, 0, 0, 0, 0x0b];
        payload.extend_from_slice(b"too_many_continuations");
        let long = [b'x'; 100];
        let mut stream = frame(kind::GOAWAY, 0, 0, &payload);
        stream.extend(frame(kind::GOAWAY, 0, 0, &long));
        let seen = scan(&mut Scanner::server(), &stream, 3);
        assert_eq!(seen.len(), 2);
        assert_eq!(&seen[0].1[8..], b"too_many_continuations");
        assert_eq!(seen[1].1.len(), CAPTURE);
    }

    #[test]
    fn the_stream_bit_is_masked_and_lengths_are_24_bits() {
        let mut bytes = [0xff, 0xff, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff];
        let head = Head::parse(&bytes);
        assert_eq!((head.len, head.stream), (0xff_ffff, 0x7fff_ffff));
        bytes[0] = 0;
        assert_eq!(Head::parse(&bytes).len, 0xffff);
    }
}
