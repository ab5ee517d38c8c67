//! B5 (performance spec §6): route lookup at N = 10, 1 000, 10 000 and 100 000 routes, the
//! compiled `RouteTable` against the linear scan (`select`) in the same run, hit at 3/4 of the
//! table. (a) N exact hosts plus a wildcard; (b) N path prefixes under one host; (c) N mixed
//! exact, prefix and regular-expression paths with a method and a header, hit on a prefix and
//! on a regex. (d) a 60 KiB path — matching a prefix, and all slashes — against a short path on
//! the same table of 1 000 prefixes (goal: ≤ 2× the short one; lookup is bounded by the longest
//! configured path, not the request's).
//!
//! Run: `cargo bench -p routing --bench route_match` (or `scripts/bench`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use http::{HeaderMap, Method};
use routing::http_route::{
    Candidate, HeaderMatch, HttpRouteMatch, PathMatch, RequestView, RouteOrder, RouteTable, select,
};

const SIZES: [usize; 4] = [10, 1_000, 10_000, 100_000];

fn candidate(index: usize, hostnames: Vec<String>, prefix: &str) -> Candidate<usize> {
    Candidate {
        hostnames,
        route_match: HttpRouteMatch::path(PathMatch::prefix(prefix).unwrap()),
        order: RouteOrder {
            created: 0,
            namespaced_name: format!("ns/route-{index}"),
            rule: 0,
            index: 0,
        },
        target: index,
    }
}

fn hosts(n: usize) -> Vec<Candidate<usize>> {
    let mut candidates: Vec<_> = (0..n)
        .map(|i| candidate(i, vec![format!("host-{i}.example.com")], "/"))
        .collect();
    candidates.push(candidate(n, vec!["*.example.com".to_owned()], "/"));
    candidates
}

fn prefixes(n: usize) -> Vec<Candidate<usize>> {
    (0..n)
        .map(|i| {
            candidate(
                i,
                vec!["api.example.com".to_owned()],
                &format!("/svc-{i}/v1"),
            )
        })
        .collect()
}

fn bench_case(
    c: &mut Criterion,
    group_name: &str,
    build: fn(usize) -> Vec<Candidate<usize>>,
    request_for: fn(usize) -> (String, String),
) {
    let mut group = c.benchmark_group(group_name);
    for n in SIZES {
        if n >= 10_000 {
            group.sample_size(10);
        }
        let candidates = build(n);
        let table = RouteTable::new(candidates.clone());
        let (host, path) = request_for(n);
        let mut headers = HeaderMap::new();
        headers.insert("x-tenant", http::HeaderValue::from_static("t"));
        let request = RequestView {
            host: &host,
            path: &path,
            query: None,
            method: &Method::GET,
            headers: &headers,
        };
        let expected = select(&candidates, &request).map(|c| c.target);
        assert_eq!(table.select(&request).map(|c| c.target), expected);
        assert!(expected.is_some());
        group.bench_with_input(BenchmarkId::new("ours", n), &request, |b, request| {
            b.iter(|| black_box(table.select(black_box(request)).map(|c| c.target)))
        });
        group.bench_with_input(
            BenchmarkId::new("baseline-linear", n),
            &request,
            |b, request| {
                b.iter(|| {
                    black_box(select(black_box(&candidates), black_box(request)).map(|c| c.target))
                })
            },
        );
    }
    group.finish();
}

/// (c) N routes under one host, a third each exact, prefix and regular-expression paths, every
/// match with a method and a header condition.
fn mixed(n: usize) -> Vec<Candidate<usize>> {
    (0..n)
        .map(|i| {
            let path = match i % 3 {
                0 => PathMatch::exact(&format!("/exact-{i}")).unwrap(),
                1 => PathMatch::prefix(&format!("/prefix-{i}")).unwrap(),
                _ => PathMatch::regex(&format!("/regex-{i}/[0-9]+")).unwrap(),
            };
            let header = HeaderMatch {
                name: http::HeaderName::from_static("x-tenant"),
                value: "t".into(),
            };
            let mut route = candidate(i, vec!["mixed.example.com".to_owned()], "/");
            route.route_match = HttpRouteMatch::new(path, vec![header], vec![], Some(Method::GET));
            route
        })
        .collect()
}

/// An index near 3/4 of the table with the given remainder modulo 3.
fn near_three_quarters(n: usize, remainder: usize) -> usize {
    let k = (n * 3 / 4).max(3);
    k - k % 3 + remainder
}

fn benches(c: &mut Criterion) {
    bench_case(c, "route_match_hosts", hosts, |n| {
        (
            format!("host-{}.example.com", n * 3 / 4),
            "/items/42".to_owned(),
        )
    });
    bench_case(c, "route_match_prefixes", prefixes, |n| {
        (
            "api.example.com".to_owned(),
            format!("/svc-{}/v1/items/42", n * 3 / 4),
        )
    });
    bench_case(c, "route_match_mixed_prefix_hit", mixed, |n| {
        (
            "mixed.example.com".to_owned(),
            format!("/prefix-{}/items", near_three_quarters(n, 1)),
        )
    });
    bench_case(c, "route_match_mixed_regex_hit", mixed, |n| {
        (
            "mixed.example.com".to_owned(),
            format!("/regex-{}/42", near_three_quarters(n, 2)),
        )
    });
}

/// (d) Long paths cost what short ones do: a 60 KiB path that matches a prefix against a
/// short one that does, and a 60 KiB path of slashes that matches nothing against a short
/// one that matches nothing.
fn long_paths(c: &mut Criterion) {
    let n = 1_000;
    let candidates = prefixes(n);
    let table = RouteTable::new(candidates.clone());
    let headers = HeaderMap::new();
    let hit = format!("/svc-{}/v1/items/42", n * 3 / 4);
    let long_hit = format!("/svc-{}/v1{}", n * 3 / 4, "/a".repeat(30 * 1024));
    let slashes = "/".repeat(60 * 1024);
    let cases: [(&str, [(&str, &String); 2]); 2] = [
        (
            "route_match_long_path_hit",
            [
                ("baseline-short-path", &hit),
                ("ours-60KiB-path", &long_hit),
            ],
        ),
        (
            "route_match_long_path_miss",
            [
                ("baseline-short-path", &"/x".to_owned()),
                ("ours-60KiB-slashes", &slashes),
            ],
        ),
    ];
    for (group_name, paths) in cases {
        let mut group = c.benchmark_group(group_name);
        for (name, path) in paths {
            let request = RequestView {
                host: "api.example.com",
                path,
                query: None,
                method: &Method::GET,
                headers: &headers,
            };
            let expected = select(&candidates, &request).map(|c| c.target);
            assert_eq!(table.select(&request).map(|c| c.target), expected);
            group.bench_with_input(BenchmarkId::new(name, n), &request, |b, request| {
                b.iter(|| black_box(table.select(black_box(request)).map(|c| c.target)))
            });
        }
        group.finish();
    }
}

criterion_group!(route_match, benches, long_paths);
criterion_main!(route_match);
