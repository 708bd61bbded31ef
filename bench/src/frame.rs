//! The few pieces of RFC 6455 framing the load generator and the echo
//! backend need: parse and encode a frame header, mask a payload, and count
//! the messages in a byte stream without buffering their payloads.
//!
//! Hand-rolled on purpose: both tools must cost far less CPU than the proxies
//! they measure, and a 64 KiB message can be counted (or echoed) as it
//! streams past instead of being collected first.

/// Continuation frame.
pub const OP_CONTINUATION: u8 = 0x0;
/// Binary data frame: every benchmark message is one.
pub const OP_BINARY: u8 = 0x2;
/// Close control frame.
pub const OP_CLOSE: u8 = 0x8;
/// Ping control frame.
pub const OP_PING: u8 = 0x9;
/// Pong control frame.
pub const OP_PONG: u8 = 0xA;

/// Longest possible frame header: 2 bytes, 8 of extended length, 4 of mask.
pub const MAX_HEADER_LEN: usize = 14;

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Last frame of its message.
    pub fin: bool,
    /// The opcode (low four bits of the first byte).
    pub opcode: u8,
    /// The masking key, present on client-to-server frames.
    pub mask: Option<[u8; 4]>,
    /// Payload length in bytes.
    pub payload_len: u64,
    /// Bytes the header itself occupies.
    pub header_len: usize,
}

impl Header {
    /// Whether this is a control frame (close, ping, pong).
    pub fn is_control(&self) -> bool {
        self.opcode & 0x8 != 0
    }
}

/// Parses the header at the start of `buf`; `None` if it is not complete yet.
pub fn parse_header(buf: &[u8]) -> Option<Header> {
    let (&b0, &b1) = (buf.first()?, buf.get(1)?);
    let (payload_len, mut pos) = match b1 & 0x7f {
        126 => (
            u64::from(u16::from_be_bytes(buf.get(2..4)?.try_into().ok()?)),
            4,
        ),
        127 => (u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?), 10),
        n => (u64::from(n), 2),
    };
    let mask = match b1 & 0x80 != 0 {
        true => {
            let key: [u8; 4] = buf.get(pos..pos + 4)?.try_into().ok()?;
            pos += 4;
            Some(key)
        }
        false => None,
    };
    Some(Header {
        fin: b0 & 0x80 != 0,
        opcode: b0 & 0x0f,
        mask,
        payload_len,
        header_len: pos,
    })
}

/// Appends a header for a frame with the FIN bit set.
pub fn encode_header(out: &mut Vec<u8>, opcode: u8, len: u64, mask: Option<[u8; 4]>) {
    encode_header_fin(out, true, opcode, len, mask);
}

/// Appends a header with an explicit FIN bit (the echo mirrors fragments).
pub fn encode_header_fin(
    out: &mut Vec<u8>,
    fin: bool,
    opcode: u8,
    len: u64,
    mask: Option<[u8; 4]>,
) {
    out.push(u8::from(fin) << 7 | opcode);
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match len {
        0..=125 => out.push(mask_bit | len as u8),
        126..=0xffff => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&len.to_be_bytes());
        }
    }
    if let Some(key) = mask {
        out.extend_from_slice(&key);
    }
}

/// XORs `data` with `key`, where `data` starts `offset` bytes into the payload.
/// Masking and unmasking are the same operation.
pub fn apply_mask(data: &mut [u8], key: [u8; 4], offset: u64) {
    let shift = (offset % 4) as usize;
    let rotated = [
        key[shift],
        key[(shift + 1) % 4],
        key[(shift + 2) % 4],
        key[(shift + 3) % 4],
    ];
    let wide = u64::from_ne_bytes([
        rotated[0], rotated[1], rotated[2], rotated[3], rotated[0], rotated[1], rotated[2],
        rotated[3],
    ]);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let word = u64::from_ne_bytes((&*chunk).try_into().expect("8-byte chunk")) ^ wide;
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    for (i, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= rotated[i % 4];
    }
}

/// A complete client-to-server frame: header plus masked payload.
pub fn client_frame(opcode: u8, payload: &[u8], key: [u8; 4]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(MAX_HEADER_LEN + payload.len());
    encode_header(&mut frame, opcode, payload.len() as u64, Some(key));
    let start = frame.len();
    frame.extend_from_slice(payload);
    apply_mask(&mut frame[start..], key, 0);
    frame
}

/// What the load generator cares about in the server's byte stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A whole data message arrived (its final frame ended).
    Message,
    /// A ping that must be answered with a pong carrying this payload.
    Ping(Vec<u8>),
    /// The server sent a close frame.
    Close,
}

/// Counts messages in a server-to-client stream, skipping payloads as they
/// stream past so that memory stays bounded whatever the message size.
#[derive(Debug, Default)]
pub struct MessageCounter {
    /// Payload bytes of the current data frame still to skip.
    skip: u64,
    /// Whether the frame being skipped ends its message.
    fin: bool,
}

