//! The local rate limiter per check against `governor` (GCRA, the crate linkerd2-proxy uses)
//! in the same run, allowed and refused:
//!
//! - one bucket: our fixed-window `TokenBucket::take` (one compare-and-swap, a TSC clock read)
//!   against governor's direct limiter;
//! - per key: a rule whose bucket is chosen by a `Distinct` header over 1 000 clients (the
//!   whole `LocalRateLimit::check_request`: selector match, keyed hash, lock-free bounded
//!   table, bucket) against
//!   governor's keyed limiter (a concurrent hash map) over the same keys.
//!
//! Goal: ≤ 1.0× governor's time per check. Run: `cargo bench -p mesh-policy --bench
//! local_rate_limit` (`BENCH_QUICK=1` for a short run).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::{Quota, RateLimiter};
use http::{HeaderMap, HeaderValue, Method};
use mesh_policy::traffic::rate_limit::bucket::TokenBucket;
use mesh_policy::traffic::rate_limit::clock::Epoch;
use mesh_policy::traffic::rate_limit::local::{LocalRateLimit, RateLimitRule, RuleBuckets};
use mesh_policy::traffic::rate_limit::rules::{
    ClientSelector, RequestFacts, ValueCondition, ValueMatch,
};
use support::median_ns;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list`, `cargo test --benches`
    }
    let quick = std::env::var_os("BENCH_QUICK").is_some();
    let (batches, per_batch) = if quick { (5, 2_000) } else { (15, 100_000) };
    let clock = median_ns(batches, per_batch, || {
        black_box(Instant::now());
    });
    let epoch = Epoch::now();
    let cheap = median_ns(batches, per_batch, || {
        black_box(epoch.elapsed_nanos());
    });
    println!(
        "(clock reads alone: std::time::Instant::now() {clock:.1} ns, the limiter's Epoch {cheap:.1} ns)\n"
    );
    println!("| check | ours | governor (baseline) | ours / governor |");
    println!("|---|---|---|---|");

    for (what, limit) in [
        ("one bucket, allowed", u32::MAX),
        ("one bucket, refused", 1),
    ] {
        let epoch = Epoch::now();
        let bucket = TokenBucket::new(limit, Duration::from_secs(3600));
        let governor = RateLimiter::direct(
            Quota::per_hour(NonZeroU32::new(limit).unwrap())
                .allow_burst(NonZeroU32::new(limit).unwrap()),
        );
        // Both agree on the first two answers.
        let ours = [
            bucket.take(1, epoch.elapsed_nanos()).allowed,
            bucket.take(1, epoch.elapsed_nanos()).allowed,
        ];
        let theirs = [governor.check().is_ok(), governor.check().is_ok()];
        assert_eq!(ours, theirs, "{what}");
        let ours = median_ns(batches, per_batch, || {
            black_box(bucket.take(1, black_box(epoch.elapsed_nanos())));
        });
        let theirs = median_ns(batches, per_batch, || {
            let _ = black_box(governor.check());
        });
        println!(
            "| {what} | {ours:.1} ns | {theirs:.1} ns | {:.2}× |",
            ours / theirs
        );
    }

    for (what, limit) in [
        ("1 000 keys, allowed", u32::MAX),
        ("1 000 keys, refused", 1),
    ] {
        let rule = RateLimitRule {
            selectors: vec![ClientSelector {
                headers: vec![ValueCondition {
                    name: "x-user".into(),
                    matcher: ValueMatch::Distinct,
                    invert: false,
                }],
                ..ClientSelector::default()
            }],
            requests: limit,
            unit: Duration::from_secs(3600),
            cost: 1,
            shadow: false,
            shared: false,
            headers: true,
        };
        let ours_limit = LocalRateLimit::new(&[rule], &Epoch::now(), &mut |_, r| {
            Arc::new(RuleBuckets::new(r.clone()))
        })
        .unwrap();
        let governor = RateLimiter::keyed(
            Quota::per_hour(NonZeroU32::new(limit).unwrap())
                .allow_burst(NonZeroU32::new(limit).unwrap()),
        );
        let headers: Vec<HeaderMap> = (0..1000)
            .map(|n| {
                let mut headers = HeaderMap::new();
                headers.insert(
                    "x-user",
                    HeaderValue::from_str(&format!("user-{n}")).unwrap(),
                );
                headers
            })
            .collect();
        let method = Method::GET;
        let facts = |headers| RequestFacts {
            method: &method,
            path: "/",
            query: None,
            headers,
            client: None,
            principal: None,
        };
        // Warm both with every key (and, for "refused", empty every bucket).
        for headers in &headers {
            ours_limit.check_request(&facts(headers));
            let key = headers["x-user"].to_str().unwrap().to_owned();
            let _ = governor.check_key(&key);
        }
        let mut next = 0;
        let ours = median_ns(batches, per_batch, || {
            next = (next + 1) % headers.len();
            black_box(ours_limit.check_request(&facts(black_box(&headers[next]))));
        });
        let user = http::HeaderName::from_static("x-user");
        let mut next = 0;
        let theirs = median_ns(batches, per_batch, || {
            next = (next + 1) % headers.len();
            // governor is keyed by an owned value: the header read as the key (its name
            // parsed once, as ours is). A `String` key measured faster than a `Vec<u8>` one.
            let key = black_box(&headers[next])[&user]
                .to_str()
                .unwrap()
                .to_owned();
            let _ = black_box(governor.check_key(&key));
        });
        println!(
            "| {what} | {ours:.1} ns | {theirs:.1} ns | {:.2}× |",
            ours / theirs
        );
    }
}
