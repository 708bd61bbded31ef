//! The frame-header codec (RFC 6455 §5.2): pure functions, no I/O.
//!
//! Only headers are decoded. Payloads stay where they are and stay masked, so
//! the relay can forward them untouched; the gateway unmasks a stack copy only
//! for the tiny control frames it has to look into (close, pong). The few
//! frames the gateway writes itself are built in a fixed-size array, so no
//! path through this module allocates.

use thiserror::Error;

/// Largest payload a control frame may carry (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// Largest close reason: a control payload minus the two-byte status code.
pub const MAX_CLOSE_REASON: usize = MAX_CONTROL_PAYLOAD - 2;

/// Longest possible frame header: 2 fixed bytes, 8 length bytes, 4 mask bytes.
pub const MAX_HEADER_LEN: usize = 14;

/// What a frame carries (RFC 6455 §5.2, the 4-bit opcode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpCode {
    /// A later fragment of a fragmented data message.
    Continuation,
    /// The first (or only) frame of a UTF-8 text message.
    Text,
    /// The first (or only) frame of a binary message.
    Binary,
    /// Starts or answers the close handshake.
    Close,
    /// Keepalive probe; the peer answers with a pong.
    Ping,
    /// Answer to a ping (or an unsolicited heartbeat).
    Pong,
}

impl OpCode {
    /// Decodes the 4-bit opcode; `None` for the reserved values.
    pub fn from_u8(bits: u8) -> Option<Self> {
        match bits {
            0x0 => Some(Self::Continuation),
            0x1 => Some(Self::Text),
            0x2 => Some(Self::Binary),
            0x8 => Some(Self::Close),
            0x9 => Some(Self::Ping),
            0xA => Some(Self::Pong),
            _ => None,
        }
    }

    /// The 4-bit wire value.
    pub fn as_u8(self) -> u8 {
        match self {
            Self::Continuation => 0x0,
            Self::Text => 0x1,
            Self::Binary => 0x2,
            Self::Close => 0x8,
            Self::Ping => 0x9,
            Self::Pong => 0xA,
        }
    }

    /// Control frames (close, ping, pong) may not be fragmented, carry at most
    /// 125 bytes, and may appear between the fragments of a data message.
    pub fn is_control(self) -> bool {
        matches!(self, Self::Close | Self::Ping | Self::Pong)
    }
}

/// A decoded frame header; the payload follows it in the same buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Last frame of its message.
    pub fin: bool,
    /// Set on the first frame of a compressed message (permessage-deflate).
    pub rsv1: bool,
    /// What the frame carries.
    pub opcode: OpCode,
    /// The masking key, present on every frame a client sends.
    pub mask: Option<[u8; 4]>,
    /// Payload length in bytes.
    pub payload_len: u64,
    /// Bytes taken by the header itself, i.e. where the payload starts.
    pub header_len: usize,
}

/// A protocol violation; each one makes the gateway close with 1002.
///
/// The relay-level rules (masking direction, fragmentation order, close
/// payloads) live here too so that one enum names every way a peer can break
/// the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum FrameError {
    /// Opcodes 0x3–0x7 and 0xB–0xF are reserved.
    #[error("reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    /// RSV2 or RSV3 set; no extension that uses them is ever negotiated.
    #[error("RSV2/RSV3 bit set")]
    ReservedBits,
    /// RSV1 set without permessage-deflate, or on a continuation or control frame.
    #[error("RSV1 bit set where not allowed")]
    Rsv1NotAllowed,
    /// A control frame without FIN.
    #[error("fragmented control frame")]
    FragmentedControl,
    /// A control frame longer than 125 bytes.
    #[error("control frame payload of {0} bytes exceeds 125")]
    ControlTooLong(u64),
    /// A 64-bit payload length with the most significant bit set.
    #[error("64-bit payload length with the most significant bit set")]
    LengthMsbSet,
    /// A client sent an unmasked frame (RFC 6455 §5.1).
    #[error("unmasked frame from client")]
    UnmaskedClientFrame,
    /// A server sent a masked frame (RFC 6455 §5.1).
    #[error("masked frame from server")]
    MaskedServerFrame,
    /// A continuation frame with no fragmented message in progress.
    #[error("continuation frame without a message to continue")]
    UnexpectedContinuation,
    /// A new text/binary frame while a fragmented message is unfinished.
    #[error("new data frame inside an unfinished fragmented message")]
    InterleavedMessage,
    /// A close payload of exactly one byte.
    #[error("close payload of one byte")]
    CloseTooShort,
    /// A close status code that may not be sent on the wire.
    #[error("invalid close code {0}")]
    InvalidCloseCode(u16),
    /// A close reason that is not UTF-8.
    #[error("close reason is not valid UTF-8")]
    InvalidCloseReason,
}

