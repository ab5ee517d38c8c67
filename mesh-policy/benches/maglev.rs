//! The consistent-hash tables over 100 endpoints, against a ring hash (Envoy's other
//! consistent hash; Ketama points, binary-searched) in the same run:
//!
//! - build: the Maglev table of Envoy Gateway's default 65 537 slots against a ring of 65 536
//!   points (the same number of entries) and one of Envoy's default minimum 1 024 points;
//! - lookup: one hash to an endpoint, over 4 096 precomputed key hashes;
//! - spread: the busiest endpoint's share over the mean share (goal ≤ 1.05 for Maglev), exact
//!   for Maglev's slots, and over 1 000 000 hashed keys for both.
//!
//! Run: `cargo bench -p mesh-policy --bench maglev` (`BENCH_QUICK=1` for a short run).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use std::hint::black_box;

use mesh_policy::traffic::balance::maglev::{DEFAULT_TABLE_SIZE, MaglevEntry, MaglevTable};
use mesh_policy::traffic::balance::ring::{DEFAULT_RING_SIZE, RingHash};
use support::median_ns;
use twox_hash::XxHash64;

const ENDPOINTS: usize = 100;

fn max_over_mean(counts: &[usize]) -> f64 {
    let total: usize = counts.iter().sum();
    let mean = total as f64 / counts.len() as f64;
    *counts.iter().max().unwrap() as f64 / mean
}

fn spread_of(lookup: impl Fn(u64) -> Option<usize>) -> f64 {
    let mut counts = vec![0usize; ENDPOINTS];
    for key in 0..1_000_000u64 {
        counts[lookup(XxHash64::oneshot(42, &key.to_le_bytes())).unwrap()] += 1;
    }
    max_over_mean(&counts)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list`, `cargo test --benches`
    }
    let quick = std::env::var_os("BENCH_QUICK").is_some();
    let (build_batches, build_per_batch) = if quick { (3, 2) } else { (11, 10) };
    let (batches, per_batch) = if quick { (5, 20_000) } else { (15, 1_000_000) };
    let names: Vec<String> = (0..ENDPOINTS)
        .map(|i| format!("10.1.{}.{}:8080", i / 200, i % 200))
        .collect();
    let entries: Vec<MaglevEntry<'_>> = names
        .iter()
        .map(|name| MaglevEntry {
            name: name.as_bytes(),
            weight: 1,
        })
        .collect();

    let maglev_build = median_ns(build_batches, build_per_batch, || {
        black_box(MaglevTable::build(black_box(&entries), DEFAULT_TABLE_SIZE).unwrap());
    });
    let ring_big_build = median_ns(build_batches, build_per_batch, || {
        black_box(RingHash::build(black_box(&entries), 65_536));
    });
    let ring_small_build = median_ns(build_batches, build_per_batch, || {
        black_box(RingHash::build(black_box(&entries), DEFAULT_RING_SIZE));
    });
    let maglev = MaglevTable::build(&entries, DEFAULT_TABLE_SIZE).unwrap();
    let ring_big = RingHash::build(&entries, 65_536);
    let ring_small = RingHash::build(&entries, DEFAULT_RING_SIZE);

    let hashes: Vec<u64> = (0..4096u64)
        .map(|k| XxHash64::oneshot(7, &k.to_le_bytes()))
        .collect();
    let mut at = 0usize;
    let mut next = || {
        at = (at + 1) & 4095;
        hashes[at]
    };
    let maglev_lookup = median_ns(batches, per_batch, || {
        black_box(maglev.lookup(black_box(next())));
    });
    let ring_big_lookup = median_ns(batches, per_batch, || {
        black_box(ring_big.lookup(black_box(next())));
    });
    let ring_small_lookup = median_ns(batches, per_batch, || {
        black_box(ring_small.lookup(black_box(next())));
    });

    let exact = max_over_mean(&maglev.shares(ENDPOINTS));
    let maglev_keys = spread_of(|h| maglev.lookup(h));
    let ring_big_keys = spread_of(|h| ring_big.lookup(h));
    let ring_small_keys = spread_of(|h| ring_small.lookup(h));

    println!(
        "| over {ENDPOINTS} endpoints | Maglev 65 537 | ring 65 536 (baseline) | Maglev / ring 65 536 | ring 1 024 | Maglev / ring 1 024 |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| build | {:.2} ms | {:.2} ms | {:.2}× | {:.3} ms | {:.2}× |",
        maglev_build / 1e6,
        ring_big_build / 1e6,
        maglev_build / ring_big_build,
        ring_small_build / 1e6,
        maglev_build / ring_small_build
    );
    println!(
        "| lookup | {maglev_lookup:.1} ns | {ring_big_lookup:.1} ns | {:.2}× | {ring_small_lookup:.1} ns | {:.2}× |",
        maglev_lookup / ring_big_lookup,
        maglev_lookup / ring_small_lookup
    );
    println!(
        "| spread, max/mean (1 M keys) | {maglev_keys:.3} | {ring_big_keys:.3} | | {ring_small_keys:.3} | |"
    );
    println!("\nMaglev's slots exactly: max/mean {exact:.4} (goal ≤ 1.05)");
}
