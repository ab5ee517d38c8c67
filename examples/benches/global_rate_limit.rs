//! G1 (issue: traffic policy): the latency a global rate limit adds to a request, against one
//! Redis round trip measured in the same run. The gateway (one worker) has two routes to one
//! nginx backend: `limited.bench`, under a BackendTrafficPolicy with a global rule (effectively
//! unlimited, so every request is counted and passes), and `plain.bench` without. One
//! keep-alive connection sends them alternately, one at a time; the added latency is the
//! difference of the medians. The baseline is the round trip of the same Redis exchange the
//! gateway pipelines (INCRBY + EXPIRE) over one raw connection, its median over as many tries.
//!
//! Needs nginx, redis-server and taskset. Run: `cargo bench -p examples --bench
//! global_rate_limit`; rows are appended to `$BENCH_RESULTS`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod bench_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Instant;

use bench_support::http_load::{ok_backend, one_route_gateway_yaml, wait_for_port};
use bench_support::{Row, Running, emit, free_port, median, require, spawn_quiet};

const GATEWAY: &str = env!("CARGO_BIN_EXE_gateway");

const POLICY: &str = "  hostnames: [plain.bench]\n---\n\
apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: limited}\n\
spec:\n  parentRefs: [{name: gw}]\n  hostnames: [limited.bench]\n  rules:\n  - backendRefs: [{name: backend, port: 80}]\n---\n\
apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: BackendTrafficPolicy\nmetadata: {name: global}\nspec:\n  \
targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: limited}]\n  \
rateLimit: {global: {rules: [{limit: {requests: 4000000000, unit: Hour}}]}}\n";

/// Sends one request on `stream` and reads the whole answer; returns its status line.
fn exchange(stream: &mut BufReader<TcpStream>, host: &str) -> String {
    let request = format!("GET / HTTP/1.1\r\nhost: {host}\r\n\r\n");
    stream.get_mut().write_all(request.as_bytes()).unwrap();
    let mut status = String::new();
    stream.read_line(&mut status).unwrap();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        stream.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().unwrap();
        }
    }
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).unwrap();
    status
}

/// One pipelined INCRBY + EXPIRE over `stream`, as the gateway sends it.
fn redis_round_trip(stream: &mut BufReader<TcpStream>, key: &str) {
    let command = format!(
        "*3\r\n$6\r\nINCRBY\r\n${}\r\n{key}\r\n$1\r\n1\r\n*3\r\n$6\r\nEXPIRE\r\n${}\r\n{key}\r\n$4\r\n3600\r\n",
        key.len(),
        key.len()
    );
    stream.get_mut().write_all(command.as_bytes()).unwrap();
    for _ in 0..2 {
        let mut line = String::new();
        stream.read_line(&mut line).unwrap();
        assert!(line.starts_with(':'), "{line}");
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    for tool in ["nginx", "redis-server", "taskset"] {
        require(tool);
    }
    let quick = std::env::var_os("BENCH_QUICK").is_some();
    let tries = if quick { 500 } else { 5_000 };
    let scratch = std::env::temp_dir().join(format!("global-rate-limit-{}", std::process::id()));
    let (_backend, backend) = ok_backend(&scratch.join("backend"));
    let redis_port = free_port();
    let mut redis = Command::new("taskset");
    redis.args(["-c", "0", "redis-server", "--port", &redis_port.to_string()]);
    redis.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
    let (_redis, _): (Running, u32) = spawn_quiet(redis);
    let port = free_port();
    std::fs::create_dir_all(scratch.join("gateway")).unwrap();
    let config = scratch.join("gateway").join("config.yaml");
    std::fs::write(&config, one_route_gateway_yaml(port, backend) + POLICY).unwrap();
    let mut gateway = Command::new("taskset");
    gateway.args([
        "-c",
        "1",
        GATEWAY,
        "--worker-threads",
        "1",
        "--admin",
        "127.0.0.1:0",
    ]);
    gateway.arg("--config").arg(&config);
    gateway.args([
        "--rate-limit-redis",
        &format!("redis://127.0.0.1:{redis_port}"),
    ]);
    gateway.args(["--rate-limit-timeout-ms", "1000"]);
    let (_gateway, _) = spawn_quiet(gateway);
    for port in [backend, redis_port, port] {
        wait_for_port(port);
    }

    let mut connection = BufReader::new(TcpStream::connect(("127.0.0.1", port)).unwrap());
    connection.get_mut().set_nodelay(true).unwrap();
    // Warm up, and check the limit is really counted on one route only.
    for _ in 0..200 {
        assert!(exchange(&mut connection, "limited.bench").contains(" 200 "));
        assert!(exchange(&mut connection, "plain.bench").contains(" 200 "));
    }
    let mut probe = BufReader::new(TcpStream::connect(("127.0.0.1", redis_port)).unwrap());
    probe
        .get_mut()
        .write_all(b"*1\r\n$6\r\nDBSIZE\r\n")
        .unwrap();
    let mut keys = String::new();
    probe.read_line(&mut keys).unwrap();
    assert_eq!(keys.trim(), ":1", "one counter for the limited route");

    let (mut limited, mut plain) = (Vec::new(), Vec::new());
    for _ in 0..tries {
        let started = Instant::now();
        exchange(&mut connection, "limited.bench");
        limited.push(started.elapsed().as_secs_f64() * 1e6);
        let started = Instant::now();
        exchange(&mut connection, "plain.bench");
        plain.push(started.elapsed().as_secs_f64() * 1e6);
    }
    let mut redis = BufReader::new(TcpStream::connect(("127.0.0.1", redis_port)).unwrap());
    redis.get_mut().set_nodelay(true).unwrap();
    let mut round_trips = Vec::new();
    for _ in 0..tries {
        let started = Instant::now();
        redis_round_trip(&mut redis, "bench|round-trip");
        round_trips.push(started.elapsed().as_secs_f64() * 1e6);
    }
    let (limited, plain) = (median(limited), median(plain));
    eprintln!("medians: limited route {limited:.1} µs, plain route {plain:.1} µs");
    emit(
        "examples",
        vec![Row {
            bench: "G1 sequential HTTP/1.1, one connection".into(),
            metric: "latency added by a global rate limit (median difference)",
            ours: limited - plain,
            baseline: median(round_trips),
            baseline_name: "one Redis round trip (INCRBY + EXPIRE, raw connection)",
            unit: "µs",
            goal: "≈ 1× (the round trip is the floor)",
        }],
    );
}
