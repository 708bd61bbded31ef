//! The PROXY protocol header reader: any bytes give a header or a refusal,
//! never a panic; it never consumes a byte past the header, nor more than
//! the longest header it accepts; and what it consumed parses to the same
//! answer on its own.
#![no_main]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use libfuzzer_sys::fuzz_target;
use wsgate::net::proxy_header::{parse_v1, parse_v2, read, V1_MAX, V2_MAX_PAYLOAD};

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    // Reading a byte slice never waits: one poll completes it.
    let result = {
        let mut future = pin!(read(&mut rest));
        match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(result) => result,
            Poll::Pending => panic!("a slice read never waits"),
        }
    };
    let consumed = &data[..data.len() - rest.len()];
    assert!(consumed.len() <= (16 + V2_MAX_PAYLOAD).max(V1_MAX));
    if let Ok(header) = result {
        let again = if consumed.starts_with(b"PROXY ") {
            parse_v1(consumed)
        } else {
            parse_v2(consumed)
        };
        assert_eq!(again, Ok(header));
    }
});
