//! Fuzzes client-IP detection and path normalisation on raw input. The first bytes choose
//! the settings; the rest is split into an `X-Forwarded-For` value and a request path.
//! Properties: no panic; the detected client is the peer or an address written in the header,
//! and never anything but the peer when the peer is not trusted; a normalised path starts with
//! `/`, has no dot segments (nor `//` when slashes merge), parses as a URI path, and
//! normalising it again changes nothing.
#![no_main]
// A fuzz target reports a violated property by panicking.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;

use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use mesh_policy::traffic::client_ip::{ClientIpDetection, XffTrust};
use mesh_policy::traffic::path::{EscapedSlashes, Normalized, PathNormalization};

fuzz_target!(|data: &[u8]| {
    let [hops, mode, rest @ ..] = data else {
        return;
    };
    let split = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
    let (xff, path) = rest.split_at(split);
    let path = path.get(1..).unwrap_or_default();

    let peer: IpAddr = if mode & 0x10 != 0 {
        "10.0.0.1"
    } else {
        "192.0.2.1"
    }
    .parse()
    .unwrap();
    let trust = if mode & 0x20 != 0 {
        XffTrust::Cidrs(vec!["10.0.0.0/8".parse().unwrap()])
    } else {
        XffTrust::Hops(u32::from(*hops))
    };
    let detection = ClientIpDetection::XForwardedFor {
        trust: trust.clone(),
        append: true,
    };
    if let Ok(value) = HeaderValue::from_bytes(xff) {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", value);
        let found = detection.detect(&headers, Some(peer)).unwrap().unwrap();
        if found != peer {
            let written = String::from_utf8_lossy(xff);
            assert!(
                written
                    .split(',')
                    .any(|entry| entry.trim().parse::<IpAddr>() == Ok(found)),
                "{found} is not in {written:?}"
            );
            if matches!(trust, XffTrust::Cidrs(_)) {
                assert!(
                    peer.to_string().starts_with("10."),
                    "an untrusted peer's header was read"
                );
            }
        }
    }

    let Ok(path) = std::str::from_utf8(path) else {
        return;
    };
    let settings = PathNormalization {
        escaped_slashes: match mode & 3 {
            0 => EscapedSlashes::Keep,
            1 => EscapedSlashes::Reject,
            2 => EscapedSlashes::UnescapeAndForward,
            _ => EscapedSlashes::UnescapeAndRedirect,
        },
        merge_slashes: mode & 4 != 0,
    };
    let normal = match settings.normalize(path) {
        Err(_) | Ok(Normalized::Unchanged) => return,
        Ok(Normalized::Forward(p) | Normalized::Redirect(p)) => p,
    };
    let only_path = normal.split('?').next().unwrap();
    assert!(only_path.starts_with('/'), "{normal:?}");
    for segment in only_path.split('/') {
        assert!(segment != "." && segment != "..", "{path:?} → {normal:?}");
    }
    if settings.merge_slashes {
        assert!(!only_path.contains("//"), "{path:?} → {normal:?}");
    }
    http::uri::PathAndQuery::try_from(only_path)
        .unwrap_or_else(|e| panic!("{path:?} → {normal:?}: {e}"));
    let again = settings.normalize(&normal);
    assert!(
        matches!(again, Ok(Normalized::Unchanged)),
        "{path:?} → {normal:?} → {again:?}"
    );
});
