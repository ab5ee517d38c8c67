//! Fuzzes ztunnel's local configuration reader: any text gets a configuration or a typed
//! error, never a panic; whatever loads indexes into a node state and serializes to JSON.
#![no_main]
// A fuzz target reports a violated property by panicking.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use libfuzzer_sys::fuzz_target;
use waypoint::node::local_config::parse_local_config;
use waypoint::node::state::NodeState;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = parse_local_config("fuzz.yaml", text) {
        let _ = NodeState::build(&config);
        serde_json::to_string(&config).unwrap();
    }
});
