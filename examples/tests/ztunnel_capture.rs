//! Transparent capture as on a real node: two network namespaces joined by a veth pair,
//! each with our `ztunnel` for its workload; iptables REDIRECT sends the client namespace's
//! outbound TCP to 15001 (the proxy's own sockets, marked 0x539, are exempt), so an
//! unmodified curl reaching a service VIP is carried over HBONE to the other namespace's
//! ztunnel, which delivers it to a Python HTTP server. Needs root (`ip netns`, iptables).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod ztunnel_support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use ztunnel_support::{ZTUNNEL, dev_ca, scratch};

const CLIENT: &str = "spiffe://cluster.local/ns/default/sa/client";
const SERVER: &str = "spiffe://cluster.local/ns/default/sa/server";

/// Two namespaces, deleted when dropped.
struct Node {
    name: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn run(args: &[&str]) {
    let status = Command::new(args[0]).args(&args[1..]).status().unwrap();
    assert!(status.success(), "{args:?}");
}

fn in_ns(ns: &str, args: &[&str]) -> std::process::Output {
    Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .output()
        .unwrap()
}

/// Creates the namespace `name` with loopback up.
fn node(name: &str) -> Node {
    let _ = Command::new("ip").args(["netns", "del", name]).status();
    run(&["ip", "netns", "add", name]);
    let node = Node {
        name: name.to_owned(),
    };
    run(&["ip", "-n", name, "link", "set", "lo", "up"]);
    node
}

fn spawn_in(ns: &str, program: &str, args: &[&str]) -> tokio::process::Child {
    tokio::process::Command::new("ip")
        .args(["netns", "exec", ns, program])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

fn ztunnel_in(ns: &str, dir: &Path, config: &Path, name: &str) -> tokio::process::Child {
    let pem = |suffix: &str| dir.join(format!("default-{name}-{suffix}.pem"));
    let args = [
        "--config".to_owned(),
        config.display().to_string(),
        "--cert".into(),
        pem("cert").display().to_string(),
        "--key".into(),
        pem("key").display().to_string(),
        "--ca".into(),
        dir.join("ca-cert.pem").display().to_string(),
        "--workload".into(),
        format!("default/{name}"),
        "--bind".into(),
        "0.0.0.0".into(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    spawn_in(ns, ZTUNNEL, &args)
}

async fn wait_until(what: &str, check: impl Fn() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} never happened");
}

#[tokio::test]
async fn captured_traffic_to_a_service_vip_crosses_namespaces_over_hbone() {
    let pid = std::process::id();
    let (a, b) = (format!("zt{pid}a"), format!("zt{pid}b"));
    let (veth_a, veth_b) = (format!("zt{pid}va"), format!("zt{pid}vb"));
    let _node_a = node(&a);
    let _node_b = node(&b);
    run(&[
        "ip", "link", "add", &veth_a, "netns", &a, "type", "veth", "peer", "name", &veth_b,
        "netns", &b,
    ]);
    run(&[
        "ip",
        "-n",
        &a,
        "addr",
        "add",
        "10.77.0.1/24",
        "dev",
        &veth_a,
    ]);
    run(&[
        "ip",
        "-n",
        &b,
        "addr",
        "add",
        "10.77.0.2/24",
        "dev",
        &veth_b,
    ]);
    run(&["ip", "-n", &a, "link", "set", &veth_a, "up"]);
    run(&["ip", "-n", &b, "link", "set", &veth_b, "up"]);
    // Service VIPs route towards the veth (they never leave: capture rewrites them).
    run(&[
        "ip",
        "-n",
        &a,
        "route",
        "add",
        "10.96.0.0/16",
        "dev",
        &veth_a,
    ]);
    // Capture: the proxy's own (marked) sockets and loopback are exempt, the rest goes to
    // 15001.
    let nat = |rule: &[&str]| {
        let mut args = vec![
            "ip",
            "netns",
            "exec",
            a.as_str(),
            "iptables",
            "-t",
            "nat",
            "-A",
            "OUTPUT",
            "-p",
            "tcp",
        ];
        args.extend_from_slice(rule);
        run(&args);
    };
    nat(&["-m", "mark", "--mark", "0x539", "-j", "RETURN"]);
    nat(&["-o", "lo", "-j", "RETURN"]);
    nat(&["-j", "REDIRECT", "--to-ports", "15001"]);

    let dir = scratch("capture");
    dev_ca(&dir, &[CLIENT, SERVER]).await;
    let site = dir.join("site");
    std::fs::create_dir_all(&site).unwrap();
    let payload: Vec<u8> = (0..4 * 1024 * 1024u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(site.join("big.bin"), &payload).unwrap();
    let config = dir.join("local.yaml");
    std::fs::write(
        &config,
        r#"
workloads:
- {uid: Kubernetes//Pod/default/client, name: client, namespace: default, serviceAccount: client,
   trustDomain: cluster.local, workloadIps: ["10.77.0.1"], protocol: HBONE, services: {}}
- uid: Kubernetes//Pod/default/server
  name: server
  namespace: default
  serviceAccount: server
  trustDomain: cluster.local
  workloadIps: ["10.77.0.2"]
  protocol: HBONE
  services:
    default/web.default.svc.cluster.local: {80: 8080}
services:
- {name: web, namespace: default, hostname: web.default.svc.cluster.local,
   vips: ["/10.96.0.20"], ports: {80: 8080}}
"#,
    )
    .unwrap();
    let site_dir = site.display().to_string();
    let _web = spawn_in(
        &b,
        "python3",
        &[
            "-m",
            "http.server",
            "8080",
            "--bind",
            "10.77.0.2",
            "--directory",
            &site_dir,
        ],
    );
    let _server = ztunnel_in(&b, &dir, &config, "server");
    let _client = ztunnel_in(&a, &dir, &config, "client");
    for ns in [&a, &b] {
        wait_until("ztunnel ready", || {
            let out = in_ns(
                ns,
                &[
                    "curl",
                    "-s",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    "http://127.0.0.1:15021/healthz/ready",
                ],
            );
            out.stdout == b"200"
        })
        .await;
    }
    wait_until("the web server", || {
        in_ns(
            &b,
            &["curl", "-s", "-o", "/dev/null", "http://10.77.0.2:8080/"],
        )
        .status
        .success()
    })
    .await;

    let fetched = in_ns(
        &a,
        &[
            "curl",
            "-sS",
            "--max-time",
            "20",
            "http://10.96.0.20/big.bin",
        ],
    );
    assert!(
        fetched.status.success(),
        "{}",
        String::from_utf8_lossy(&fetched.stderr)
    );
    assert_eq!(fetched.stdout.len(), payload.len());
    assert!(
        fetched.stdout == payload,
        "4 MiB through capture and HBONE, intact"
    );

    let metrics = in_ns(&b, &["curl", "-s", "http://127.0.0.1:15020/metrics"]);
    let metrics = String::from_utf8_lossy(&metrics.stdout);
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("istio_tcp_connections_opened_total{")
                && l.contains("reporter=\"destination\"")
                && l.contains(&format!("source_principal=\"{CLIENT}\""))),
        "the server side saw the client's identity over HBONE:\n{metrics}"
    );
    let metrics = in_ns(&a, &["curl", "-s", "http://127.0.0.1:15020/metrics"]);
    let metrics = String::from_utf8_lossy(&metrics.stdout);
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("istio_tcp_connections_opened_total{")
                && l.contains("reporter=\"source\"")
                && l.contains(&format!("destination_principal=\"{SERVER}\""))),
        "the client side captured the connection and tunnelled it:\n{metrics}"
    );
}