/// Parses the header at the start of `buf`.
///
/// Returns `Ok(None)` when `buf` holds only part of the header. Errors are
/// reported as soon as the bytes that show them are present. `rsv1_allowed`
/// says whether permessage-deflate was negotiated; even then RSV1 is only
/// valid on the first frame of a data message.
pub fn parse_header(buf: &[u8], rsv1_allowed: bool) -> Result<Option<FrameHeader>, FrameError> {
    let Some(&b0) = buf.first() else {
        return Ok(None);
    };
    let (fin, rsv1, opcode) = parse_first_byte(b0, rsv1_allowed)?;
    let Some(&b1) = buf.get(1) else {
        return Ok(None);
    };
    let short_len = b1 & 0x7F;
    if opcode.is_control() && usize::from(short_len) > MAX_CONTROL_PAYLOAD {
        return Err(FrameError::ControlTooLong(u64::from(short_len)));
    }
    let Some((payload_len, len_end)) = parse_length(buf, short_len)? else {
        return Ok(None);
    };
    let masked = b1 & 0x80 != 0;
    let header_len = len_end + if masked { 4 } else { 0 };
    if buf.len() < header_len {
        return Ok(None);
    }
    let mask = masked.then(|| {
        [
            buf[len_end],
            buf[len_end + 1],
            buf[len_end + 2],
            buf[len_end + 3],
        ]
    });
    Ok(Some(FrameHeader {
        fin,
        rsv1,
        opcode,
        mask,
        payload_len,
        header_len,
    }))
}

/// Checks FIN, the RSV bits and the opcode in the first header byte.
fn parse_first_byte(b0: u8, rsv1_allowed: bool) -> Result<(bool, bool, OpCode), FrameError> {
    let fin = b0 & 0x80 != 0;
    let rsv1 = b0 & 0x40 != 0;
    if b0 & 0x30 != 0 {
        return Err(FrameError::ReservedBits);
    }
    let opcode = OpCode::from_u8(b0 & 0x0F).ok_or(FrameError::ReservedOpcode(b0 & 0x0F))?;
    let first_data_frame = matches!(opcode, OpCode::Text | OpCode::Binary);
    if rsv1 && !(rsv1_allowed && first_data_frame) {
        return Err(FrameError::Rsv1NotAllowed);
    }
    if opcode.is_control() && !fin {
        return Err(FrameError::FragmentedControl);
    }
    Ok((fin, rsv1, opcode))
}

/// Decodes the payload length; returns it with the offset where it ends.
fn parse_length(buf: &[u8], short_len: u8) -> Result<Option<(u64, usize)>, FrameError> {
    match short_len {
        126 => Ok(buf
            .get(2..4)
            .map(|b| (u64::from(u16::from_be_bytes([b[0], b[1]])), 4))),
        127 => {
            let Some(b) = buf.get(2..10) else {
                return Ok(None);
            };
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(b);
            let len = u64::from_be_bytes(bytes);
            if len >> 63 != 0 {
                return Err(FrameError::LengthMsbSet);
            }
            Ok(Some((len, 10)))
        }
        n => Ok(Some((u64::from(n), 2))),
    }
}

