//! Fuzzes JWT and JWKS parsing: the input split at its first newline is a JWKS document and a
//! token. Neither may panic; a fuzzed token never verifies against a fixed key set (nobody
//! can forge an Ed25519 or ECDSA signature), and a fuzzed JWKS either parses within its caps
//! or is a typed error.
#![no_main]
// A fuzz target reports a violated property by panicking.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use libfuzzer_sys::fuzz_target;
use mesh_policy::security::jwt::jwks::{Jwks, MAX_JWKS_KEYS};
use mesh_policy::security::jwt::token::{ClaimRequirements, verify};

/// An Ed25519 and a P-256 public key nobody has the private half of in this process.
const FIXED_JWKS: &str = r#"{"keys":[
 {"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
 {"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let (document, rest) = data.split_at(split);
    if let Ok(jwks) = Jwks::parse(document) {
        assert!(!jwks.keys.is_empty() && jwks.keys.len() <= MAX_JWKS_KEYS);
    }
    let Ok(token) = std::str::from_utf8(rest.get(1..).unwrap_or_default()) else {
        return;
    };
    let fixed = Jwks::parse(FIXED_JWKS.as_bytes()).unwrap();
    let requirements = ClaimRequirements::default();
    assert!(verify(token, &fixed, &requirements, 1_800_000_000).is_err());
});
