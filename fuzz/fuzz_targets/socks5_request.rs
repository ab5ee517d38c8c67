//! Fuzzes the SOCKS5 parsers: any bytes are incomplete, a message with the length it took
//! (never more than the input, never past the documented maxima), or a typed error.
#![no_main]
// A fuzz target reports a violated property by panicking.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use libfuzzer_sys::fuzz_target;
use waypoint::inbound::socks5::{MAX_GREETING, MAX_REQUEST, parse_greeting, parse_request};

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(len)) = parse_greeting(data) {
        assert!(len <= data.len() && len <= MAX_GREETING);
    }
    if let Ok(Some((_, len))) = parse_request(data) {
        assert!(len <= data.len() && len <= MAX_REQUEST);
    }
});