impl MessageCounter {
    /// Consumes as much of `buf` as it can, reporting events to `on`, and
    /// returns how many bytes were consumed. Unconsumed bytes (a partial
    /// header or control frame) must be offered again with more data.
    pub fn feed(&mut self, buf: &[u8], mut on: impl FnMut(Event)) -> usize {
        let mut pos = 0;
        loop {
            if self.skip > 0 {
                let n = self.skip.min((buf.len() - pos) as u64);
                self.skip -= n;
                pos += n as usize;
                if self.skip > 0 {
                    return pos;
                }
                if self.fin {
                    on(Event::Message);
                }
            }
            let Some(header) = parse_header(&buf[pos..]) else {
                return pos;
            };
            if header.is_control() {
                let end = pos + header.header_len + header.payload_len as usize;
                if buf.len() < end {
                    return pos;
                }
                let payload = &buf[pos + header.header_len..end];
                match header.opcode {
                    OP_PING => on(Event::Ping(payload.to_vec())),
                    OP_CLOSE => on(Event::Close),
                    _ => {}
                }
                pos = end;
                continue;
            }
            pos += header.header_len;
            self.fin = header.fin;
            self.skip = header.payload_len;
            if self.skip == 0 && self.fin {
                on(Event::Message);
            }
        }
    }
}

/// Follows the frame boundaries of a byte stream that is forwarded
/// untouched (the relay prototypes `relaysplice` and `relayuring`): it only
/// parses headers, copying at most 14 bytes per frame, so that a relay knows
/// how much of the current frame's payload is still to come.
#[derive(Debug, Default)]
pub struct FrameTracker {
    /// The start of a header split across chunks.
    head: [u8; MAX_HEADER_LEN],
    /// Bytes of `head` in use.
    head_len: usize,
    /// Payload bytes of the current frame not yet seen.
    left: u64,
    /// Payload length of the current (last parsed) frame.
    len: u64,
    /// Frames whose header was parsed.
    frames: u64,
}

impl FrameTracker {
    /// Follows `chunk`, the next bytes of the stream.
    pub fn feed(&mut self, mut chunk: &[u8]) {
        loop {
            let skip = self.left.min(chunk.len() as u64);
            self.left -= skip;
            chunk = &chunk[skip as usize..];
            if chunk.is_empty() {
                return;
            }
            let copied = (MAX_HEADER_LEN - self.head_len).min(chunk.len());
            self.head[self.head_len..self.head_len + copied].copy_from_slice(&chunk[..copied]);
            match parse_header(&self.head[..self.head_len + copied]) {
                Some(header) => {
                    chunk = &chunk[header.header_len - self.head_len..];
                    self.head_len = 0;
                    self.left = header.payload_len;
                    self.len = header.payload_len;
                    self.frames += 1;
                }
                None => {
                    // 14 bytes always parse, so the chunk is used up.
                    self.head_len += copied;
                    return;
                }
            }
        }
    }

    /// Payload bytes of the current frame still to come.
    pub fn payload_left(&self) -> u64 {
        self.left
    }

    /// Payload length of the current frame.
    pub fn payload_len(&self) -> u64 {
        self.len
    }

    /// The rest of the current payload went past without being fed (spliced).
    pub fn skip_payload(&mut self) {
        self.left = 0;
    }

    /// Frames whose header was seen.
    pub fn frames(&self) -> u64 {
        self.frames
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6455 §5.7: a masked "Hello".
    #[test]
    fn rfc_masked_hello() {
        let frame = client_frame(0x1, b"Hello", [0x37, 0xfa, 0x21, 0x3d]);
        assert_eq!(
            frame,
            [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
        );
        let header = parse_header(&frame).unwrap();
        assert_eq!(header.payload_len, 5);
        assert_eq!(header.header_len, 6);
    }

    #[test]
    fn mask_with_offset_matches_whole() {
        let key = [1, 2, 3, 4];
        let mut whole: Vec<u8> = (0..100).collect();
        let mut parts = whole.clone();
        apply_mask(&mut whole, key, 0);
        let (a, b) = parts.split_at_mut(13);
        apply_mask(a, key, 0);
        apply_mask(b, key, 13);
        assert_eq!(whole, parts);
    }

    #[test]
    fn counter_handles_split_frames() {
        let mut stream = Vec::new();
        for len in [0u64, 5, 300, 70_000] {
            encode_header(&mut stream, OP_BINARY, len, None);
            stream.resize(stream.len() + len as usize, 7);
        }
        encode_header(&mut stream, OP_PING, 2, None);
        stream.extend_from_slice(b"hi");
        let mut counter = MessageCounter::default();
        let mut events = Vec::new();
        let mut pending: Vec<u8> = Vec::new();
        for chunk in stream.chunks(1000) {
            pending.extend_from_slice(chunk);
            let used = counter.feed(&pending, |e| events.push(e));
            pending.drain(..used);
        }
        assert!(pending.is_empty());
        assert_eq!(events.len(), 5);
        assert_eq!(events[4], Event::Ping(b"hi".to_vec()));
    }

    #[test]
    fn tracker_follows_split_headers() {
        let mut stream = Vec::new();
        let lens = [0u64, 5, 125, 126, 300, 70_000, 1 << 20];
        for len in lens {
            encode_header(&mut stream, OP_BINARY, len, Some([1, 2, 3, 4]));
            stream.resize(stream.len() + len as usize, 7);
        }
        for size in [1, 3, 13, 1000, 65536] {
            let mut tracker = FrameTracker::default();
            for chunk in stream.chunks(size) {
                tracker.feed(chunk);
            }
            assert_eq!(tracker.frames(), lens.len() as u64, "chunks of {size}");
            assert_eq!(tracker.payload_left(), 0);
            assert_eq!(tracker.payload_len(), 1 << 20);
        }
        // Skipping a payload: the next header is found after it.
        let mut tracker = FrameTracker::default();
        let big = stream.len() - (1 << 20);
        tracker.feed(&stream[..big]);
        assert_eq!(tracker.payload_left(), 1 << 20);
        tracker.skip_payload();
        tracker.feed(&stream[..2 + 4 + 4]);
        assert_eq!(tracker.frames(), lens.len() as u64 + 1);
    }
}
