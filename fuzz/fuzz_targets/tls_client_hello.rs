//! Fuzzes the ClientHello SNI reader of TLS passthrough listeners: never a panic, and a prefix
//! of an input that yields a name never yields a different name.
#![no_main]
// A fuzz target reports a violated property by panicking.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use libfuzzer_sys::fuzz_target;
use waypoint::inbound::client_hello::{ClientHelloError, server_name};

fuzz_target!(|data: &[u8]| {
    let full: Result<_, ClientHelloError> = server_name(data);
    if let Ok(Some(name)) = &full {
        assert!(name.is_ascii() && !name.is_empty());
        for cut in 0..data.len() {
            if let Ok(Some(other)) = server_name(&data[..cut]) {
                assert_eq!(&other, name);
            }
        }
    }
});
