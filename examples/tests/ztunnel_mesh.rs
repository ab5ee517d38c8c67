//! Our `ztunnel` to our `ztunnel` over real mTLS HBONE on loopback addresses (one per
//! workload): SOCKS5 in with domain names resolved through the services, bytes both ways
//! with half-close, curl as the application client, `istio_tcp_*` metrics on both sides,
//! L4 policy applied and reloaded mid-traffic (open connections it refuses are closed), a bad
//! configuration refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod ztunnel_support;

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use ztunnel_support::{Ztunnel, byte_echo, dev_ca, http_get, scratch, socks5_connect};

const CLIENT: &str = "spiffe://cluster.local/ns/default/sa/client";
const SERVER: &str = "spiffe://cluster.local/ns/default/sa/server";

/// Two workloads at `client_ip` and `server_ip`; the service `echo` (VIP 10.96.0.20) has
/// port 80 → 7000 (a byte echo) and 8080 → 8080 (an HTTP echo); `policies` appended.
fn local_config(client_ip: &str, server_ip: &str, policies: &str) -> String {
    format!(
        r#"
workloads:
- uid: Kubernetes//Pod/default/client
  name: client
  namespace: default
  serviceAccount: client
  trustDomain: cluster.local
  workloadIps: ["{client_ip}"]
  protocol: HBONE
  services: {{}}
- uid: Kubernetes//Pod/default/server
  name: server
  namespace: default
  serviceAccount: server
  trustDomain: cluster.local
  workloadIps: ["{server_ip}"]
  protocol: HBONE
  services:
    default/echo.default.svc.cluster.local: {{80: 7000}}
services:
- name: echo
  namespace: default
  hostname: echo.default.svc.cluster.local
  vips: ["/10.96.0.20"]
  ports: {{80: 7000, 8080: 8080}}
{policies}
"#
    )
}

const DENY_CLIENT: &str = r#"policies:
- name: deny-client
  namespace: default
  scope: Namespace
  action: Deny
  dryRun: false
  rules:
  - - - principals: [!Exact cluster.local/ns/default/sa/client]
"#;

async fn write_config(path: &Path, text: &str) {
    // Written whole then renamed, as an editor or a ConfigMap update does.
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, text).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

async fn mesh(
    name: &str,
    client_ip: &str,
    server_ip: &str,
) -> (Ztunnel, Ztunnel, std::path::PathBuf) {
    let dir = scratch(name);
    dev_ca(&dir, &[CLIENT, SERVER]).await;
    let config = dir.join("local.yaml");
    write_config(&config, &local_config(client_ip, server_ip, "")).await;
    let no_mark = ["--mark", "0"];
    let client = Ztunnel::start(&dir, &config, "client", client_ip, &no_mark).await;
    let server = Ztunnel::start(&dir, &config, "server", server_ip, &no_mark).await;
    (client, server, config)
}

/// Sends `size` bytes through `stream`, half-closes, and returns how many came back.
async fn round_trip(stream: tokio::net::TcpStream, size: usize) -> Vec<u8> {
    let (mut read, mut write) = stream.into_split();
    let sender = tokio::spawn(async move {
        let chunk: Vec<u8> = (0..65536u32).map(|i| (i % 251) as u8).collect();
        let mut left = size;
        while left > 0 {
            let n = left.min(chunk.len());
            write.write_all(&chunk[..n]).await.unwrap();
            left -= n;
        }
        write.shutdown().await.unwrap();
    });
    let mut received = Vec::with_capacity(size);
    tokio::time::timeout(Duration::from_secs(30), read.read_to_end(&mut received))
        .await
        .unwrap()
        .unwrap();
    sender.await.unwrap();
    received
}

/// Like [`round_trip`], for a connection that may be refused: the bytes echoed, or `None`
/// when the connection failed.
async fn try_round_trip(mut stream: tokio::net::TcpStream, size: usize) -> Option<usize> {
    stream.write_all(&vec![7u8; size]).await.ok()?;
    stream.shutdown().await.ok()?;
    let mut received = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut received))
        .await
        .ok()?
        .ok()?;
    Some(received.len())
}

