//! Robustness of the `gateway` binary and `hbonecat serve` under attack and churn: the HTTP/2
//! attacks (rapid reset, CONTINUATION flood, SETTINGS and PING floods, huge header lists) and
//! slowloris, with memory bounded and other clients served; 100 reloads under `wrk` load with
//! no failed request and no connection lost; SIGTERM completing the requests in flight.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod gateway_support;
mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gateway_support::*;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Command;

/// The tests of this file load the machine heavily; they run one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const ATTACKS: [&str; 5] = [
    "rapid-reset",
    "continuation",
    "settings",
    "ping",
    "huge-headers",
];

/// Resident memory of `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// A gateway on a fresh port whose one route forwards everything to an echo backend; the
/// configuration lives in scratch directory `name`.
async fn echo_gateway(name: &str) -> (Gateway, u16) {
    let port = free_port();
    let backend = echo("echo-0").await;
    let dir = scratch(name);
    let route = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\n\
                 spec: {parentRefs: [{name: gw}], rules: [{backendRefs: [{name: echo, port: 80}]}]}\n";
    std::fs::write(
        dir.join("all.yaml"),
        format!("{}{}{route}", gateway_yaml(port), service("echo", backend)),
    )
    .unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    (gateway, port)
}

/// Runs one attack (`attacks/h2_attack.py`); returns its report.
async fn attack(mode: &str, port: u16, extra: &[String]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/attacks/h2_attack.py");
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        Command::new("python3")
            .arg(script)
            .args([mode, "127.0.0.1", &port.to_string()])
            .args(extra)
            .output(),
    )
    .await
    .expect("the attack ends by itself")
    .unwrap();
    assert!(
        output.status.success(),
        "{mode}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Runs `probe` every 50 ms until `stop`; returns how many probes ran, all of which passed.
async fn keep_probing<F, Fut>(stop: Arc<AtomicBool>, probe: F) -> usize
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let mut served = 0;
    while !stop.load(Ordering::Acquire) {
        assert!(
            probe().await,
            "a normal client was not served during the attack"
        );
        served += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    served
}

/// Runs every attack against `port` while `probe` keeps checking that others are served;
/// asserts each attack connection was closed or throttled and that memory stayed bounded.
async fn attack_all<F, Fut>(pid: u32, port: u16, extra: &[String], probe: F)
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let baseline = rss_kib(pid);
    let probe = Arc::new(probe);
    for mode in ATTACKS {
        let stop = Arc::new(AtomicBool::new(false));
        let probing = {
            let (stop, probe) = (Arc::clone(&stop), Arc::clone(&probe));
            tokio::spawn(async move { keep_probing(stop, || probe()).await })
        };
        let report = attack(mode, port, extra).await;
        stop.store(true, Ordering::Release);
        let served = probing.await.unwrap();
        assert!(served > 0, "{mode}: no normal request was tried");
        let closed = report["closed_by_server"] == true || report["goaway"] == true;
        let throttled = report["backpressure"] == true;
        assert!(
            closed || throttled,
            "{mode}: the server kept accepting: {report}"
        );
        let grown = rss_kib(pid).saturating_sub(baseline);
        assert!(
            grown < 64 * 1024,
            "{mode}: memory grew by {grown} KiB: {report}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http2_attacks_on_the_gateway_are_contained() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (gateway, port) = echo_gateway("h2-attacks").await;
    let url = format!("http://127.0.0.1:{port}/");
    assert_eq!(curl(&[&url]).await.0, 200);
    let pid = gateway.child.id().unwrap();
    attack_all(pid, port, &[], move || {
        let url = url.clone();
        async move { curl(&["--http2-prior-knowledge", &url]).await.0 == 200 }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http2_attacks_on_an_hbone_server_are_contained() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let dir = support::scratch("hbone-attacks");
    let identities = [
        "spiffe://cluster.local/ns/default/sa/client",
        "spiffe://cluster.local/ns/default/sa/server",
    ];
    let made = Command::new(support::HBONECAT)
        .args(["dev-ca", "--out", dir.to_str().unwrap()])
        .args(["--identity", identities[0], "--identity", identities[1]])
        .output()
        .await
        .unwrap();
    assert!(made.status.success());
    let file = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    let server = support::start_listening([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--echo",
        "--cert",
        &file("default-server-cert.pem"),
        "--key",
        &file("default-server-key.pem"),
        "--ca",
        &file("ca-cert.pem"),
    ])
    .await;
    let pid = server.child.id().unwrap();
    let address = server.address.to_string();
    let client_tls = [
        "--cert".to_owned(),
        file("default-client-cert.pem"),
        "--key".to_owned(),
        file("default-client-key.pem"),
        "--ca".to_owned(),
        file("ca-cert.pem"),
    ];
    let extra = [
        "--tls".to_owned(),
        file("default-client-cert.pem"),
        file("default-client-key.pem"),
        file("ca-cert.pem"),
        "--authority".to_owned(),
        "10.0.0.1:80".to_owned(),
    ];
    attack_all(pid, server.address.port(), &extra, move || {
        let (address, tls) = (address.clone(), client_tls.clone());
        async move {
            let mut args = vec!["connect".to_owned(), "--to".to_owned(), address];
            args.extend(["--authority".to_owned(), "10.0.0.1:80".to_owned()]);
            args.extend(tls);
            let finished = support::run_with_stdin(args, b"ping").await;
            finished.code == 0 && finished.stdout == b"ping"
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slowloris_connections_are_cut_and_others_served() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (_gateway, port) = echo_gateway("slowloris").await;
    let started = Instant::now();
    let mut slow = Vec::new();
    for _ in 0..100 {
        slow.push(tokio::spawn(async move {
            let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            stream
                .write_all(b"GET / HTTP/1.1\r\nhost: a\r\n")
                .await
                .unwrap();
            let mut buffer = [0u8; 256];
            loop {
                tokio::select! {
                    read = stream.read(&mut buffer) => {
                        if matches!(read, Ok(0) | Err(_)) {
                            return started.elapsed();
                        }
                    }
                    () = tokio::time::sleep(Duration::from_secs(1)) => {
                        if stream.write_all(b"x").await.is_err() {
                            return started.elapsed();
                        }
                    }
                }
                assert!(started.elapsed() < Duration::from_secs(20), "never cut");
            }
        }));
    }
    let url = format!("http://127.0.0.1:{port}/");
    for _ in 0..10 {
        assert_eq!(curl(&[&url]).await.0, 200, "served beside the slow clients");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for task in slow {
        let cut_after = task.await.unwrap();
        assert!(
            cut_after < Duration::from_secs(14),
            "cut after the 10 s header timeout, not {cut_after:?}"
        );
    }
}

/// The value of metric `name` (no labels) in a Prometheus text page.
fn metric(page: &str, name: &str) -> f64 {
    page.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {page}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_reloads_under_load_fail_no_request_and_keep_connections() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let port = free_port();
    let backend = echo("echo-0").await;
    let dir = scratch("reload-load");
    let base = format!("{}{}", gateway_yaml(port), service("echo", backend));
    let route = |generation: u32| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: r}}\n\
             spec:\n  parentRefs: [{{name: gw}}]\n  rules:\n  - filters:\n    - type: RequestHeaderModifier\n      \
             requestHeaderModifier: {{set: [{{name: x-generation, value: '{generation}'}}]}}\n    \
             backendRefs: [{{name: echo, port: 80}}]\n"
        )
    };
    std::fs::write(dir.join("base.yaml"), &base).unwrap();
    std::fs::write(dir.join("route.yaml"), route(0)).unwrap();
    let gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let metrics_url = gateway.admin_url("/metrics");
    let connections_before = metric(
        &curl(&[&metrics_url]).await.1,
        "gateway_downstream_connections_total",
    );
    let url = format!("http://127.0.0.1:{port}/");
    let wrk = Command::new("wrk")
        .args(["-t1", "-c8", "-d14s", "--timeout", "5s", &url])
        .output();
    let wrk = tokio::spawn(wrk);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let generation_of = |page: &str| metric(page, "gateway_config_generation");
    for change in 1..=100 {
        let before = generation_of(&curl(&[&metrics_url]).await.1);
        // Replaced atomically, as Kubernetes updates a mounted ConfigMap: a file truncated
        // and then refilled is itself a valid (empty) configuration for as long as the
        // writer is descheduled between the two.
        let staged = dir.join(".route.yaml.tmp");
        std::fs::write(&staged, format!("{}# {change}\n", route(change))).unwrap();
        std::fs::rename(&staged, dir.join("route.yaml")).unwrap();
        wait_until("the reload", || async {
            generation_of(&curl(&[&metrics_url]).await.1) > before
        })
        .await;
    }
    let output = wrk
        .await
        .unwrap()
        .expect("wrk runs (scripts/install-test-deps installs it)");
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{report}");
    let page = curl(&[&metrics_url]).await.1;
    let answered: Vec<&str> = page
        .lines()
        .filter(|line| line.starts_with("gateway_http_requests_total"))
        .collect();
    assert!(
        !report.contains("Non-2xx"),
        "every request answered 2xx: {report} {answered:?}"
    );
    assert!(
        !report.contains("Socket errors"),
        "no connection failed: {report}"
    );
    let requests: u64 = report
        .lines()
        .find_map(|line| line.trim().split_once(" requests in "))
        .and_then(|(count, _)| count.trim().parse().ok())
        .unwrap();
    assert!(requests > 1000, "{report}");
    assert!(generation_of(&page) >= 101.0);
    let opened = metric(&page, "gateway_downstream_connections_total") - connections_before;
    // wrk checks the address with one connection of its own, then opens its 8.
    assert!(
        opened <= 9.0,
        "wrk's connections were kept across the 100 reloads: {opened} opened, {report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_completes_the_requests_in_flight() {
    let _serial = ONE_AT_A_TIME.lock().await;
    // A backend that answers each request after 1 s.
    let slow = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let slow_port = slow.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = slow.accept().await {
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                let _ = stream.read(&mut buffer).await;
                tokio::time::sleep(Duration::from_secs(1)).await;
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\ndone")
                    .await;
            });
        }
    });
    let port = free_port();
    let dir = scratch("drain");
    let route = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\n\
                 spec: {parentRefs: [{name: gw}], rules: [{backendRefs: [{name: slow, port: 80}]}]}\n";
    std::fs::write(
        dir.join("all.yaml"),
        format!(
            "{}{}{route}",
            gateway_yaml(port),
            service("slow", slow_port)
        ),
    )
    .unwrap();
    let mut gateway = start_gateway(&[&dir]).await;
    gateway.wait_ready().await;
    let url = format!("http://127.0.0.1:{port}/");
    let in_flight: Vec<_> = (0..5)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { curl(&[&url]).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let took = gateway.terminate().await;
    for request in in_flight {
        let (status, response) = request.await.unwrap();
        assert_eq!(status, 200, "completed during the drain: {response}");
        assert!(response.ends_with("done"), "{response}");
    }
    assert!(
        took >= Duration::from_millis(500),
        "the drain waited for them: {took:?}"
    );
    assert!(
        TcpStream::connect(("127.0.0.1", port)).await.is_err(),
        "no new connection once stopped"
    );
}
