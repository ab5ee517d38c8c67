//! Helpers shared by the network benchmarks: processes killed on drop, their CPU time, free
//! ports, medians, and the result rows `scripts/bench` collects.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

pub mod http_load;

use std::io::Write;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Starts `command` with its output discarded; the process (killed on drop) and its pid.
pub fn spawn_quiet(mut command: Command) -> (Running, u32) {
    let child = command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    (Running(child), pid)
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Fails unless `tool` is on the PATH.
pub fn require(tool: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .unwrap();
    assert!(
        found.status.success(),
        "{tool} is missing: run scripts/install-bench-deps"
    );
}

/// Waits until something accepts on `address`.
pub fn wait_for(address: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(address).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {address}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A process killed on drop.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// CPU seconds (user + system) used so far by process `pid`.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    (fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap()) / 100.0
}

/// Resident memory of process `pid`, in KiB.
pub fn rss_kib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap()
}

/// The median.
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

/// One result: ours against a baseline measured in the same run.
pub struct Row {
    pub bench: String,
    pub metric: &'static str,
    pub ours: f64,
    pub baseline: f64,
    pub baseline_name: &'static str,
    pub unit: &'static str,
    pub goal: &'static str,
}

/// Prints `rows` and appends them to `$BENCH_RESULTS` (when set) under `crate_name`.
pub fn emit(crate_name: &str, rows: Vec<Row>) {
    for row in &rows {
        eprintln!(
            "{} — {}: ours {:.1} {}, {} {:.1} ({:.2}×)",
            row.bench,
            row.metric,
            row.ours,
            row.unit,
            row.baseline_name,
            row.baseline,
            row.ours / row.baseline
        );
    }
    if let Some(path) = std::env::var_os("BENCH_RESULTS") {
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .unwrap();
        for row in rows {
            let json = serde_json::json!({
                "crate": crate_name, "bench": row.bench, "metric": row.metric, "ours": row.ours,
                "baseline": row.baseline, "baseline_name": row.baseline_name, "unit": row.unit, "goal": row.goal,
            });
            writeln!(file, "{json}").unwrap();
        }
    }
}