#[tokio::test]
async fn ztunnel_to_ztunnel_carries_bytes_and_http_with_identities() {
    let (client, server, _config) = mesh("bytes", "127.0.0.10", "127.0.0.11").await;
    let _echo = byte_echo("127.0.0.11:7000".parse().unwrap()).await;
    let http = tokio::net::TcpListener::bind("127.0.0.11:8080")
        .await
        .unwrap();
    let identity = examples_support::echo::EchoIdentity {
        namespace: "default".into(),
        pod: "server".into(),
    };
    tokio::spawn(examples_support::echo::serve_echo(http, identity));

    let size = 8 * 1024 * 1024;
    let stream = socks5_connect(&client.socks5(), "echo.default.svc.cluster.local", 80)
        .await
        .unwrap();
    let received = round_trip(stream, size).await;
    assert_eq!(
        received.len(),
        size,
        "8 MiB each way, then both halves closed"
    );
    assert!(
        received
            .iter()
            .enumerate()
            .all(|(i, b)| *b == ((i % 65536) % 251) as u8)
    );

    let curl = tokio::process::Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "--socks5-hostname",
            &client.socks5(),
        ])
        .arg("http://echo.default.svc.cluster.local:8080/through-the-mesh")
        .output()
        .await
        .unwrap();
    let body = String::from_utf8_lossy(&curl.stdout);
    assert!(
        curl.status.success(),
        "{}",
        String::from_utf8_lossy(&curl.stderr)
    );
    assert!(body.contains("/through-the-mesh"), "{body}");

    let inbound = http_get(&format!("{}:15020", server.ip), "/metrics")
        .await
        .unwrap();
    let opened = inbound
        .lines()
        .find(|l| {
            l.starts_with("istio_tcp_connections_opened_total{")
                && l.contains("reporter=\"destination\"")
        })
        .unwrap_or_else(|| panic!("{inbound}"));
    assert!(
        opened.contains(&format!("source_principal=\"{CLIENT}\"")),
        "{opened}"
    );
    assert!(
        opened.contains(&format!("destination_principal=\"{SERVER}\"")),
        "{opened}"
    );
    let outbound = http_get(&format!("{}:15020", client.ip), "/metrics")
        .await
        .unwrap();
    assert!(
        outbound
            .lines()
            .any(|l| l.starts_with("istio_tcp_connections_opened_total{")
                && l.contains("reporter=\"source\"")
                && l.contains(&format!("destination_principal=\"{SERVER}\""))),
        "{outbound}"
    );
    let dump = http_get(&format!("{}:15000", client.ip), "/config_dump")
        .await
        .unwrap();
    assert!(
        dump.contains("\"localWorkload\"") && dump.contains("Kubernetes//Pod/default/client"),
        "{dump}"
    );

    // An unknown service name: SOCKS5 host unreachable.
    assert_eq!(
        socks5_connect(&client.socks5(), "nowhere.default.svc.cluster.local", 80)
            .await
            .err(),
        Some(0x04)
    );
}

