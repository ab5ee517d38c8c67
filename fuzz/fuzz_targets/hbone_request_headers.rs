//! Fuzzes the HBONE request-header rules a server applies to untrusted input: authority,
//! forwarded, baggage and traceparent parsing. None may panic; an accepted authority and
//! traceparent must display back to text that parses to the same value.
#![no_main]
// A fuzz target reports a violated property by panicking.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use hbone::connect_headers::{Authority, TraceParent, baggage_members, forwarded_host};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(authority) = text.parse::<Authority>() {
        assert_eq!(
            authority.to_string().parse::<Authority>().ok(),
            Some(authority)
        );
    }
    if let Some(trace) = TraceParent::parse(text) {
        assert_eq!(TraceParent::parse(&trace.to_string()), Some(trace));
    }
    let _ = forwarded_host(text);
    for (key, _value) in baggage_members(text) {
        assert!(!key.is_empty());
    }
});
