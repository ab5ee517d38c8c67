//! Fuzzes redirect and URL-rewrite construction: any path, prefix and replacement give a
//! `Location` or a rewritten request without panicking; a prefix replacement of a path that
//! starts with `/` starts with `/` and never doubles a slash it did not receive.
#![no_main]
// A fuzz target reports a violated property by panicking.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use libfuzzer_sys::fuzz_target;
use routing::filters::{PathModifier, RedirectContext, RequestRedirect, UrlRewrite};
use routing::http_route::PathMatch;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut fields = text.split('\n');
    let (Some(path), Some(prefix), Some(replacement), Some(host)) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return;
    };
    let modifier = PathModifier::ReplacePrefixMatch(replacement.to_owned());
    if PathMatch::prefix(prefix).is_ok_and(|m| m.matches(path)) && path.starts_with('/') {
        let rewritten = modifier.apply(path, prefix);
        assert!(rewritten.starts_with('/'), "{rewritten:?}");
        if !path.contains("//") && !replacement.contains("//") {
            assert!(
                !rewritten.contains("//"),
                "{path:?} {prefix:?} {replacement:?} -> {rewritten:?}"
            );
        }
    }
    let redirect = RequestRedirect {
        scheme: Some("https".into()),
        hostname: (!host.is_empty()).then(|| host.to_owned()),
        path: Some(modifier.clone()),
        port: None,
        status: Default::default(),
    };
    let _ = redirect.location(&RedirectContext {
        scheme: "http",
        host,
        path,
        query: None,
        listener_port: 8080,
        matched_prefix: prefix,
    });
    if let Ok(mut request) = http::Request::builder()
        .uri(format!("http://example.com{path}"))
        .body(())
    {
        let rewrite = UrlRewrite {
            hostname: (!host.is_empty()).then(|| host.to_owned()),
            path: Some(modifier),
        };
        let _ = rewrite.apply(&mut request, prefix);
    }
});
