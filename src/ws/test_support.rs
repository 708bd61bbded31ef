//! Test helpers: hand-encoding frames, reading them back off a stream, and
//! the relay configuration the relay's tests start from.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

use super::frame::{apply_mask, parse_header, FrameHeader, OpCode, MAX_HEADER_LEN};
use super::relay::RelayConfig;

/// A relay configuration for tests: messages up to `max_message_size`,
/// UTF-8 checked, no idle timeout, no pings of the gateway's own, no
/// deflate and no client limits.
pub(crate) fn relay_config(max_message_size: u64) -> RelayConfig {
    RelayConfig {
        max_message_size,
        idle_timeout: Duration::ZERO,
        ping_interval: Duration::ZERO,
        pong_timeout: Duration::from_secs(10),
        close_timeout: Duration::from_secs(5),
        drain_delay: Duration::ZERO,
        deflate: false,
        validate_utf8: true,
        client_messages: None,
        client_bytes_per_second: None,
    }
}

/// Encodes one frame; `b0` is the whole first byte (FIN, RSV, opcode).
pub(crate) fn encode(b0: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = vec![b0];
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= 0xFFFF => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    let start = out.len() + mask.map_or(0, |_| 4);
    if let Some(key) = mask {
        out.extend_from_slice(&key);
    }
    out.extend_from_slice(payload);
    if let Some(key) = mask {
        apply_mask(&mut out[start..], key, 0);
    }
    out
}

/// A masked frame as a client would send it.
pub(crate) fn client_frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    encode(b0, payload, Some([0xA1, 0xB2, 0xC3, 0xD4]))
}

/// Reads one whole frame; returns its header, unmasked payload and raw bytes.
/// `None` on EOF before a complete frame.
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
) -> Option<(FrameHeader, Vec<u8>, Vec<u8>)> {
    let mut raw = Vec::new();
    let header = loop {
        if let Some(h) = parse_header(&raw, true).ok()? {
            break h;
        }
        if raw.len() >= MAX_HEADER_LEN {
            return None;
        }
        raw.push(r.read_u8().await.ok()?);
    };
    let mut payload = vec![0; header.payload_len as usize];
    r.read_exact(&mut payload).await.ok()?;
    raw.extend_from_slice(&payload);
    if let Some(key) = header.mask {
        apply_mask(&mut payload, key, 0);
    }
    Some((header, payload, raw))
}

/// Reads frames until a close frame; returns its code and reason.
pub(crate) async fn read_close<R: AsyncRead + Unpin>(r: &mut R) -> Option<(u16, String)> {
    loop {
        let (header, payload, _) = read_frame(r).await?;
        if header.opcode == OpCode::Close {
            let code = u16::from_be_bytes([*payload.first()?, *payload.get(1)?]);
            return Some((code, String::from_utf8_lossy(&payload[2..]).into_owned()));
        }
    }
}
