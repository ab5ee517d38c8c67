//! B6 (performance spec §6): building the route index for 10 000 and 100 000 routes, against
//! the naive model (each route inserted into a Vec kept sorted by precedence, as
//! agentgateway does; at 100 000, where insertion takes seconds, one full sort) in the same run; and the heap bytes per route of the built table.
//!
//! The table is immutable: a route change rebuilds its listener's table, so the build time at
//! N is also the cost of one update on a listener with N routes.
//!
//! Run: `cargo bench -p routing --bench route_build` (or `scripts/bench`). Memory rows are
//! appended to `$BENCH_RESULTS` when set.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::cmp::Reverse;
use std::hint::black_box;
use std::io::Write;

use criterion::{BenchmarkId, Criterion, criterion_group};
use routing::http_route::{
    Candidate, HttpRouteMatch, MatchSpecificity, PathMatch, RouteOrder, RouteTable,
};

#[global_allocator]
static ALLOCATOR: &stats_alloc::StatsAlloc<std::alloc::System> = &stats_alloc::INSTRUMENTED_SYSTEM;

/// N routes: a quarter exact hosts, a quarter wildcard hosts, half prefixes under shared hosts.
fn candidates(n: usize) -> Vec<Candidate<usize>> {
    (0..n)
        .map(|i| {
            let (hostnames, path) = match i % 4 {
                0 => (
                    vec![format!("host-{i}.example.com")],
                    PathMatch::prefix("/").unwrap(),
                ),
                1 => (
                    vec![format!("*.zone-{i}.example.com")],
                    PathMatch::prefix("/").unwrap(),
                ),
                _ => (
                    vec![format!("api-{}.example.com", i % 64)],
                    PathMatch::prefix(&format!("/svc-{i}/v1")).unwrap(),
                ),
            };
            Candidate {
                hostnames,
                route_match: HttpRouteMatch::path(path),
                order: RouteOrder {
                    created: (i % 7) as u64,
                    namespaced_name: format!("ns-{}/route-{i}", i % 10),
                    rule: 0,
                    index: 0,
                },
                target: i,
            }
        })
        .collect()
}

/// The naive model: one Vec sorted by the static precedence, built by binary-search insertion.
fn naive_sorted_insertion(
    candidates: &[Candidate<usize>],
) -> Vec<(Reverse<MatchSpecificity>, RouteOrder, usize)> {
    let mut sorted: Vec<(Reverse<MatchSpecificity>, RouteOrder, usize)> = Vec::new();
    for (index, candidate) in candidates.iter().enumerate() {
        let key = (
            Reverse(MatchSpecificity::of(&candidate.route_match)),
            candidate.order.clone(),
            index,
        );
        let at = sorted.partition_point(|existing| *existing < key);
        sorted.insert(at, key);
    }
    sorted
}

/// The full-rebuild model: every key collected, then one sort.
fn full_sort(
    candidates: &[Candidate<usize>],
) -> Vec<(Reverse<MatchSpecificity>, RouteOrder, usize)> {
    let mut keys: Vec<_> = candidates
        .iter()
        .enumerate()
        .map(|(index, c)| {
            (
                Reverse(MatchSpecificity::of(&c.route_match)),
                c.order.clone(),
                index,
            )
        })
        .collect();
    keys.sort();
    keys
}

fn build(c: &mut Criterion) {
    for n in [10_000, 100_000] {
        let mut group = c.benchmark_group(format!("route_build_{n}"));
        group.sample_size(10);
        let input = candidates(n);
        if n <= 10_000 {
            group.bench_with_input(
                BenchmarkId::new("baseline_sorted_vec_insertion", n),
                &input,
                |b, input| b.iter(|| black_box(naive_sorted_insertion(input))),
            );
        } else {
            // Insertion is quadratic (seconds at 100 k); one full sort of the keys, the
            // full-rebuild model, is the baseline here.
            group.bench_with_input(
                BenchmarkId::new("baseline_full_sort", n),
                &input,
                |b, input| b.iter(|| black_box(full_sort(input))),
            );
        }
        group.bench_with_input(BenchmarkId::new("route_table", n), &input, |b, input| {
            b.iter_batched(
                || input.clone(),
                |input| black_box(RouteTable::new(input)),
                criterion::BatchSize::LargeInput,
            )
        });
        group.finish();
    }
}

fn heap_bytes() -> i64 {
    let stats = ALLOCATOR.stats();
    stats.bytes_allocated as i64 + stats.bytes_reallocated as i64 - stats.bytes_deallocated as i64
}

/// Heap bytes per route: the candidates themselves plus the table's indexes, against the
/// naive sorted Vec (which holds keys only, besides the same candidates).
fn memory_rows() {
    let mut rows = Vec::new();
    for n in [10_000, 100_000] {
        let before = heap_bytes();
        let input = candidates(n);
        let candidate_bytes = heap_bytes() - before;
        let naive_before = heap_bytes();
        let naive = naive_sorted_insertion(&input);
        let naive_bytes = heap_bytes() - naive_before;
        drop(naive);
        let table_before = heap_bytes();
        let table = RouteTable::new(input);
        let index_bytes = heap_bytes() - table_before;
        black_box(&table);
        let per_route = (candidate_bytes + index_bytes) as f64 / n as f64;
        let naive_per_route = (candidate_bytes + naive_bytes) as f64 / n as f64;
        eprintln!(
            "route_build {n}: {per_route:.0} B/route (candidates {candidate_bytes}, index {index_bytes}); naive {naive_per_route:.0} B/route"
        );
        rows.push(serde_json::json!({
            "crate": "routing", "bench": format!("B6 route_build {n}"), "metric": "heap bytes per route",
            "ours": per_route, "baseline": naive_per_route, "baseline_name": "sorted Vec of keys",
            "unit": "B", "goal": "≤ 1 KiB/route",
        }));
    }
    if let Some(path) = std::env::var_os("BENCH_RESULTS") {
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .unwrap();
        for row in rows {
            writeln!(file, "{row}").unwrap();
        }
    }
}

criterion_group!(benches, build);

fn main() {
    memory_rows();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
