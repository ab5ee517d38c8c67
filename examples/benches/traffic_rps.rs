//! T1 (issue: traffic policy): the `gateway` binary's requests per CPU-second with a typical
//! ClientTrafficPolicy (client IP from X-Forwarded-For with one trusted hop, headers with
//! underscores dropped, a health-check path) and BackendTrafficPolicy (a local rate limit with
//! a default bucket and a per-user distinct rule, a circuit breaker, a request timeout) on the
//! route, against the same gateway and route without policies — in the same run,
//! interleaved. Goal: ≥ 0.9×.
//!
//! Layout as B7: each gateway pinned to CPU 1 (one worker), wrk (16 connections) and the nginx
//! backend on CPU 0. Needs nginx, wrk and taskset. Run:
//! `cargo bench -p examples --bench traffic_rps`; rows are appended to `$BENCH_RESULTS`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod bench_support;

use bench_support::http_load::{
    DURATION_SECS, ok_backend, one_route_gateway_yaml, pinned_gateway, saturate_with, wait_for_port,
};
use bench_support::{Row, emit, free_port, median, require};

const ROUNDS: usize = 3;

const POLICIES: &str = "---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: ClientTrafficPolicy
metadata: {name: edge}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw}]
  clientIPDetection: {xForwardedFor: {numTrustedHops: 1}}
  headers: {withUnderscoresAction: DropHeader}
  healthCheck: {path: /healthz}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata: {name: main}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: main}]
  rateLimit:
    local:
      rules:
      - limit: {requests: 4000000000, unit: Second}
      - clientSelectors: [{headers: [{name: x-user, type: Distinct}]}]
        limit: {requests: 4000000000, unit: Second}
  circuitBreaker: {maxParallelRequests: 1024}
  timeout: {http: {requestTimeout: 10s}}
";

fn config(port: u16, backend: u16, policies: bool) -> String {
    let mut yaml = one_route_gateway_yaml(port, backend);
    if policies {
        yaml.push_str(POLICIES);
    }
    yaml
}

/// The head of the answer to `GET /` through `port` with `header`.
fn head(port: u16, header: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let request = format!("GET / HTTP/1.1\r\nhost: bench\r\n{header}\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
        .split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    for tool in ["nginx", "wrk", "taskset"] {
        require(tool);
    }
    let scratch = std::env::temp_dir().join(format!("traffic-rps-{}", std::process::id()));
    let (_backend, backend) = ok_backend(&scratch.join("backend"));
    let (plain_port, guarded_port) = (free_port(), free_port());
    let (_plain, plain_pid) =
        pinned_gateway(&scratch.join("plain"), &config(plain_port, backend, false));
    let (_guarded, guarded_pid) = pinned_gateway(
        &scratch.join("guarded"),
        &config(guarded_port, backend, true),
    );
    for port in [backend, plain_port, guarded_port] {
        wait_for_port(port);
    }
    let user = "x-user: bench";
    // The policies are really in the path: the limiter's headers, the health check.
    assert!(head(guarded_port, user).contains("x-ratelimit-limit: 4000000000"));
    assert!(!head(plain_port, user).contains("x-ratelimit-limit"));
    assert!(head(guarded_port, "x-forwarded-for: 192.0.2.1").contains(" 200 "));

    let (mut plain, mut guarded) = (vec![], vec![]);
    for _ in 0..ROUNDS {
        let (rps, cpu) = saturate_with(
            false,
            plain_port,
            Some(plain_pid),
            None,
            &[user, "x-forwarded-for: 192.0.2.1"],
        );
        plain.push(rps * DURATION_SECS as f64 / cpu);
        let (rps, cpu) = saturate_with(
            false,
            guarded_port,
            Some(guarded_pid),
            None,
            &[user, "x-forwarded-for: 192.0.2.1"],
        );
        guarded.push(rps * DURATION_SECS as f64 / cpu);
    }
    emit(
        "examples",
        vec![Row {
            bench: "T1 wrk HTTP/1.1 16 conns".into(),
            metric: "requests per CPU-second with a ClientTrafficPolicy + BackendTrafficPolicy",
            ours: median(guarded),
            baseline: median(plain),
            baseline_name: "the gateway without policies",
            unit: "req/CPU-s",
            goal: "≥ 0.9×",
        }],
    );
}
