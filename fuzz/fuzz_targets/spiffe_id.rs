//! Fuzzes the SPIFFE identity parser: it must never panic, and whatever it accepts must display
//! back to the same text and parse again to an equal identity.
#![no_main]
// A fuzz target reports a violated property by panicking.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use hbone::identity::SpiffeId;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(id) = SpiffeId::try_from(data) {
        let text = id.to_string();
        assert_eq!(text.as_bytes(), data);
        assert_eq!(text.parse::<SpiffeId>().ok(), Some(id));
    }
});