/// XORs `payload` with `mask` in place (masking and unmasking are the same).
///
/// `offset` is the position of `payload[0]` within the whole frame payload, so
/// a payload can be processed in pieces as it streams by.
pub fn apply_mask(payload: &mut [u8], mask: [u8; 4], offset: usize) {
    for (i, byte) in payload.iter_mut().enumerate() {
        *byte ^= mask[(offset + i) % 4];
    }
}

/// Reads a close payload (already unmasked): the status code, if any, and
/// the reason.
///
/// An empty payload means "no status code" (the peer sees 1005). Codes that
/// must never appear on the wire and non-UTF-8 reasons are errors.
pub fn parse_close_payload(payload: &[u8]) -> Result<(Option<u16>, &str), FrameError> {
    match payload {
        [] => Ok((None, "")),
        [_] => Err(FrameError::CloseTooShort),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !close_code_valid(code) {
                return Err(FrameError::InvalidCloseCode(code));
            }
            let reason = std::str::from_utf8(reason).map_err(|_| FrameError::InvalidCloseReason)?;
            Ok((Some(code), reason))
        }
    }
}

/// Whether `code` may be sent in a close frame (RFC 6455 §7.4, IANA registry).
fn close_code_valid(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// A control frame the gateway sends itself, built without touching the heap.
#[derive(Clone, Copy)]
pub struct ControlFrame {
    /// Header (at most 2 + 4 bytes for a ≤125-byte payload) and payload.
    bytes: [u8; 2 + 4 + MAX_CONTROL_PAYLOAD],
    /// How much of `bytes` is the frame.
    len: usize,
}

impl ControlFrame {
    /// A close frame with `code` and `reason`, the reason cut at a UTF-8
    /// character boundary to fit. `mask` must be set for frames to a server.
    pub fn close(code: u16, reason: &str, mask: Option<[u8; 4]>) -> Self {
        let mut cut = reason.len().min(MAX_CLOSE_REASON);
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        let mut payload = [0u8; MAX_CONTROL_PAYLOAD];
        payload[..2].copy_from_slice(&code.to_be_bytes());
        payload[2..2 + cut].copy_from_slice(&reason.as_bytes()[..cut]);
        Self::new(OpCode::Close, &payload[..2 + cut], mask)
    }

    /// A ping carrying `payload` (truncated to 125 bytes).
    pub fn ping(payload: &[u8], mask: Option<[u8; 4]>) -> Self {
        Self::new(OpCode::Ping, payload, mask)
    }

    /// A pong carrying `payload` (truncated to 125 bytes).
    pub fn pong(payload: &[u8], mask: Option<[u8; 4]>) -> Self {
        Self::new(OpCode::Pong, payload, mask)
    }

    fn new(opcode: OpCode, payload: &[u8], mask: Option<[u8; 4]>) -> Self {
        let payload = &payload[..payload.len().min(MAX_CONTROL_PAYLOAD)];
        let mut bytes = [0u8; 2 + 4 + MAX_CONTROL_PAYLOAD];
        bytes[0] = 0x80 | opcode.as_u8();
        // The cast cannot truncate: the payload is at most 125 bytes.
        bytes[1] = payload.len() as u8;
        let mut at = 2;
        if let Some(key) = mask {
            bytes[1] |= 0x80;
            bytes[2..6].copy_from_slice(&key);
            at = 6;
        }
        bytes[at..at + payload.len()].copy_from_slice(payload);
        if let Some(key) = mask {
            apply_mask(&mut bytes[at..at + payload.len()], key, 0);
        }
        Self {
            bytes,
            len: at + payload.len(),
        }
    }

    /// The encoded frame.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl std::fmt::Debug for ControlFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ControlFrame")
            .field(&self.as_bytes())
            .finish()
    }
}

#[cfg(test)]
mod tests;
