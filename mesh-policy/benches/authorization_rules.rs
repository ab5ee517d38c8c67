//! SecurityPolicy authorization at 10 and 1 000 rules: the indexed engine (`evaluate`) against
//! the linear scan of every rule in order (`evaluate_in_order`, the baseline) in the same
//! run. Rules are what a large policy looks like — one Allow rule per API prefix (`/svcN`),
//! plus a header-keyed rule per team and a catch-all Deny — and the request hits the last
//! API rule (the scan's worst case) or nothing. Goal: the indexed cost independent of the
//! rules that cannot match (1 000 rules ≈ 10 rules).
//!
//! Run: `cargo bench -p mesh-policy --bench authorization_rules` (`BENCH_QUICK=1` for a
//! short run).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use std::hint::black_box;

use support::median_ns;

use http::{HeaderMap, HeaderValue, Method};
use mesh_policy::security::authorization::{AuthorizationRules, RequestFacts, Verdict};

fn rules(count: usize) -> AuthorizationRules {
    let mut yaml = String::from("defaultAction: Deny\nrules:\n");
    for n in 0..count {
        if n % 10 == 9 {
            yaml.push_str(&format!(
                "- {{name: team{n}, action: Allow, principal: {{headers: [{{name: x-team, values: [team{n}]}}]}}}}\n"
            ));
        } else {
            yaml.push_str(&format!(
                "- {{name: svc{n}, action: Allow, operation: {{methods: [GET], path: {{type: PathPrefix, value: /svc{n}}}}}, principal: {{clientCIDRs: [10.0.0.0/8]}}}}\n"
            ));
        }
    }
    AuthorizationRules::compile(&serde_yaml_ng::from_str(&yaml).unwrap(), &[]).unwrap()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list`, `cargo test --benches`
    }
    let quick = std::env::var_os("BENCH_QUICK").is_some();
    let (batches, per_batch) = if quick { (5, 2_000) } else { (15, 20_000) };
    let mut headers = HeaderMap::new();
    headers.insert("x-team", HeaderValue::from_static("nobody"));
    headers.insert("user-agent", HeaderValue::from_static("bench"));
    println!("| rules | request | indexed | linear scan (baseline) | indexed / linear |");
    println!("|---|---|---|---|---|");
    let mut indexed_by_size = Vec::new();
    for count in [10, 1000] {
        let engine = rules(count);
        let last = (0..count).rev().find(|n| n % 10 != 9).unwrap();
        let hit_path = format!("/svc{last}/items/42");
        for (what, path) in [
            ("hits the last rule", hit_path.as_str()),
            ("matches none", "/other/path"),
        ] {
            let facts = RequestFacts {
                method: &Method::GET,
                path,
                query: None,
                headers: &headers,
                client_ip: Some("10.1.2.3".parse().unwrap()),
                jwt: None,
            };
            let expected = engine.evaluate_in_order(&facts);
            assert_eq!(engine.evaluate(&facts), expected);
            if path == hit_path {
                assert_eq!(expected, Verdict::Allowed(Some(format!("svc{last}"))));
            }
            let mut indexed = Vec::new();
            let mut linear = Vec::new();
            for _ in 0..3 {
                indexed.push(median_ns(batches, per_batch, || {
                    black_box(engine.evaluate(black_box(&facts)));
                }));
                linear.push(median_ns(batches, per_batch, || {
                    black_box(engine.evaluate_in_order(black_box(&facts)));
                }));
            }
            indexed.sort_by(f64::total_cmp);
            linear.sort_by(f64::total_cmp);
            let (indexed, linear) = (indexed[1], linear[1]);
            println!(
                "| {count} | {what} | {indexed:.0} ns | {linear:.0} ns | {:.3}× |",
                indexed / linear
            );
            indexed_by_size.push(((count, what), indexed));
        }
    }
    for what in ["hits the last rule", "matches none"] {
        let at = |n| {
            indexed_by_size
                .iter()
                .find(|((count, w), _)| *count == n && *w == what)
                .map(|(_, ns)| *ns)
                .unwrap()
        };
        println!(
            "| 1000 vs 10 | {what} | {:.2}× (goal ≈ 1) | | |",
            at(1000) / at(10)
        );
    }
}
