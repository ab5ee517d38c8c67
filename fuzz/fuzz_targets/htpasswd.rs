//! Fuzzes the htpasswd reader: any text is users or a typed error naming a line; checking a
//! password against what was read never panics.
#![no_main]
// A fuzz target reports a violated property by panicking.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use libfuzzer_sys::fuzz_target;
use mesh_policy::security::htpasswd::{Htpasswd, HtpasswdError};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Htpasswd::parse(text) {
        Ok(users) => {
            assert!(!users.is_empty());
            // bcrypt costs are capped when read, so a check stays bounded.
            let (user, password) = text.split_once(':').unwrap_or((text, ""));
            let _ = users.verify(user, password);
        }
        Err(HtpasswdError::Malformed { line } | HtpasswdError::UnsupportedHash { line, .. }) => {
            assert!(line >= 1 && line <= text.lines().count());
        }
        Err(HtpasswdError::Empty) => {}
    }
});