#[tokio::test]
async fn policies_apply_on_reload_and_a_bad_file_keeps_the_old_state() {
    let (_client, mut server, config) = mesh("policy", "127.0.0.20", "127.0.0.21").await;
    let _echo = byte_echo("127.0.0.21:7000".parse().unwrap()).await;
    let proxy = "127.0.0.20:15080";
    let service = "echo.default.svc.cluster.local";
    let works = || async {
        match socks5_connect(proxy, service, 80).await {
            Ok(stream) => try_round_trip(stream, 1024).await == Some(1024),
            Err(_) => false,
        }
    };
    assert!(works().await);
    // A long-lived connection opened before the change (SOCKS5 answers before the tunnel
    // is up: one echoed byte proves it is).
    let mut before = socks5_connect(proxy, service, 80).await.unwrap();
    before.write_all(b"x").await.unwrap();
    let mut echoed = [0u8; 1];
    before.read_exact(&mut echoed).await.unwrap();

    write_config(
        &config,
        &local_config("127.0.0.20", "127.0.0.21", DENY_CLIENT),
    )
    .await;
    server.wait_log("configuration 2 applied").await;
    assert!(
        !works().await,
        "the Deny policy refuses new tunnels (401 on the CONNECT)"
    );
    // As ztunnel's policy watcher does, an open connection the new policy refuses is closed.
    server.wait_log("no longer allowed and were closed").await;
    assert_ne!(
        try_round_trip(before, 4096).await,
        Some(4096),
        "the open connection was closed"
    );

    write_config(&config, "workloads: [{bogus: 1}]\n").await;
    let refused = server.wait_log("configuration refused").await;
    assert!(refused.contains("workloads[0]"), "{refused}");
    assert!(
        !works().await,
        "the old state (with the Deny) keeps serving"
    );

    write_config(&config, &local_config("127.0.0.20", "127.0.0.21", "")).await;
    server.wait_log("configuration 3 applied").await;
    assert!(works().await);
}

#[tokio::test]
async fn the_environment_stands_in_for_flags_and_network_and_socks5_flags_apply() {
    let dir = scratch("flags");
    dev_ca(&dir, &[CLIENT, SERVER]).await;
    let config = dir.join("local.yaml");
    let networked = local_config("127.0.0.30", "127.0.0.31", "")
        .replace("vips: [\"/10.96.0.20\"]", "vips: [\"net1/10.96.0.20\"]");
    write_config(&config, &networked).await;
    let pem = |suffix: &str| dir.join(format!("default-client-{suffix}.pem"));
    let run = |extra: &[&str], env: bool| {
        let mut command = tokio::process::Command::new(ztunnel_support::ZTUNNEL);
        command
            .arg("--cert")
            .arg(pem("cert"))
            .arg("--key")
            .arg(pem("key"))
            .arg("--ca")
            .arg(dir.join("ca-cert.pem"))
            .args([
                "--bind",
                "127.0.0.30",
                "--admin",
                "127.0.0.30:15000",
                "--mark",
                "0",
            ])
            .args(extra)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true);
        if env {
            command
                .env("LOCAL_XDS_PATH", &config)
                .env("PROXY_WORKLOAD_INFO", "default/client/client");
        } else {
            command
                .arg("--config")
                .arg(&config)
                .args(["--workload", "default/client"]);
        }
        command.spawn().unwrap()
    };

    // LOCAL_XDS_PATH and PROXY_WORKLOAD_INFO instead of --config and --workload; no SOCKS5.
    let from_env = run(&["--socks5", "off"], true);
    ztunnel_support::wait_http_ok("127.0.0.30:15021", "/healthz/ready").await;
    let dump = http_get("127.0.0.30:15000", "/config_dump").await.unwrap();
    assert!(dump.contains("Kubernetes//Pod/default/client"), "{dump}");
    assert!(
        tokio::net::TcpStream::connect("127.0.0.30:15080")
            .await
            .is_err(),
        "--socks5 off: nothing listens on 15080"
    );
    drop(from_env);
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Service host names resolve to VIPs of the proxy's network only.
    let service = "echo.default.svc.cluster.local";
    let other_network = run(&["--socks5", "127.0.0.30:15080"], false);
    ztunnel_support::wait_http_ok("127.0.0.30:15021", "/healthz/ready").await;
    assert_eq!(
        socks5_connect("127.0.0.30:15080", service, 80).await.err(),
        Some(0x04),
        "the VIP is in net1, the proxy in the default network"
    );
    drop(other_network);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _in_net1 = run(
        &["--socks5", "127.0.0.30:15080", "--network", "net1"],
        false,
    );
    ztunnel_support::wait_http_ok("127.0.0.30:15021", "/healthz/ready").await;
    assert!(
        socks5_connect("127.0.0.30:15080", service, 80)
            .await
            .is_ok(),
        "--network net1 resolves the net1 VIP"
    );
}
