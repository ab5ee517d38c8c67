//! Fuzzes the out-of-band ORCA report stream an endpoint sends (`StreamCoreMetrics`'s gRPC
//! body, `backendUtilization.outOfBand`), cut into messages by `ReportFrames`: whatever the
//! bytes and however they are chunked, the reader never panics, never holds more than one
//! bounded frame, gives the same loads for the same bytes in any chunking, and every load
//! holds only finite, non-negative figures.
#![no_main]
// A fuzz target reports a violated property by panicking.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use libfuzzer_sys::fuzz_target;
use mesh_policy::traffic::balance::orca_oob::ReportFrames;
use mesh_policy::traffic::balance::utilization::OrcaLoad;

/// The loads of `body` pushed in chunks of `size` bytes, until an error; whether one came.
fn read(body: &[u8], size: usize) -> (Vec<OrcaLoad>, bool) {
    let mut frames = ReportFrames::default();
    let mut loads = Vec::new();
    for chunk in body.chunks(size.max(1)) {
        match frames.push(chunk) {
            Ok(more) => loads.extend(more),
            Err(_) => return (loads, true),
        }
    }
    let failed = frames.error().is_some();
    (loads, failed)
}

fuzz_target!(|data: &[u8]| {
    let Some((&size, body)) = data.split_first() else {
        return;
    };
    let (whole, whole_failed) = read(body, body.len());
    let (chunked, chunked_failed) = read(body, usize::from(size));
    assert_eq!(whole_failed, chunked_failed);
    assert_eq!(whole, chunked);
    for load in &whole {
        for figure in [load.cpu, load.application, load.rps, load.eps] {
            assert!(figure.is_finite() && figure >= 0.0, "{load:?}");
        }
        assert!(load.named.len() <= 64);
    }
});
