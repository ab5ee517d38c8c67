//! Fuzzes the Kubernetes YAML loader: any text gets a configuration or a typed error, never a
//! panic, and whatever loads serializes back to JSON.
#![no_main]
// A fuzz target reports a violated property by panicking.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(loaded) = routing::loader::load_str("fuzz.yaml", text) {
        serde_json::to_string(&loaded.config).unwrap();
    }
});
