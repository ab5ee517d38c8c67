//! Fuzzes the judgement of a gRPC health check's answer (`grpc.health.v1.Health/Check`, sent by
//! a backend an active check probes): any body, framed or not, any protobuf, with any
//! `grpc-status`, is a pass, a failure or an unhealthy verdict — never a panic — and only a
//! well-framed `SERVING` answer with `grpc-status: 0` passes.
#![no_main]
// A fuzz target reports a violated property by panicking.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use http::{HeaderMap, HeaderValue, StatusCode};
use libfuzzer_sys::fuzz_target;
use mesh_policy::traffic::balance::active::ProbeOutcome;
use mesh_policy::traffic::balance::grpc_health::judge;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let mut trailers = HeaderMap::new();
    let status = match selector % 4 {
        0 => Some("0"),
        1 => Some("14"),
        2 => Some("not a number"),
        _ => None,
    };
    if let Some(status) = status {
        trailers.insert("grpc-status", HeaderValue::from_static(status));
    }
    let outcome = judge(StatusCode::OK, &HeaderMap::new(), body, Some(&trailers));
    if outcome == ProbeOutcome::Passed {
        assert_eq!(status, Some("0"));
        assert_eq!(body.first(), Some(&0), "uncompressed");
        let length = u32::from_be_bytes(body[1..5].try_into().unwrap()) as usize;
        assert_eq!(length, body.len() - 5, "one whole message");
    }
    if status.is_none() {
        assert_eq!(outcome, ProbeOutcome::Failed, "a cut stream is no answer");
    }
});
