//! Independent peers against our ambient binaries: python-h2 (with Python's ssl) as the
//! HBONE client of our ztunnel's inbound 15008, and HAProxy as the PROXY v2 sender in front
//! of our sandwiched waypoint, with curl as the application client.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod ztunnel_support;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use ztunnel_support::{Waypoint, Ztunnel, byte_echo, dev_ca, scratch};

const CLIENT: &str = "spiffe://cluster.local/ns/default/sa/client";
const SERVER: &str = "spiffe://cluster.local/ns/default/sa/server";
const SANDBOX: &str = "spiffe://cluster.local/ns/sandbox/sa/tester";
const WAYPOINT_ID: &str = "spiffe://cluster.local/ns/default/sa/waypoint";

fn python_client() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../hbone/tests/interop/h2_hbone_client.py")
}

async fn python_connect(dir: &std::path::Path, who: &str, to: &str, authority: &str) -> Value {
    let pem = |suffix: &str| dir.join(format!("{who}-{suffix}.pem"));
    let (host, port) = to.split_once(':').unwrap();
    let output = tokio::process::Command::new("python3")
        .arg(python_client())
        .args([host, port])
        .arg(pem("cert"))
        .arg(pem("key"))
        .arg(dir.join("ca-cert.pem"))
        .args([authority, "2"])
        .output();
    let output = tokio::time::timeout(Duration::from_secs(20), output)
        .await
        .unwrap()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test]
async fn python_h2_is_an_hbone_client_of_our_ztunnel() {
    let dir = scratch("python-h2");
    dev_ca(&dir, &[CLIENT, SERVER, SANDBOX]).await;
    let server_ip = "127.0.0.70";
    let config = dir.join("local.yaml");
    std::fs::write(
        &config,
        format!(
            r#"
workloads:
- {{uid: Kubernetes//Pod/default/server, name: server, namespace: default, serviceAccount: server,
   trustDomain: cluster.local, workloadIps: ["{server_ip}"], protocol: HBONE, services: {{}}}}
policies:
- {{name: no-sandbox, namespace: default, scope: Namespace, action: Deny, dryRun: false,
   rules: [[[{{namespaces: [!Exact sandbox]}}]]]}}
"#
        ),
    )
    .unwrap();
    let _echo = byte_echo(format!("{server_ip}:7000").parse().unwrap()).await;
    let _server = Ztunnel::start(&dir, &config, "server", server_ip, &["--mark", "0"]).await;
    let hbone = format!("{server_ip}:15008");

    let result = python_connect(&dir, "default-client", &hbone, &format!("{server_ip}:7000")).await;
    assert_eq!(
        result["statuses"],
        serde_json::json!(["200", "200"]),
        "{result}"
    );
    assert_eq!(
        result["bodies"],
        serde_json::json!(["stream-0", "stream-1"]),
        "echoed"
    );

    let mismatch = python_connect(&dir, "default-client", &hbone, "127.0.0.99:7000").await;
    assert_eq!(
        mismatch["statuses"],
        serde_json::json!(["400", "400"]),
        "ip mismatch: {mismatch}"
    );

    let denied = python_connect(&dir, "sandbox-tester", &hbone, &format!("{server_ip}:7000")).await;
    assert_eq!(
        denied["statuses"],
        serde_json::json!(["401", "401"]),
        "L4 Deny: {denied}"
    );
}

#[tokio::test]
async fn haproxy_sends_proxy_v2_to_our_sandwiched_waypoint() {
    let dir = scratch("haproxy-sandwich");
    dev_ca(&dir, &[WAYPOINT_ID]).await;
    let (front, waypoint_ip, app_ip) = ("127.0.0.74", "127.0.0.75", "127.0.0.76");
    let listener = tokio::net::TcpListener::bind(format!("{app_ip}:8080"))
        .await
        .unwrap();
    let identity = examples_support::echo::EchoIdentity {
        namespace: "default".into(),
        pod: "app".into(),
    };
    tokio::spawn(examples_support::echo::serve_echo(listener, identity));
    // The Service's VIP is HAProxy's address: the PROXY header's destination.
    let mesh = dir.join("mesh.yaml");
    std::fs::write(
        &mesh,
        format!(
            r#"
apiVersion: v1
kind: Service
metadata: {{name: app, namespace: default}}
spec: {{clusterIP: {front}, ports: [{{name: http, port: 80, targetPort: 8080}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: app-1, namespace: default, labels: {{kubernetes.io/service-name: app}}}}
addressType: IPv4
endpoints: [{{addresses: ["{app_ip}"]}}]
ports: [{{name: http, port: 8080}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: app, namespace: default}}
spec:
  parentRefs: [{{group: "", kind: Service, name: app, port: 80}}]
  rules:
  - filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {{set: [{{name: x-sandwich, value: haproxy}}]}}
    backendRefs: [{{name: app, port: 80}}]
"#
        ),
    )
    .unwrap();
    let proxy_listen = format!("{waypoint_ip}:15088");
    let _waypoint = Waypoint::start(
        &dir,
        &mesh,
        &format!("{waypoint_ip}:15000"),
        &["--proxy-listen", &proxy_listen],
    )
    .await;
    let haproxy_config = dir.join("haproxy.cfg");
    std::fs::write(
        &haproxy_config,
        format!(
            "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n\
             listen front\n  bind {front}:80\n  server waypoint {proxy_listen} send-proxy-v2\n"
        ),
    )
    .unwrap();
    let _haproxy = tokio::process::Command::new("haproxy")
        .args(["-db", "-f"])
        .arg(&haproxy_config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut body = String::new();
    for _ in 0..100 {
        let output = tokio::process::Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "5",
                &format!("http://{front}/through/haproxy"),
            ])
            .output()
            .await
            .unwrap();
        if output.status.success() {
            body = String::from_utf8_lossy(&output.stdout).into_owned();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(body.contains("\"x-sandwich\":[\"haproxy\"]"), "{body}");
    assert!(body.contains("/through/haproxy"), "{body}");
}
