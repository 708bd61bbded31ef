//! Codec tests: the RFC 6455 §5.7 examples, every split point, every error.

use super::*;

fn parse(buf: &[u8]) -> Result<Option<FrameHeader>, FrameError> {
    parse_header(buf, false)
}

/// Parses a complete frame and checks that every strict prefix of its header
/// asks for more bytes.
fn parse_complete(frame: &[u8]) -> FrameHeader {
    let header = parse(frame).expect("valid").expect("complete");
    for split in 0..header.header_len {
        assert_eq!(parse(&frame[..split]), Ok(None), "prefix of {split} bytes");
    }
    header
}

#[test]
fn rfc_single_frame_unmasked_text() {
    let frame = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
    let h = parse_complete(&frame);
    assert!(h.fin && !h.rsv1);
    assert_eq!(h.opcode, OpCode::Text);
    assert_eq!(h.mask, None);
    assert_eq!((h.payload_len, h.header_len), (5, 2));
    assert_eq!(&frame[h.header_len..], b"Hello");
}

#[test]
fn rfc_single_frame_masked_text_unmasks_to_hello() {
    let frame = [
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    let h = parse_complete(&frame);
    assert_eq!(h.mask, Some([0x37, 0xfa, 0x21, 0x3d]));
    assert_eq!((h.payload_len, h.header_len), (5, 6));
    let mut payload = frame[6..].to_vec();
    apply_mask(&mut payload, h.mask.unwrap(), 0);
    assert_eq!(payload, b"Hello");
}

#[test]
fn apply_mask_streams_with_offset() {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut whole = *b"Hello, world";
    apply_mask(&mut whole, mask, 0);
    let mut pieces = *b"Hello, world";
    let (a, b) = pieces.split_at_mut(5);
    apply_mask(a, mask, 0);
    apply_mask(b, mask, 5);
    assert_eq!(whole, pieces);
}

#[test]
fn rfc_fragmented_text() {
    let first = parse_complete(&[0x01, 0x03, 0x48, 0x65, 0x6c]);
    assert!(!first.fin);
    assert_eq!((first.opcode, first.payload_len), (OpCode::Text, 3));
    let second = parse_complete(&[0x80, 0x02, 0x6c, 0x6f]);
    assert!(second.fin);
    assert_eq!(
        (second.opcode, second.payload_len),
        (OpCode::Continuation, 2)
    );
}

#[test]
fn rfc_unmasked_ping_and_masked_pong() {
    let ping = parse_complete(&[0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
    assert_eq!((ping.opcode, ping.payload_len), (OpCode::Ping, 5));
    assert!(ping.opcode.is_control());
    let pong = [
        0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    let pong = parse_complete(&pong);
    assert_eq!((pong.opcode, pong.payload_len), (OpCode::Pong, 5));
}

#[test]
fn rfc_256_byte_binary_uses_16_bit_length() {
    let h = parse_complete(&[0x82, 0x7E, 0x01, 0x00]);
    assert_eq!(
        (h.opcode, h.payload_len, h.header_len),
        (OpCode::Binary, 256, 4)
    );
}

#[test]
fn rfc_64k_binary_uses_64_bit_length() {
    let frame = [0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00];
    let h = parse_complete(&frame);
    assert_eq!(
        (h.opcode, h.payload_len, h.header_len),
        (OpCode::Binary, 65536, 10)
    );
}

#[test]
fn masked_64_bit_length_header_is_fourteen_bytes() {
    let frame = [0x82, 0xFF, 0, 0, 0, 0, 0, 0x10, 0, 0, 1, 2, 3, 4];
    let h = parse_complete(&frame);
    assert_eq!((h.payload_len, h.header_len), (1 << 20, MAX_HEADER_LEN));
    assert_eq!(h.mask, Some([1, 2, 3, 4]));
}

#[test]
fn errors_are_protocol_precise() {
    let cases: &[(&[u8], FrameError)] = &[
        (&[0x83, 0x00], FrameError::ReservedOpcode(0x3)),
        (&[0x8B, 0x00], FrameError::ReservedOpcode(0xB)),
        (&[0xA1, 0x00], FrameError::ReservedBits),
        (&[0x91, 0x00], FrameError::ReservedBits),
        (&[0xC1, 0x00], FrameError::Rsv1NotAllowed),
        (&[0x09, 0x00], FrameError::FragmentedControl),
        (&[0x89, 0x7E, 0x00, 0x7E], FrameError::ControlTooLong(126)),
        (
            &[0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0],
            FrameError::LengthMsbSet,
        ),
    ];
    for (bytes, want) in cases {
        assert_eq!(parse(bytes), Err(*want), "{bytes:02x?}");
    }
}

#[test]
fn rsv1_only_on_first_data_frame_when_negotiated() {
    assert!(parse_header(&[0xC1, 0x00], true).unwrap().unwrap().rsv1);
    assert!(parse_header(&[0x42, 0x00], true).unwrap().unwrap().rsv1);
    assert_eq!(
        parse_header(&[0xC0, 0x00], true),
        Err(FrameError::Rsv1NotAllowed)
    );
    assert_eq!(
        parse_header(&[0xC9, 0x00], true),
        Err(FrameError::Rsv1NotAllowed)
    );
}

#[test]
fn close_payload_parsing() {
    assert_eq!(parse_close_payload(&[]), Ok((None, "")));
    assert_eq!(
        parse_close_payload(&[0x03, 0xE8, b'o', b'k']),
        Ok((Some(1000), "ok"))
    );
    assert_eq!(parse_close_payload(&[0x03]), Err(FrameError::CloseTooShort));
    assert_eq!(
        parse_close_payload(&[0x03, 0xED]),
        Err(FrameError::InvalidCloseCode(1005))
    );
    assert_eq!(
        parse_close_payload(&[0x03, 0xE7]),
        Err(FrameError::InvalidCloseCode(999))
    );
    assert_eq!(parse_close_payload(&[0x0F, 0xA0]), Ok((Some(4000), "")));
    assert_eq!(
        parse_close_payload(&[0x03, 0xE8, 0xFF]),
        Err(FrameError::InvalidCloseReason)
    );
}

#[test]
fn close_frame_round_trips_masked_and_unmasked() {
    for mask in [None, Some([9, 8, 7, 6])] {
        let frame = ControlFrame::close(1001, "going away", mask);
        let bytes = frame.as_bytes();
        let h = parse(bytes).unwrap().unwrap();
        assert_eq!((h.opcode, h.fin, h.mask), (OpCode::Close, true, mask));
        let mut payload = bytes[h.header_len..].to_vec();
        assert_eq!(payload.len() as u64, h.payload_len);
        if let Some(key) = mask {
            apply_mask(&mut payload, key, 0);
        }
        assert_eq!(
            parse_close_payload(&payload),
            Ok((Some(1001), "going away"))
        );
    }
}

#[test]
fn close_reason_is_cut_at_a_char_boundary() {
    // 61 two-byte characters = 122 bytes, then a 3-byte one that cannot fit.
    let reason = format!("{}€tail", "é".repeat(61));
    let frame = ControlFrame::close(1000, &reason, None);
    let payload = &frame.as_bytes()[2..];
    assert_eq!(payload.len(), 2 + 122);
    let (_, got) = parse_close_payload(payload).unwrap();
    assert_eq!(got, "é".repeat(61));
}

#[test]
fn ping_matches_rfc_bytes() {
    let ping = ControlFrame::ping(b"Hello", None);
    assert_eq!(ping.as_bytes(), &[0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
    let pong = ControlFrame::pong(b"Hello", Some([0x37, 0xfa, 0x21, 0x3d]));
    let want = [
        0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    assert_eq!(pong.as_bytes(), &want);
    assert_eq!(
        ControlFrame::ping(&[0; 200], None).as_bytes().len(),
        2 + 125
    );
}

#[test]
fn arbitrary_bytes_never_panic() {
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    for _ in 0..20_000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let bytes = seed.to_le_bytes();
        let len = (seed % 9) as usize;
        let _ = parse_header(&bytes[..len], seed & 1 == 0);
        let _ = parse_close_payload(&bytes[..len]);
    }
}
