//! The frame-header codec: `parse_header`, `apply_mask`, `parse_close_payload`
//! and the gateway's own close frames, checked against their contracts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsgate::ws::frame::{
    apply_mask, parse_close_payload, parse_header, ControlFrame, MAX_CONTROL_PAYLOAD,
    MAX_HEADER_LEN,
};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, data)) = data.split_first() else {
        return;
    };
    header(data, flags & 1 != 0);
    masking(data, flags);
    close(data);
});

/// A parsed header never claims more bytes than it was given, and what it
/// accepts obeys RFC 6455 §5.2 and §5.5.
fn header(data: &[u8], rsv1_allowed: bool) {
    let Ok(Some(h)) = parse_header(data, rsv1_allowed) else {
        return;
    };
    assert!(h.header_len <= data.len() && h.header_len <= MAX_HEADER_LEN);
    assert!(h.payload_len >> 63 == 0);
    if h.opcode.is_control() {
        assert!(h.fin && h.payload_len <= MAX_CONTROL_PAYLOAD as u64 && !h.rsv1);
    }
    assert!(!h.rsv1 || rsv1_allowed);
    // Every prefix is either incomplete or the same header.
    for cut in 0..h.header_len {
        assert_eq!(parse_header(&data[..cut], rsv1_allowed), Ok(None));
    }
}

/// Masking twice is the identity, and masking in two pieces at an offset is
/// the same as masking at once.
fn masking(data: &[u8], flags: u8) {
    let key = [flags, flags.wrapping_mul(31), 0x5a, flags ^ 0xff];
    let mut whole = data.to_vec();
    apply_mask(&mut whole, key, 0);
    let split = usize::from(flags) % (data.len() + 1);
    let mut pieces = data.to_vec();
    let (a, b) = pieces.split_at_mut(split);
    apply_mask(a, key, 0);
    apply_mask(b, key, split);
    assert_eq!(whole, pieces);
    apply_mask(&mut whole, key, 0);
    assert_eq!(whole, data);
}

/// A close payload that parses survives the gateway's own encoder.
fn close(data: &[u8]) {
    let Ok((Some(code), reason)) = parse_close_payload(data) else {
        return;
    };
    let frame = ControlFrame::close(code, reason, None);
    let bytes = frame.as_bytes();
    let h = parse_header(bytes, false).unwrap().unwrap();
    let (again, again_reason) = parse_close_payload(&bytes[h.header_len..]).unwrap();
    assert_eq!(again, Some(code));
    assert!(reason.starts_with(again_reason));
}
