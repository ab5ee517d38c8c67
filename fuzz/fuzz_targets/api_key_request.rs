//! Fuzzes API-key extraction and stripping: the input is a request target and a cookie
//! header. Checking never panics, and since each success strips the key from the source it
//! came from (sanitize), a key is found at most once per source.
#![no_main]
// A fuzz target reports a violated property by panicking.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use http::header::{COOKIE, HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use mesh_policy::security::api_key::{ApiKeyAuth, KeySource};

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let (target, cookie) = data.split_at(split);
    let Ok(mut uri) = http::Uri::try_from(target) else {
        return;
    };
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_bytes(cookie.get(1..).unwrap_or_default()) {
        headers.insert(COOKIE, value);
    }
    let auth = ApiKeyAuth::new(
        [("client".to_owned(), b"k".to_vec())],
        vec![
            KeySource::Header(HeaderName::from_static("x-api-key")),
            KeySource::Param("api_key".into()),
            KeySource::Cookie("key".into()),
        ],
        Some(HeaderName::from_static("x-client")),
        true,
    );
    // Only the query and the cookie can carry a key here: two successes at most.
    let found = (0..3)
        .take_while(|_| auth.check(&mut uri, &mut headers).is_ok())
        .count();
    assert!(found <= 2, "{uri:?} {headers:?}");
});
