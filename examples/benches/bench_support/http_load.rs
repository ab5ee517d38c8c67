//! Saturating HTTP load on a 2-CPU machine: nginx pinned to a CPU (as a backend or as the
//! baseline proxy), wrk and h2load pinned to CPU 0, and the proxy's CPU time over a run.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::{Running, cpu_seconds, spawn_quiet};

/// Seconds of one saturating run.
pub const DURATION_SECS: u64 = 5;

/// Waits (10 s at most) until something listens on loopback `port`.
pub fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// nginx with one worker pinned to `cpu`, in `dir`, with `http_block` inside `http {}`.
pub fn nginx(dir: &Path, cpu: usize, http_block: &str) -> (Running, u32) {
    std::fs::create_dir_all(dir).unwrap();
    let config = format!(
        "daemon off; master_process off; worker_processes 1; pid {dir}/nginx.pid;\n\
         error_log {dir}/error.log crit;\nevents {{ worker_connections 4096; }}\n\
         http {{ access_log off; client_body_temp_path {dir}; proxy_temp_path {dir};\n\
         fastcgi_temp_path {dir}; uwsgi_temp_path {dir}; scgi_temp_path {dir};\n{http_block}\n}}\n",
        dir = dir.display()
    );
    std::fs::write(dir.join("nginx.conf"), config).unwrap();
    let mut command = Command::new("taskset");
    command.args(["-c", &cpu.to_string(), "nginx", "-c"]);
    command.arg(dir.join("nginx.conf"));
    spawn_quiet(command)
}

/// Runs a load tool pinned to CPU 0; returns its stdout.
pub fn load(tool: &str, args: &[String]) -> String {
    let output = Command::new("taskset")
        .args(["-c", "0", tool])
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{tool}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// (requests per second, proxy CPU seconds) of one saturating run.
pub fn saturate(h2c: bool, port: u16, proxy_pid: Option<u32>) -> (f64, f64) {
    saturate_with(h2c, port, proxy_pid, None, &[])
}

/// [`saturate`], with a wrk script choosing each request and extra request headers
/// (`name: value`; HTTP/1.1 only).
pub fn saturate_with(
    h2c: bool,
    port: u16,
    proxy_pid: Option<u32>,
    script: Option<&Path>,
    headers: &[&str],
) -> (f64, f64) {
    let url = format!("http://127.0.0.1:{port}/");
    let cpu_before = proxy_pid.map_or(0.0, cpu_seconds);
    let started = Instant::now();
    let rps = if h2c {
        h2load_rps(&h2load(&url, &[]))
    } else {
        let mut args: Vec<String> = ["-t1", "-c16", &format!("-d{DURATION_SECS}s"), &url]
            .map(String::from)
            .into();
        if let Some(script) = script {
            args.extend(["-s".to_owned(), script.display().to_string()]);
        }
        for header in headers {
            args.extend(["-H".to_owned(), (*header).to_owned()]);
        }
        let out = load("wrk", &args);
        let line = out
            .lines()
            .find(|l| l.starts_with("Requests/sec:"))
            .unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = proxy_pid.map_or(elapsed, cpu_seconds) - cpu_before;
    (rps, cpu)
}

/// The report of one saturating h2load run on CPU 0 (16 connections × 10 streams, one
/// thread, `DURATION_SECS`) against `url`, with `extra` arguments.
pub fn h2load(url: &str, extra: &[&str]) -> String {
    let mut args: Vec<String> = ["-c16", "-m10", "-t1", "-D", &DURATION_SECS.to_string(), url]
        .map(String::from)
        .into();
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    load("h2load", &args)
}

/// The requests per second of an h2load report ("finished in 5.00s, 123456.78 req/s, ...").
pub fn h2load_rps(report: &str) -> f64 {
    let line = report
        .lines()
        .find(|l| l.starts_with("finished in"))
        .unwrap();
    line.split(", ")
        .nth(1)
        .unwrap()
        .trim_end_matches(" req/s")
        .parse()
        .unwrap()
}

/// The `gateway` binary (one runtime worker per CPU it may use) pinned to CPU 1, serving
/// `yaml` written into `dir`, its admin endpoint on a free port.
pub fn pinned_gateway(dir: &Path, yaml: &str) -> (Running, u32) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.yaml"), yaml).unwrap();
    let mut command = Command::new("taskset");
    command.args(["-c", "1", GATEWAY, "--admin", "127.0.0.1:0", "--config"]);
    command.arg(dir.join("config.yaml"));
    spawn_quiet(command)
}

/// The gateway binary of this package.
const GATEWAY: &str = env!("CARGO_BIN_EXE_gateway");

/// The backend every HTTP benchmark proxies to: nginx on CPU 0 answering `200 ok` on a free
/// loopback port (returned), kept alive for a million requests per connection.
pub fn ok_backend(dir: &Path) -> (Running, u16) {
    let port = super::free_port();
    let (running, _) = nginx(
        dir,
        0,
        &format!(
            "server {{ listen 127.0.0.1:{port} reuseport; keepalive_requests 1000000;\n\
             location / {{ return 200 \"ok\\n\"; }} }}"
        ),
    );
    (running, port)
}

/// A Gateway `gw` with one HTTP listener on `port` and one HTTPRoute `main` (its rule last, so
/// callers may append to it) to the Service `backend`, whose one endpoint is
/// `127.0.0.1:backend`.
pub fn one_route_gateway_yaml(port: u16, backend: u16) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: gw}}\nspec:\n  \
         gatewayClassName: bench\n  addresses: [{{value: 127.0.0.1}}]\n  \
         listeners: [{{name: http, port: {port}, protocol: HTTP}}]\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {{name: backend}}\nspec: {{ports: [{{name: http, port: 80}}]}}\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata: {{name: backend-1, labels: {{kubernetes.io/service-name: backend}}}}\n\
         endpoints: [{{addresses: [127.0.0.1]}}]\nports: [{{name: http, port: {backend}}}]\n---\n\
         apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: main}}\n\
         spec:\n  parentRefs: [{{name: gw}}]\n  rules:\n  - backendRefs: [{{name: backend, port: 80}}]\n"
    )
}
