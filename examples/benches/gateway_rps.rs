//! B7 (performance spec §6): the `gateway` binary against nginx as a reverse proxy to the same
//! backend, in the same run, on loopback.
//!
//! Layout on a 2-CPU machine: the proxy under test is pinned to CPU 1 (the gateway's runtime
//! then has one worker; nginx runs one worker process); the load generator and the backend (a
//! separate nginx answering `200 ok`) share CPU 0. Measured: saturating requests per second
//! and proxy CPU per request over HTTP/1.1 keep-alive (wrk, 16 connections) and h2c (h2load,
//! 16 connections × 10 streams); latency with one connection (wrk, p50/p99) against the
//! backend reached directly; the gateway with 1 000 routes against 1 route, requests spread
//! over the routes (a wrk script cycles through their hosts and paths); and the cost of a
//! configuration change end to end — file replaced to the new route answering — at 10 000
//! routes against 10 routes.
//!
//! Needs nginx, wrk and h2load (`scripts/install-bench-deps`). Run:
//! `cargo bench -p examples --bench gateway_rps` (or `scripts/bench examples`); rows are
//! appended to `$BENCH_RESULTS` when set.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod bench_support;

use std::io::Write;

use bench_support::http_load::{
    DURATION_SECS, load, nginx, ok_backend, one_route_gateway_yaml, saturate, saturate_with,
    wait_for_port,
};
use bench_support::{Row, Running, emit, free_port, median, require, spawn_quiet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const GATEWAY: &str = env!("CARGO_BIN_EXE_gateway");
const ROUNDS: usize = 3;

/// The gateway's configuration: a catch-all route `main` and `routes - 1` routes `r{i}` for
/// `host-{i}.example.com` `/svc-{i}`; `generation` is added as a response header by `main`.
fn gateway_config(port: u16, backend: u16, routes: usize, generation: usize) -> String {
    let mut yaml = one_route_gateway_yaml(port, backend);
    if generation > 0 {
        yaml.push_str(&format!(
            "    filters: [{{type: ResponseHeaderModifier, responseHeaderModifier: {{set: [{{name: x-generation, value: '{generation}'}}]}}}}]\n"
        ));
    }
    for index in 1..routes {
        yaml.push_str(&format!(
            "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: r{index}}}\n\
             spec:\n  parentRefs: [{{name: gw}}]\n  hostnames: [host-{index}.example.com]\n  rules:\n  \
             - matches: [{{path: {{value: /svc-{index}}}}}]\n    backendRefs: [{{name: backend, port: 80}}]\n"
        ));
    }
    yaml
}

/// Replaces `dir/config.yaml` atomically.
fn write_config(dir: &Path, yaml: &str) {
    let staged = dir.join(".config.yaml.tmp");
    std::fs::write(&staged, yaml).unwrap();
    std::fs::rename(&staged, dir.join("config.yaml")).unwrap();
}

fn gateway(dir: &Path, port: u16, backend: u16, routes: usize) -> (Running, u32) {
    std::fs::create_dir_all(dir).unwrap();
    write_config(dir, &gateway_config(port, backend, routes, 0));
    let mut command = Command::new("taskset");
    command.args([
        "-c",
        "1",
        GATEWAY,
        "--admin",
        "127.0.0.1:0",
        "--reload-interval-ms",
        "20",
    ]);
    command.arg("--config");
    command.arg(dir.join("config.yaml"));
    spawn_quiet(command)
}

/// The response headers of `GET /` through `port`, lower-cased.
fn get_headers(port: u16) -> String {
    use std::io::Read;
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = stream.write_all(b"GET / HTTP/1.1\r\nhost: bench\r\nconnection: close\r\n\r\n");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.to_ascii_lowercase()
}

/// Median milliseconds from replacing the configuration (`routes` routes) to the change
/// answering, over `ROUNDS + 2` changes.
fn reload_latency(dir: &Path, port: u16, backend: u16, routes: usize) -> f64 {
    let (_gateway, _) = gateway(dir, port, backend, routes);
    wait_for_port(port);
    let mut took = Vec::new();
    for generation in 1..=ROUNDS + 2 {
        let yaml = gateway_config(port, backend, routes, generation);
        let expected = format!("x-generation: {generation}\r\n");
        let started = Instant::now();
        write_config(dir, &yaml);
        while !get_headers(port).contains(&expected) {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the change never applied"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        took.push(started.elapsed().as_secs_f64() * 1_000.0);
    }
    median(took)
}

/// A wrk script cycling through the hosts and paths of routes `r1..r{routes-1}`.
fn spread_script(dir: &Path, routes: usize) -> PathBuf {
    let path = dir.join("spread.lua");
    std::fs::write(
        &path,
        format!(
            "counter = 0\nrequest = function()\n  counter = counter + 1\n  local i = counter % {} + 1\n  \
             return wrk.format(\"GET\", \"/svc-\" .. i, {{Host = \"host-\" .. i .. \".example.com\"}})\nend\n",
            routes - 1
        ),
    )
    .unwrap();
    path
}

/// (p50, p99) latency in microseconds with one connection (wrk --latency).
fn latency(port: u16) -> (f64, f64) {
    let url = format!("http://127.0.0.1:{port}/");
    let out = load(
        "wrk",
        &[
            "-t1",
            "-c1",
            &format!("-d{DURATION_SECS}s"),
            "--latency",
            &url,
        ]
        .map(String::from),
    );
    let pick = |label: &str| {
        let line = out
            .lines()
            .find(|l| l.trim_start().starts_with(label))
            .unwrap();
        let value = line.split_whitespace().nth(1).unwrap();
        let (number, unit) = value.split_at(value.find(|c: char| c.is_ascii_alphabetic()).unwrap());
        let number: f64 = number.parse().unwrap();
        match unit {
            "us" => number,
            "ms" => number * 1_000.0,
            "s" => number * 1_000_000.0,
            other => panic!("unit {other}"),
        }
    };
    (pick("50%"), pick("99%"))
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    for tool in ["nginx", "wrk", "h2load", "taskset"] {
        require(tool);
    }
    let scratch: PathBuf = std::env::temp_dir().join(format!("gateway-rps-{}", std::process::id()));
    let (_backend, backend_port) = ok_backend(&scratch.join("backend"));
    let (nginx_port, nginx_h2c_port) = (free_port(), free_port());
    let (_proxy, nginx_pid) = nginx(
        &scratch.join("proxy"),
        1,
        &format!(
            "upstream backend {{ server 127.0.0.1:{backend_port}; keepalive 64; }}\n\
             server {{ listen 127.0.0.1:{nginx_port}; listen 127.0.0.1:{nginx_h2c_port} http2; keepalive_requests 1000000;\n\
             location / {{ proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection \"\"; \
             proxy_set_header Host $http_host; }} }}"
        ),
    );
    let (gateway_port, gateway_many_port) = (free_port(), free_port());
    let (_gateway, gateway_pid) = gateway(&scratch.join("gateway"), gateway_port, backend_port, 1);
    for port in [backend_port, nginx_port, nginx_h2c_port, gateway_port] {
        wait_for_port(port);
    }

    let mut rows = Vec::new();
    for (h2c, tool, nginx_target) in [
        (false, "wrk HTTP/1.1 16 conns", nginx_port),
        (true, "h2load h2c 16×10", nginx_h2c_port),
    ] {
        let (mut ours_rps, mut ours_per_cpu, mut nginx_rps, mut nginx_per_cpu) =
            (vec![], vec![], vec![], vec![]);
        for _ in 0..ROUNDS {
            let (rps, cpu) = saturate(h2c, gateway_port, Some(gateway_pid));
            ours_rps.push(rps);
            ours_per_cpu.push(rps * DURATION_SECS as f64 / cpu);
            let (rps, cpu) = saturate(h2c, nginx_target, Some(nginx_pid));
            nginx_rps.push(rps);
            nginx_per_cpu.push(rps * DURATION_SECS as f64 / cpu);
        }
        let (ours_per_cpu, nginx_per_cpu) = (median(ours_per_cpu), median(nginx_per_cpu));
        rows.push(Row {
            bench: format!("B7 {tool}"),
            metric: "requests/s (saturating)",
            ours: median(ours_rps),
            baseline: median(nginx_rps),
            baseline_name: "nginx 1.22 proxy",
            unit: "req/s",
            goal: "",
        });
        rows.push(Row {
            bench: format!("B7 {tool}"),
            metric: "requests per CPU-second",
            ours: ours_per_cpu,
            baseline: nginx_per_cpu,
            baseline_name: "nginx 1.22 proxy",
            unit: "req/CPU-s",
            goal: "≥ 1.0× nginx per CPU",
        });
        rows.push(Row {
            bench: format!("B7 {tool}"),
            metric: "proxy CPU-ms per 1000 requests",
            ours: 1_000_000.0 / ours_per_cpu,
            baseline: 1_000_000.0 / nginx_per_cpu,
            baseline_name: "nginx 1.22 proxy",
            unit: "ms",
            goal: "≤ 50 CPU-ms",
        });
    }

    let (mut direct, mut ours, mut theirs) = ((vec![], vec![]), (vec![], vec![]), (vec![], vec![]));
    for _ in 0..ROUNDS {
        for (port, into) in [
            (backend_port, &mut direct),
            (gateway_port, &mut ours),
            (nginx_port, &mut theirs),
        ] {
            let (p50, p99) = latency(port);
            into.0.push(p50);
            into.1.push(p99);
        }
    }
    let direct = (median(direct.0), median(direct.1));
    for (index, metric, goal) in [
        (0, "added p50 latency, 1 connection", "≤ 25 µs"),
        (1, "added p99 latency, 1 connection", "≤ 150 µs"),
    ] {
        let pick = |pair: &(Vec<f64>, Vec<f64>)| {
            if index == 0 {
                median(pair.0.clone())
            } else {
                median(pair.1.clone())
            }
        };
        let base = if index == 0 { direct.0 } else { direct.1 };
        rows.push(Row {
            bench: "B7 wrk HTTP/1.1 1 conn".into(),
            metric,
            ours: pick(&ours) - base,
            baseline: pick(&theirs) - base,
            baseline_name: "nginx 1.22 proxy",
            unit: "µs",
            goal,
        });
    }

    let (many_gateway, many_pid) = gateway(
        &scratch.join("gateway-many"),
        gateway_many_port,
        backend_port,
        1000,
    );
    wait_for_port(gateway_many_port);
    let spread = spread_script(&scratch, 1000);
    let (mut one, mut many) = (vec![], vec![]);
    for _ in 0..ROUNDS {
        one.push(saturate_with(false, gateway_port, Some(gateway_pid), Some(&spread), &[]).0);
        many.push(saturate_with(false, gateway_many_port, Some(many_pid), Some(&spread), &[]).0);
    }
    rows.push(Row {
        bench: "B7 wrk HTTP/1.1 16 conns".into(),
        metric: "requests/s with 1000 routes, requests spread over them",
        ours: median(many),
        baseline: median(one),
        baseline_name: "gateway with 1 route",
        unit: "req/s",
        goal: "≥ 0.95× (≤ 5 % cost)",
    });

    drop(many_gateway);
    let small = reload_latency(&scratch.join("reload-10"), free_port(), backend_port, 10);
    let large = reload_latency(
        &scratch.join("reload-10k"),
        free_port(),
        backend_port,
        10_000,
    );
    rows.push(Row {
        bench: "B8 configuration change, end to end".into(),
        metric: "file replaced → new route answering (20 ms polling)",
        ours: large,
        baseline: small,
        baseline_name: "same change at 10 routes",
        unit: "ms",
        goal: "(report)",
    });

    emit("examples (gateway)", rows);
    let _ = std::fs::remove_dir_all(&scratch);
}
