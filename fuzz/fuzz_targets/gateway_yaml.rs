//! Fuzzes the Kubernetes YAML loader and resolution: any text gets a configuration or a typed
//! error, never a panic; whatever loads serializes back to JSON and resolves (Envoy Gateway
//! `Backend`s included).
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
        // Resolution too, with every Envoy Gateway Backend host name answered.
        let mut config = loaded.config;
        for name in config.backend_hostnames() {
            config.resolved_names.insert(
                name,
                vec![[192, 0, 2, 1].into(), std::net::Ipv6Addr::LOCALHOST.into()],
            );
        }
        let _ = routing::resolve::resolve(&config, &routing::resolve::ResolveOptions::default());
    }
});
