//! Fuzzes the ORCA load report a backend sends in its answers (`endpoint-load-metrics` as
//! `TEXT …` or `JSON …`, `endpoint-load-metrics-bin` as base64 protobuf), read by the
//! `BackendUtilization` balancer: any header value parses or is refused — never a panic —,
//! a parsed report holds only finite, non-negative figures and at most 64 named metrics, and
//! the weight it gives is finite and non-negative.
#![no_main]
// A fuzz target reports a violated property by panicking.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use mesh_policy::traffic::balance::utilization::{
    EndpointWeights, ORCA_BIN_HEADER, ORCA_HEADER, UtilizationParams, parse_orca,
};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, value)) = data.split_first() else {
        return;
    };
    let Ok(value) = HeaderValue::from_bytes(value) else {
        return;
    };
    let mut headers = HeaderMap::new();
    let name = if selector % 2 == 0 {
        ORCA_HEADER
    } else {
        ORCA_BIN_HEADER
    };
    headers.insert(name, value);
    let Some(load) = parse_orca(&headers) else {
        return;
    };
    for figure in [load.cpu, load.application, load.rps, load.eps] {
        assert!(figure.is_finite() && figure >= 0.0, "{load:?}");
    }
    if name == ORCA_HEADER {
        assert!(load.named.len() <= 64, "{}", load.named.len());
    }
    let weights = EndpointWeights::new(Arc::new(UtilizationParams::default()), 1);
    let weight = weights.weight_of(&load);
    assert!(
        weight.is_finite() && weight >= 0.0,
        "{weight} from {load:?}"
    );
    weights.report(0, &load);
});
