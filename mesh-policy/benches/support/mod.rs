//! Timing shared by the mesh-policy benchmarks.

use std::time::Instant;

/// Nanoseconds per call of `f`: the median of `batches` batches of `per_batch` calls.
pub(crate) fn median_ns(batches: usize, per_batch: usize, mut f: impl FnMut()) -> f64 {
    let mut samples: Vec<f64> = (0..batches)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..per_batch {
                f();
            }
            started.elapsed().as_nanos() as f64 / per_batch as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}
